"""Reports benchmark: every report over 1,000,000 tickets on PostgreSQL.

Run it (from the repository root, with the venv; PostgreSQL on loopback)::

    .venv/bin/python bench/reports.py                      # 1,000,000 tickets
    .venv/bin/python bench/reports.py --tickets 200000
    make bench-reports BENCH_ARGS="--tickets 200000"

It

1. creates a PostgreSQL database of its own (``sdbench_reports_<random>``, through the
   admin DSN ``--pg-dsn``, used only to CREATE and DROP it) and migrates it with
   ``servicedesk db upgrade``; seeds 30 groups (L1–L3), 60 agents, an admin, a
   requester, 20 categories with 5 subcategories each, a 24x7 calendar and a policy;
2. bulk-loads ``--tickets`` tickets spread over the two years before ``now`` with
   ``COPY`` (psycopg; rows from a seeded random generator, so every run loads the same
   data): 85 % incidents, the rest the other kinds the application knows; 93 % resolved
   (most of them closed), some reopened, a fifth escalated; then, with one
   ``INSERT … SELECT`` each, the incidents' own rows, two SLA clocks per resolved
   ticket (business seconds, a tenth breached; the ticket rows carry their outcome, as
   ``refresh_clocks`` writes it), the escalation audit entries, CSAT
   surveys for a third of the resolutions and some KB deflections; then VACUUM ANALYZE
   (what autovacuum leaves behind);
3. times each report as the API serves it (a real request through the Flask test
   client with an admin's token, JSON and CSV): the KPIs over the last 30 days (also as
   an L1 manager, whose visibility narrows them), over a year, with filters, and the
   monthly category report. Each should answer in under
   ``TARGET_SECONDS`` (2 s); the best of ``--repeat`` runs is printed;
4. drops the database (always, in ``finally``), unless ``--keep``: then it stays and
   its URL is printed, for ``EXPLAIN (ANALYZE, BUFFERS)`` by hand or for a later
   ``--database <url>`` run, which times the reports on it without loading anything
   (drop it by hand: ``DROP DATABASE "sdbench_reports_…"``).

A printed figure, not a test (tests/test_reports.py checks every figure's value).
Everything stays on loopback; the load is bounded (``--tickets`` at most 2,000,000).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from _support import load_average, log, migrated_app, postgresql_database

TARGET_SECONDS = 2.0
MAX_TICKETS = 2_000_000
DAYS = 730
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def seed() -> dict:
    from servicedesk.extensions import db
    from servicedesk.identity import service as identity
    from servicedesk.kb.models import Article
    from servicedesk.sla.models import SlaCalendar, SlaPolicy
    from servicedesk.tickets.admin import create_category

    groups = [identity.create_group(None, f"Group {i}", 1 + i % 3) for i in range(30)]
    agents = [identity.create_user(None, f"agent{i}", f"agent{i}@example.test", "agent",
                                   groups=[groups[i % 30].name]) for i in range(60)]
    admin = identity.create_user(None, "admin", "admin@example.test", "admin")
    manager = identity.create_user(None, "manager", "manager@example.test", "manager",
                                   groups=[groups[0].name])  # sees the L1 groups
    requester = identity.create_user(None, "employee", "employee@example.test", "requester")
    categories = []
    for i in range(20):
        top = create_category(None, f"Category {i}")
        categories.append((top.id, [create_category(None, f"Sub {i}.{j}", parent_id=top.id).id
                                    for j in range(5)]))
    calendar = SlaCalendar(name="24x7", timezone="UTC",
                           week={str(d): [["00:00", "24:00"]] for d in range(7)})
    db.session.add(calendar)
    db.session.flush()
    policy = SlaPolicy(name="Standard", calendar_id=calendar.id, response_minutes=60,
                       resolution_minutes=480)
    article = Article(title="Restart it", owner_id=agents[0].id, state="published")
    db.session.add_all([policy, article])
    db.session.commit()
    return {"groups": [(g.id, g.support_line) for g in groups],
            "agents": [a.id for a in agents], "admin": admin, "manager": manager,
            "requester": requester.id,
            "categories": categories, "policy": policy.id, "article": article.id}


COLUMNS = ("id", "kind", "number", "title", "description", "status", "is_open", "impact",
           "urgency", "priority", "category_id", "subcategory_id", "service_id", "ci_id",
           "requester_id", "assignee_id", "group_id", "support_line", "channel",
           "reopen_count", "escalation_count", "created_at", "updated_at",
           "first_response_at", "resolved_at", "closed_at", "escalation_level", "version",
           "sla_response_breached", "sla_response_business_seconds",
           "sla_resolution_breached", "sla_resolution_business_seconds")
RESPONSE_TARGET, RESOLUTION_TARGET = timedelta(hours=1), timedelta(hours=48)


def outcome(started: datetime, stopped: datetime | None, target: timedelta) -> tuple:
    """A stopped clock's (breached, business seconds) on the 24x7 calendar: what
    refresh_clocks copies onto the ticket; the clock rows are derived from it."""
    if stopped is None:
        return None, None
    return stopped - started > target, int((stopped - started).total_seconds())


def ticket_rows(n: int, seeded: dict, kinds: list[str]):
    rng = random.Random(42)
    start = NOW - timedelta(days=DAYS)
    others = [k for k in kinds if k != "incident"] or ["incident"]
    channels = ("web", "web", "email", "api", "phone")
    for i in range(1, n + 1):
        kind = "incident" if rng.random() < 0.85 else rng.choice(others)
        created = start + timedelta(seconds=rng.randrange(DAYS * 86400))
        category, subs = rng.choice(seeded["categories"])
        group_id, line = rng.choice(seeded["groups"])
        escalations = 0 if rng.random() < 0.8 else rng.choice((1, 1, 2))
        line = max(line, 1 + escalations)
        resolved = closed = response = None
        if rng.random() < 0.93:
            hours = rng.expovariate(1 / 20)
            resolved = created + timedelta(hours=hours)
            response = created + timedelta(hours=min(hours, rng.expovariate(1 / 1.5)))
            if resolved > NOW:
                resolved = response = None
            elif rng.random() < 0.85:
                closed = resolved + timedelta(days=3)
                closed = closed if closed <= NOW else None
        status = "closed" if closed else "resolved" if resolved else "in_progress"
        stamp = (closed or resolved or created).replace(tzinfo=None)
        yield (i, kind, f"B{i:09d}", f"Bench ticket {i}", "", status, resolved is None,
               "medium", "medium", rng.randint(1, 5), category,
               rng.choice(subs) if rng.random() < 0.7 else None, rng.randint(1, 30),
               rng.randint(1, 500) if rng.random() < 0.5 else None, seeded["requester"],
               rng.choice(seeded["agents"]), group_id, min(line, 3),
               rng.choice(channels), 1 if rng.random() < 0.04 else 0, escalations,
               created.replace(tzinfo=None), stamp,
               response.replace(tzinfo=None) if response else None,
               resolved.replace(tzinfo=None) if resolved else None,
               closed.replace(tzinfo=None) if closed else None, 0, 1,
               *outcome(created, response, RESPONSE_TARGET),
               *outcome(created, resolved, RESOLUTION_TARGET))


DERIVED = [
    """INSERT INTO incidents (id, major) SELECT id, false FROM tickets WHERE kind = 'incident'""",
    # Two stopped clocks per resolved ticket, from the outcome the ticket row carries
    # (elapsed = wall time: 24x7 calendar).
    """
    INSERT INTO sla_clocks (ticket_id, metric, policy_id, target_seconds, started_at,
        paused_seconds, due_at, met_at, breached_at, elapsed_seconds)
    SELECT id, 'response', %(policy)s, 3600, created_at, 0, created_at + interval '1 hour',
        first_response_at,
        CASE WHEN sla_response_breached THEN created_at + interval '1 hour' END,
        sla_response_business_seconds
    FROM tickets WHERE resolved_at IS NOT NULL
    """,
    """
    INSERT INTO sla_clocks (ticket_id, metric, policy_id, target_seconds, started_at,
        paused_seconds, due_at, met_at, breached_at, elapsed_seconds)
    SELECT id, 'resolution', %(policy)s, 172800, created_at, 0, created_at + interval '48 hours',
        resolved_at,
        CASE WHEN sla_resolution_breached THEN created_at + interval '48 hours' END,
        sla_resolution_business_seconds
    FROM tickets WHERE resolved_at IS NOT NULL
    """,
    """
    INSERT INTO ticket_audit (ticket_id, at, action, field, old_value, new_value)
    SELECT id, created_at + interval '1 hour', 'escalated', 'support_line', '1', '2'
    FROM tickets WHERE escalation_count > 0
    """,
    """
    INSERT INTO ticket_audit (ticket_id, at, action, field, old_value, new_value)
    SELECT id, created_at + interval '2 hours', 'escalated', 'support_line', '2', '3'
    FROM tickets WHERE escalation_count > 1
    """,
    """
    INSERT INTO csat_surveys (ticket_id, resolved_at, rating, answered_at, reopened)
    SELECT id, resolved_at, CASE WHEN id %% 2 = 0 THEN 1 + id %% 5 END,
        CASE WHEN id %% 2 = 0 THEN resolved_at + interval '1 day' END, false
    FROM tickets WHERE resolved_at IS NOT NULL AND id %% 3 = 0
    """,
    """
    INSERT INTO kb_deflections (at, user_id, article_id, source, query)
    SELECT %(now)s - (g %% %(days)s) * interval '1 day', %(requester)s, %(article)s,
        'article', ''
    FROM generate_series(1, %(deflections)s) AS g
    """,
]


def bulk_load(seeded: dict, tickets: int) -> float:
    from servicedesk.extensions import db
    from servicedesk.tickets.workflow import WORKFLOWS

    started = time.perf_counter()
    raw = db.engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY tickets ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                for row in ticket_rows(tickets, seeded, sorted(WORKFLOWS)):
                    copy.write_row(row)
            log(f"  tickets copied in {time.perf_counter() - started:.1f} s")
            params = {"policy": seeded["policy"], "now": NOW.replace(tzinfo=None),
                      "days": DAYS, "requester": seeded["requester"],
                      "article": seeded["article"], "deflections": max(1, tickets // 50)}
            for statement in DERIVED:
                cursor.execute(statement, params)
            cursor.execute("SELECT setval('tickets_id_seq', %s)", (tickets,))
        raw.commit()
    finally:
        raw.close()
    # As autovacuum leaves a settled table: statistics, and the visibility map that lets
    # index-only scans skip the table (VACUUM runs outside a transaction).
    import psycopg

    dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("tickets", "incidents", "sla_clocks", "ticket_audit", "csat_surveys",
                      "kb_deflections"):
            conn.execute(f"VACUUM ANALYZE {table}")
    return time.perf_counter() - started


@contextmanager
def statement_times(engine, show: bool):
    """With ``show``: print the slowest SQL statements run inside the block."""
    if not show:
        yield
        return
    from sqlalchemy import event

    times: list[tuple[float, str]] = []

    def before(conn, _cursor, _statement, _parameters, _context, _many):
        conn.info.setdefault("started", []).append(time.perf_counter())

    def after(conn, _cursor, statement, _parameters, _context, _many):
        times.append((time.perf_counter() - conn.info["started"].pop(), statement))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
        for seconds, statement in sorted(times, reverse=True)[:4]:
            log(f"      {seconds:6.3f} s  {' '.join(statement.split())[:150]}")


def timed(client, headers, path: str, query: dict, repeat: int) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, query_string=query, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"{path} {query}: {response.status_code} {response.get_data()[:300]}")
        best, size = min(best, elapsed), len(response.get_data())
    return best, size


@contextmanager
def database(args):
    """The bench database's URL: ``--database`` as it is, a new one (dropped on the way
    out unless ``--keep``)."""
    if args.database:
        yield args.database
        return
    if not args.keep:
        with postgresql_database(args.pg_dsn, "sdbench_reports_") as url:
            yield url
        return
    import secrets

    import psycopg

    name = "sdbench_reports_" + secrets.token_hex(5)
    with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = args.pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        log(f"\nkept: --database {base}/{name}")


def reseed() -> dict:
    """What ``run`` needs of ``seed``'s rows, read back from a kept database."""
    from sqlalchemy import select

    from servicedesk.extensions import db
    from servicedesk.identity.models import Group, User
    from servicedesk.tickets.models import Category

    users = {u.username: u for u in db.session.scalars(
        select(User).where(User.username.in_(("admin", "manager"))))}
    group = db.session.scalar(select(Group).where(Group.name == "Group 0"))
    category = db.session.scalar(select(Category).where(Category.name == "Category 0"))
    return {"admin": users["admin"], "manager": users["manager"],
            "groups": [(group.id, group.support_line)], "categories": [(category.id, [])]}


def run(args) -> int:
    from servicedesk.extensions import db
    from servicedesk.identity.service import issue_token

    with database(args) as url:
        if args.database:
            from _support import bench_app

            app = bench_app(url, {"SERVICEDESK_SECRET_KEY": "bench"})
        else:
            app = migrated_app(url)
        with app.app_context():
            if args.database:
                seeded = reseed()
            else:
                seeded = seed()
                log(f"loading {args.tickets:,} tickets (load average {load_average()})")
                log(f"  loaded in {bulk_load(seeded, args.tickets):.1f} s")
            token = issue_token(seeded["admin"])
            manager_token = issue_token(seeded["manager"])
            db.session.commit()
            group = seeded["groups"][0][0]
            category = seeded["categories"][0][0]
        admin_headers = {"Authorization": f"Bearer {token}"}
        manager_headers = {"Authorization": f"Bearer {manager_token}"}
        last = NOW.date() - timedelta(days=1)
        month = (NOW.date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        cases = [
            ("KPIs, last 30 days", "/api/v1/reports/kpis",
             {"from": (last - timedelta(days=29)).isoformat(), "to": last.isoformat()}),
            ("KPIs, last 30 days, as an L1 manager", "/api/v1/reports/kpis",
             {"from": (last - timedelta(days=29)).isoformat(), "to": last.isoformat(),
              "as": "manager"}),
            ("KPIs, last 365 days", "/api/v1/reports/kpis",
             {"from": (last - timedelta(days=364)).isoformat(), "to": last.isoformat()}),
            ("KPIs, 90 days, incidents of one group", "/api/v1/reports/kpis",
             {"from": (last - timedelta(days=89)).isoformat(), "to": last.isoformat(),
              "kind": "incident", "group": group}),
            ("KPIs, 90 days, one category", "/api/v1/reports/kpis",
             {"from": (last - timedelta(days=89)).isoformat(), "to": last.isoformat(),
              "category": category}),
            ("KPIs CSV, last 30 days", "/api/v1/reports/kpis",
             {"from": (last - timedelta(days=29)).isoformat(), "to": last.isoformat(),
              "format": "csv"}),
            (f"Category report {month}", "/api/v1/reports/categories", {"month": month}),
            (f"Category report {month} CSV", "/api/v1/reports/categories",
             {"month": month, "format": "csv"}),
        ]
        slow = 0
        log(f"\n{'report':45} {'best s':>8} {'bytes':>8}   (target < {TARGET_SECONDS:.0f} s;"
            f" load average {load_average()})")
        with app.app_context():
            client = app.test_client()
            for label, path, query in cases:
                headers = manager_headers if query.pop("as", None) else admin_headers
                with statement_times(db.engine, args.statements):
                    seconds, size = timed(client, headers, path, query, args.repeat)
                slow += seconds >= TARGET_SECONDS
                log(f"{label:45} {seconds:8.3f} {size:8d}"
                    f"{'   SLOW' if seconds >= TARGET_SECONDS else ''}")
            db.session.remove()
            db.engine.dispose()
        log(f"\n{len(cases) - slow} of {len(cases)} reports under {TARGET_SECONDS:.0f} s "
            f"over {args.tickets:,} tickets")
        return 1 if slow else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--statements", action="store_true",
                        help="print each report's slowest SQL statements")
    parser.add_argument("--keep", action="store_true",
                        help="keep the database afterwards and print its URL")
    parser.add_argument("--database", metavar="URL",
                        help="time the reports on a database a --keep run left (no load)")
    parser.add_argument("--pg-dsn", default=os.environ.get(
        "SERVICEDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    if not 1000 <= args.tickets <= MAX_TICKETS:
        parser.error(f"--tickets must be from 1,000 to {MAX_TICKETS:,}")
    if not 1 <= args.repeat <= 10:
        parser.error("--repeat must be from 1 to 10")
    for dsn in (args.pg_dsn, args.database or args.pg_dsn):
        host = dsn.split("@")[-1].split("/")[0].split(":")[0]
        if host not in ("127.0.0.1", "localhost", "::1", ""):
            parser.error("the bench stays on loopback: --pg-dsn must name 127.0.0.1")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
