"""API load benchmark: incident creation and the agent queue, served by gunicorn.

Run it (from the repository root, with the venv)::

    .venv/bin/python bench/api_load.py                   # SQLite, 10,000 incidents
    .venv/bin/python bench/api_load.py --db postgresql   # PostgreSQL
    .venv/bin/python bench/api_load.py --db both --incidents 2000
    make bench-api                                       # = the first line

Per back end it

1. creates a fresh database of its own: a SQLite file in a temporary directory, or
   (``--db postgresql``) a PostgreSQL database ``bench_<random>`` made through the
   admin DSN (``--pg-dsn``, default ``postgresql://postgres@127.0.0.1:5432/postgres``,
   used only to CREATE and DROP it) and dropped at the end; migrates it with
   ``servicedesk db upgrade``; seeds groups, users, categories and API tokens through
   the service layer;
2. counts the SQL statements of one create request and one queue request in-process
   (a Flask test client on the same database, a ``before_cursor_execute`` listener on
   the engine), once on the empty desk and once more after the load, so you can see
   they stay constant (no N+1), and prints the queue query's plan (it must use the
   partial index ``ix_tickets_open_queue``);
3. starts ``gunicorn -w 2 -b 127.0.0.1:PORT 'servicedesk:create_app()'`` (sync
   workers; a free port; other settings through ``GUNICORN_CMD_ARGS``) and
   (a) creates N incidents (``--incidents``, default 10,000) through
       ``POST /api/v1/incidents`` from 4 concurrent clients (threads, each with its own
       keep-alive ``http.client`` connection), bounded by ``--time-limit`` seconds:
       creates/s, p50/p95 latency, errors;
   (b) with those N incidents open, times the agent queue
       ``GET /api/v1/incidents?open=true&sort=priority&limit=50`` as an agent of the
       group: ``--queue-requests`` (500) sequential requests after a warm-up; median
       and p95 in ms;
   each phase also prints the CPU time gunicorn used per request (master + workers,
   from /proc) and the load average: rates fall when other work shares the
   machine, CPU per request much less so;
4. stops gunicorn (always, in ``finally``) and drops the database.

It ends with one summary line per back end against the targets (SQLite: >= 300
creates/s and <= 5 ms median queue page) and a peer Python service desk measured on
the same 2-core machine (about 58 creates/s and 170 ms for the queue page).

Everything stays on loopback. This is a benchmark printing figures, not a test: the
test suite only guards the statement counts (tests/test_query_counts.py).

Why sync workers: ``--worker-class gthread --threads 1`` keeps connections alive and
cost ~1 ms less CPU per request here, but its workers accept connections while busy,
so the 4 long-lived client connections all landed on one worker and the other sat
idle (and behind a proxy that opens a connection per request, a busy worker would
queue requests an idle one could serve). Sync workers take a connection only when
free, which spreads the load over both.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _support import (
    ROOT,
    load_average,
    log,
    percentile,
    postgresql_database,
    sqlite_database,
    upgrade,
)

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
PG_ADMIN_DSN = os.environ.get("SERVICEDESK_BENCH_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")

QUEUE_PATH = "/api/v1/incidents?open=true&sort=priority&limit=50"
TARGET_CREATES = 300.0
TARGET_QUEUE_MS = 5.0
PEER_CREATES = 58.0
PEER_QUEUE_MS = 170.0

LEVELS = ("high", "medium", "low")
REQUESTERS = 40
TEST_PLUGINS = {"recorder", "exploder"}  # tests/plugins/recorder, not part of a deployment


def app_env(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICEDESK_")}
    env.update(
        SERVICEDESK_DATABASE_URL=url,
        SERVICEDESK_SECRET_KEY="bench-" + secrets.token_hex(16),
        SERVICEDESK_COOKIE_SECURE="false",
    )
    return env


def make_app(env: dict):
    """An in-process app on the bench database (for seeding and statement counts)."""
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in env.items() if k.startswith("SERVICEDESK_")})
    try:
        from servicedesk import create_app

        return create_app()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def seed(app) -> dict:
    """Groups, staff, requesters, categories; returns the tokens and category ids."""
    from servicedesk.extensions import db
    from servicedesk.identity import service as identity
    from servicedesk.tickets.admin import create_category

    with app.app_context():
        # `make install-test` installs the suite's example plugins into the venv; a
        # deployment has none of them, so they do not run here either.
        from servicedesk.plugin_admin import list_plugins, set_enabled

        for name in TEST_PLUGINS & {p.name for p in list_plugins(None)}:
            set_enabled(None, name, False)
        identity.create_group(None, "Service Desk", 1)
        identity.create_group(None, "Field Support", 1)
        identity.create_group(None, "Network Team", 2)
        identity.create_group(None, "Engineering", 3)
        agent = identity.create_user(None, "agent", "agent@bench.test", "agent",
                                     groups=["Service Desk"], display_name="Queue Agent")
        identity.create_user(None, "fieldagent", "field@bench.test", "agent",
                             groups=["Field Support"])
        identity.create_user(None, "netagent", "net@bench.test", "agent",
                             groups=["Network Team"])
        hardware = create_category(None, "Hardware", None, None)
        laptop = create_category(None, "Laptop", hardware.id, None)
        network = create_category(None, "Network", None, "Network Team")
        wifi = create_category(None, "Wi-Fi", network.id, None)
        requesters = []
        for i in range(REQUESTERS):
            user = identity.create_user(None, f"employee{i:03d}", f"e{i}@bench.test",
                                        "requester", display_name=f"Employee {i}")
            requesters.append(identity.issue_token(user, "bench"))
        tokens = {"agent": identity.issue_token(agent, "bench"), "requesters": requesters}
        categories = [(hardware.id, None), (hardware.id, laptop.id), (network.id, None),
                      (network.id, wifi.id), (None, None), (None, None)]
        db.session.remove()
    return {"tokens": tokens, "categories": categories}


def incident_body(i: int, categories: list) -> dict:
    """Varied incidents: every priority, several categories, some routed to L2."""
    body = {
        "title": f"Bench incident {i}: printer on floor {i % 7} jams",
        "description": "Paper jams on every second page since this morning. " * 3,
        "impact": LEVELS[i % 3],
        "urgency": LEVELS[(i // 3) % 3],
    }
    category, subcategory = categories[i % len(categories)]
    if category is not None:
        body["category_id"] = category
    if subcategory is not None:
        body["subcategory_id"] = subcategory
    return body


# --- statement counts and the plan ---------------------------------------------------


def count_statements(app, seeded: dict, label: str) -> dict:
    """SQL statements of one create and one queue request, counted in-process."""
    from sqlalchemy import event

    from servicedesk.extensions import db

    statements: list[tuple[str, object]] = []

    def on_execute(_conn, _cursor, statement, parameters, _context, _many):
        statements.append((statement, parameters))

    client = app.test_client()
    tokens = seeded["tokens"]
    result = {}
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        for attempt in range(3):  # the first request warms caches; keep the last count
            statements.clear()
            response = client.post(
                "/api/v1/incidents", json=incident_body(attempt, seeded["categories"]),
                headers={"Authorization": "Bearer " + tokens["requesters"][0]})
            assert response.status_code == 201, response.get_json()
        result["create"] = len(statements)
        result["create_sql"] = [s for s, _ in statements]
        for _attempt in range(2):
            statements.clear()
            response = client.get(QUEUE_PATH,
                                  headers={"Authorization": "Bearer " + tokens["agent"]})
            assert response.status_code == 200, response.get_json()
        result["queue"] = len(statements)
        result["queue_sql"] = [s for s, _ in statements]
        result["queue_items"] = len(response.get_json()["items"])
        queue = [(s, p) for s, p in statements if "FROM tickets" in s]
        result["queue_query"] = queue[0] if queue else None
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    log(f"  SQL statements ({label}): create {result['create']}, "
        f"queue page {result['queue']} ({result['queue_items']} items)")
    return result


def explain(app, query: tuple[str, object]) -> list[str]:
    """The database's plan of the queue query exactly as the app sent it."""
    from servicedesk.extensions import db

    statement, parameters = query
    with app.app_context():
        with db.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
                plan = [row[-1] for row in rows]
            else:
                rows = conn.exec_driver_sql("EXPLAIN " + statement, parameters)
                plan = [row[0] for row in rows]
        db.engine.dispose()
    return plan


# --- gunicorn ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn with 2 workers on loopback; ``stop()`` always ends it and its workers."""

    def __init__(self, env: dict, workers: int, logdir: str):
        self.port = free_port()
        self.log_path = os.path.join(logdir, "gunicorn.log")
        self.log_file = open(self.log_path, "wb")
        command = [GUNICORN, "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
                   "servicedesk:create_app()"]
        self.command = command
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=self.log_file,
                                        stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + self.log_tail())
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/api/v1/openapi.json")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
                conn.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not answer in time:\n" + self.log_tail())

    def log_tail(self) -> str:
        self.log_file.flush()
        return Path(self.log_path).read_text(errors="replace")[-3000:]

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the master and its workers (Linux).

        Throughput on a shared machine depends on what else runs; CPU per request
        does not, so it is printed beside the rates.
        """
        pids = [self.process.pid]
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            pids += [int(pid) for pid in children.read_text().split()]
        except OSError:
            return float("nan")
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the master stops its workers
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: only ours
                self.process.wait(5)
        self.log_file.close()


# --- load ----------------------------------------------------------------------------


class Client:
    """One keep-alive connection (re-opened if the server closes it)."""

    def __init__(self, port: int, token: str):
        self.port = port
        self.headers = {"Authorization": "Bearer " + token,
                        "Content-Type": "application/json", "Connection": "keep-alive"}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()  # a dropped keep-alive connection: reconnect once
            self.conn.request(method, path, body=data, headers=self.headers)
            response = self.conn.getresponse()
            payload = response.read()
        if response.will_close:
            self.conn.close()
        return response.status, payload

    def close(self):
        self.conn.close()


def create_load(port: int, seeded: dict, total: int, clients: int, time_limit: float) -> dict:
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + time_limit
    tokens = seeded["tokens"]["requesters"]

    def worker(n: int):
        mine, failures = [], []
        client = None
        try:
            while time.monotonic() < deadline:
                i = next(counter)
                if i >= total:
                    break
                if client is None:
                    # Several requesters per client thread: tokens rotate per request.
                    client = Client(port, tokens[n])
                client.headers["Authorization"] = "Bearer " + tokens[i % len(tokens)]
                start = time.perf_counter()
                try:
                    status, payload = client.request(
                        "POST", "/api/v1/incidents", incident_body(i, seeded["categories"]))
                except (http.client.HTTPException, OSError) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    client.close()
                    client = None
                    continue
                mine.append(time.perf_counter() - start)
                if status != 201:
                    failures.append(f"HTTP {status}: {payload[:200]!r}")
        finally:
            if client is not None:
                client.close()
            with lock:
                latencies.extend(mine)
                errors.extend(failures)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(time_limit + 60)
    elapsed = time.perf_counter() - start
    ok = len(latencies) - len(errors)
    return {
        "requests": len(latencies),
        "created": ok,
        "errors": len(errors),
        "error_samples": errors[:5],
        "elapsed": elapsed,
        "rate": ok / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000 if latencies else float("nan"),
        "p95_ms": percentile(latencies, 95) * 1000 if latencies else float("nan"),
        "timed_out": time.monotonic() >= deadline and len(latencies) < total,
    }


def queue_load(port: int, token: str, requests: int, warmup: int = 50) -> dict:
    client = Client(port, token)
    latencies, errors, items, first, priorities = [], 0, None, {}, []
    try:
        for n in range(warmup + requests):
            start = time.perf_counter()
            status, payload = client.request("GET", QUEUE_PATH)
            took = time.perf_counter() - start
            if status != 200:
                errors += 1
                continue
            if n >= warmup:
                latencies.append(took)
            if items is None:
                page = json.loads(payload)
                items = len(page["items"])
                first = page["items"][0] if page["items"] else {}
                priorities = [item["priority"] for item in page["items"]]
    finally:
        client.close()
    return {
        "requests": len(latencies),
        "warmup": warmup,
        "errors": errors,
        "items": items,
        "first": first.get("number"),
        "priorities": sorted(set(priorities)),
        "median_ms": statistics.median(latencies) * 1000 if latencies else float("nan"),
        "p95_ms": percentile(latencies, 95) * 1000 if latencies else float("nan"),
    }


# --- one back end ----------------------------------------------------------------------


def run_backend(kind: str, args) -> dict:
    log(f"== {kind} ==")
    database = sqlite_database() if kind == "sqlite" else postgresql_database(args.pg_dsn, "bench_", 6)
    with database as url, tempfile.TemporaryDirectory(prefix="sd-bench-log-") as logdir:
        env = app_env(url)
        started = time.perf_counter()
        upgrade(env)
        app = make_app(env)
        seeded = seed(app)
        log(f"  database migrated and seeded in {time.perf_counter() - started:.1f} s "
            f"({'SQLite file' if kind == 'sqlite' else url.rsplit('/', 1)[1]})")
        before = count_statements(app, seeded, "empty desk")
        if args.verbose:
            for name in ("create_sql", "queue_sql"):
                log(f"  {name}:")
                for sql in before[name]:
                    log("    " + " ".join(sql.split())[:160])
        with app.app_context():
            from servicedesk.extensions import db

            db.engine.dispose()  # no connection of ours stays open beside gunicorn

        server = Server(env, args.workers, logdir)
        try:
            server.wait_ready()
            log(f"  gunicorn: {' '.join(server.command[1:])}")
            log(f"  load average before the load: {load_average()}")
            cpu = server.cpu_seconds()
            creates = create_load(server.port, seeded, args.incidents, args.clients,
                                  args.time_limit)
            creates["cpu_ms"] = (server.cpu_seconds() - cpu) * 1000 / max(1, creates["requests"])
            log(f"  (a) creates: {creates['created']} in {creates['elapsed']:.1f} s with "
                f"{args.clients} clients = {creates['rate']:.0f} creates/s; latency p50 "
                f"{creates['p50_ms']:.1f} ms, p95 {creates['p95_ms']:.1f} ms; errors "
                f"{creates['errors']}; server CPU {creates['cpu_ms']:.1f} ms/request"
                + ("; TIME LIMIT HIT" if creates["timed_out"] else ""))
            for sample in creates["error_samples"]:
                log(f"      error: {sample}")
            cpu = server.cpu_seconds()
            queue = queue_load(server.port, seeded["tokens"]["agent"], args.queue_requests)
            queue["cpu_ms"] = ((server.cpu_seconds() - cpu) * 1000
                               / max(1, queue["requests"] + queue["warmup"]))
            log(f"  (b) queue page ({queue['items']} items, priorities {queue['priorities']}, "
                f"{creates['created'] + 3} incidents open): {queue['requests']} requests, "
                f"median {queue['median_ms']:.2f} ms, p95 {queue['p95_ms']:.2f} ms, "
                f"errors {queue['errors']}; server CPU {queue['cpu_ms']:.1f} ms/request")
        finally:
            server.stop()

        log(f"  load average after: {load_average()}")
        after = count_statements(app, seeded, f"{creates['created'] + 3} incidents")
        constant = before["create"] == after["create"] and before["queue"] == after["queue"]
        log(f"  (c) SQL statements per request: create {after['create']}, queue page "
            f"{after['queue']} - {'constant' if constant else 'NOT CONSTANT'} "
            f"(empty desk: {before['create']} / {before['queue']})"
            + ("; BEGIN is sent as a statement on SQLite" if kind == "sqlite" else ""))
        if after["queue_query"] is not None:
            plan = explain(app, after["queue_query"])
            uses = any("ix_tickets_open_queue" in line for line in plan)
            log(f"  (d) queue query plan ({'uses' if uses else 'DOES NOT USE'} "
                "ix_tickets_open_queue):")
            for line in plan:
                log("      " + line)
        with app.app_context():
            from servicedesk.extensions import db

            if kind == "sqlite":  # two processes wrote it concurrently: is it intact?
                with db.engine.connect() as conn:
                    check = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
                log(f"  SQLite integrity_check: {check}")
            db.engine.dispose()
    return {"kind": kind, "creates": creates, "queue": queue, "statements": after,
            "constant": constant}


def summary(result: dict) -> str:
    c, q = result["creates"], result["queue"]
    rate, median = c["rate"], q["median_ms"]
    parts = [f"{result['kind']}: {rate:.0f} creates/s ({rate / PEER_CREATES:.1f}x peer's "
             f"{PEER_CREATES:.0f}), queue median {median:.2f} ms ({PEER_QUEUE_MS / median:.0f}x "
             f"faster than peer's {PEER_QUEUE_MS:.0f} ms)"]
    met = rate >= TARGET_CREATES and median <= TARGET_QUEUE_MS and c["errors"] == 0
    if result["kind"] == "sqlite":
        parts.append(f"targets >= {TARGET_CREATES:.0f}/s and <= {TARGET_QUEUE_MS:.0f} ms: "
                     + ("MET" if met else "NOT MET"))
    else:
        parts.append(f"(SQLite targets for reference: {'met' if met else 'not met'})")
    parts.append(f"statements create {result['statements']['create']} / queue "
                 f"{result['statements']['queue']} "
                 + ("constant" if result["constant"] else "NOT constant"))
    return "SUMMARY " + "; ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue-requests", type=int, default=500)
    parser.add_argument("--time-limit", type=float, default=300.0,
                        help="abort the create phase after this many seconds")
    parser.add_argument("--pg-dsn", default=PG_ADMIN_DSN,
                        help="admin DSN, used only to create and drop bench_<random>")
    parser.add_argument("--verbose", action="store_true", help="print the SQL statements")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = [run_backend(kind, args) for kind in kinds]
    log()
    for result in results:
        log(summary(result))
    ok = all(r["creates"]["errors"] == 0 and r["constant"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
