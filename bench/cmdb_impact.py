"""CMDB benchmark: downstream impact queries and import throughput on PostgreSQL.

Run it (from the repository root, with the venv)::

    .venv/bin/python bench/cmdb_impact.py                         # 100,000 CIs, 300,000 relations
    .venv/bin/python bench/cmdb_impact.py --cis 20000 --relations 60000 --queries 100
    make bench-cmdb                                               # = the first line

It

1. creates a PostgreSQL database of its own (``sdbench_cmdb_<random>``, through the
   admin DSN ``--pg-dsn``, default ``postgresql://postgres@127.0.0.1:5432/postgres``,
   used only to CREATE and DROP it), migrates it with ``servicedesk db upgrade`` (the
   seed classes come with the migration) and drops it at the end, whatever happens;
2. loads an estate of ``--cis`` CIs and ``--relations`` relations with COPY (fast, not
   what is measured), shaped like a data centre: 50 locations; network devices hosted
   in them and connected in rings (cycles); servers hosted in a location and connected
   to two switches; virtual machines hosted on servers; databases running on servers
   or VMs; applications running on VMs and depending on databases and on other
   applications (more cycles); business and technical services the applications and
   databases are part of. Random but seeded (``--seed``); then ANALYZE;
3. times ``cmdb.impact.analyse`` downstream to ``--depth`` (6) from random CIs, exactly
   what ``GET /api/v1/cmdb/cis/<id>/impact`` runs (the recursive CTE and the loading of
   the CIs found), for ``--queries`` roots drawn from all CIs and as many drawn from
   the infrastructure (locations, network devices, servers: the big fan-outs), each set
   bounded by ``--time-limit`` seconds: p50, p95 and max in ms, CIs found, and how
   often the walk hit its cap (``truncated``); and prints the plan of one query;
4. imports ``--import-rows`` new servers (with attributes, a location reference by
   external key) and as many relations through ``cmdb.importer.run_import`` (what
   ``servicedesk cmdb import`` and ``POST /api/v1/cmdb/import`` run): a dry run, the
   import, and the same import again (all unchanged); rows per second each.

Everything stays on loopback. It prints figures; it is not a test (the tests check
that the results are right: tests/test_cmdb_impact.py, tests/test_cmdb_import.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVICEDESK = str(Path(sys.executable).with_name("servicedesk"))
PG_ADMIN_DSN = os.environ.get("SERVICEDESK_BENCH_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")

# Share of the CIs per class (the rest after locations go by these weights).
MIX = [("network_device", 0.03), ("server", 0.17), ("virtual_machine", 0.30),
       ("database", 0.12), ("application", 0.33), ("technical_service", 0.02),
       ("business_service", 0.03)]
LOCATIONS = 50


def database_url(admin_dsn: str, name: str) -> str:
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


# --- the estate ----------------------------------------------------------------------


def build_estate(n_cis: int, n_relations: int, rng: random.Random):
    """(cis: list of (class key, name), relations: set of (source, type, target)) with
    CI numbers 1..n in the order of ``cis``."""
    cis = [("location", f"loc-{i}") for i in range(LOCATIONS)]
    rest = n_cis - LOCATIONS
    counts = {key: int(rest * share) for key, share in MIX}
    counts["application"] += rest - sum(counts.values())
    for key, _share in MIX:
        cis += [(key, f"{key[:3]}-{i}") for i in range(counts[key])]
    ids: dict[str, list[int]] = {}
    for number, (key, _name) in enumerate(cis, start=1):
        ids.setdefault(key, []).append(number)
    rel: set[tuple[int, str, int]] = set()

    def add(source, kind, target):
        if source != target:
            rel.add((source, kind, target))

    locations, switches = ids["location"], ids["network_device"]
    servers, vms = ids["server"], ids["virtual_machine"]
    for i, sw in enumerate(switches):
        add(sw, "hosted_on", rng.choice(locations))
        add(sw, "connects_to", switches[(i + 1) % len(switches)])  # a ring: cycles
    for server in servers:
        add(server, "hosted_on", rng.choice(locations))
        for sw in rng.sample(switches, 2):
            add(server, "connects_to", sw)
    for vm in vms:
        add(vm, "hosted_on", rng.choice(servers))
    for db in ids["database"]:
        add(db, "runs_on", rng.choice(servers + vms))
    services = ids["business_service"] + ids["technical_service"]
    for app in ids["application"]:
        add(app, "runs_on", rng.choice(vms))
        for db in rng.sample(ids["database"], rng.randint(1, 2)):
            add(app, "depends_on", db)
        add(app, "part_of", rng.choice(services))
    for db in ids["database"]:
        add(db, "part_of", rng.choice(ids["technical_service"]))
    apps = ids["application"]
    for _attempt in range(n_relations * 3):  # top up with app -> app dependencies
        if len(rel) >= n_relations:
            break
        add(rng.choice(apps), "depends_on", rng.choice(apps))
    return cis, sorted(rel)[:n_relations], ids


def copy_estate(dsn: str, cis, relations) -> None:
    with psycopg.connect(dsn) as conn:
        classes = dict(conn.execute("SELECT key, id FROM cmdb_classes").fetchall())
        now = "2026-01-01 00:00:00"
        with conn.cursor().copy(
                "COPY cmdb_cis (id, name, class_id, status, description, attributes, "
                "external_key, created_at, updated_at, version) FROM STDIN") as copy:
            for number, (key, name) in enumerate(cis, start=1):
                copy.write_row((number, name, classes[key], "in_use", "", "{}", name, now,
                                now, 1))
        with conn.cursor().copy(
                "COPY cmdb_relations (source_id, target_id, type, dependent_id, "
                "dependency_id, created_at) FROM STDIN") as copy:
            for source, kind, target in relations:
                dependent, dependency = (target, source) if kind == "part_of" else (
                    source, target)
                copy.write_row((source, target, kind, dependent, dependency, now))
        conn.execute("SELECT setval(pg_get_serial_sequence('cmdb_cis', 'id'), %s)",
                     (len(cis),))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE cmdb_cis")
        conn.execute("VACUUM ANALYZE cmdb_relations")


# --- measuring -----------------------------------------------------------------------


def time_impacts(app, roots: list[int], depth: int, time_limit: float) -> dict:
    from cmdb.impact import WALK_CAP, analyse
    from cmdb.models import ConfigurationItem
    from servicedesk.extensions import db

    timings, found, truncated = [], [], 0
    deadline = time.monotonic() + time_limit
    with app.app_context():
        for ci_id in roots:
            if time.monotonic() > deadline:
                break
            ci = db.session.get(ConfigurationItem, ci_id)
            start = time.perf_counter()
            result = analyse([ci], "downstream", depth)
            timings.append((time.perf_counter() - start) * 1000)
            found.append(len(result.items))
            truncated += result.truncated
            db.session.rollback()
            db.session.expunge_all()
    timings.sort()
    return {
        "queries": len(timings),
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[min(len(timings) - 1, int(len(timings) * 0.95))],
        "max_ms": timings[-1],
        "mean_found": statistics.mean(found),
        "max_found": max(found),
        "truncated": truncated,
        "cap": WALK_CAP,
    }


def explain(app, root: int, depth: int) -> list[str]:
    from cmdb.impact import WALK_CAP, walk_statement
    from servicedesk.extensions import db

    with app.app_context():
        statement = walk_statement([root], "downstream", depth, WALK_CAP)
        compiled = statement.compile(db.engine, compile_kwargs={"literal_binds": True})
        rows = db.session.execute(db.text("EXPLAIN (ANALYZE, COSTS OFF) " + str(compiled)))
        return [row[0] for row in rows]


def time_import(app, ids: dict, rows: int) -> list[tuple[str, float, dict]]:
    from cmdb.importer import run_import

    locations = [f"loc-{i}" for i in range(LOCATIONS)]
    payload = {
        "cis": [{"external_key": f"imp-{i}", "name": f"imported-{i}", "class": "server",
                 "status": "in_use", "attributes": {
                     "ip_address": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
                     "os": "Debian 12", "cpu_cores": 8 + i % 56, "memory_gb": "64",
                     "location": locations[i % LOCATIONS], "under_warranty": i % 2 == 0,
                     "purchased_on": "2025-06-01"}} for i in range(rows)],
        "relations": [{"source": f"imp-{i}", "type": "hosted_on",
                       "target": locations[i % LOCATIONS]} for i in range(rows)],
    }
    total = 2 * rows
    results = []
    with app.app_context():
        for label, dry in (("dry run", True), ("import", False), ("again (unchanged)", False)):
            start = time.perf_counter()
            report = run_import(None, payload, dry_run=dry, max_rows=None)
            seconds = time.perf_counter() - start
            results.append((label, total / seconds, report))
    return results


# --- main ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cis", type=int, default=100_000)
    parser.add_argument("--relations", type=int, default=300_000)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--queries", type=int, default=200, help="per set of roots")
    parser.add_argument("--time-limit", type=float, default=60.0,
                        help="seconds per set of queries")
    parser.add_argument("--import-rows", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--pg-dsn", default=PG_ADMIN_DSN)
    args = parser.parse_args()
    if args.cis < 1000 or args.relations < args.cis:
        parser.error("at least 1,000 CIs and as many relations as CIs")

    name = f"sdbench_cmdb_{secrets.token_hex(4)}"
    url = database_url(args.pg_dsn, name)
    with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    app = None
    try:
        env = {**os.environ, "SERVICEDESK_DATABASE_URL": url}
        subprocess.run([SERVICEDESK, "db", "upgrade"], env=env, check=True,
                       capture_output=True, timeout=300)
        rng = random.Random(args.seed)
        started = time.perf_counter()
        cis, relations, ids = build_estate(args.cis, args.relations, rng)
        copy_estate(url.replace("+psycopg", ""), cis, relations)
        print(f"estate: {len(cis):,} CIs, {len(relations):,} relations "
              f"(built and loaded in {time.perf_counter() - started:.1f} s)")

        from servicedesk import create_app

        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SERVICEDESK_REDIS_URL": None,
                          "SERVICEDESK_LOAD_PLUGINS": False})
        every = [rng.randint(1, len(cis)) for _ in range(args.queries)]
        infra = ids["location"] + ids["network_device"] + ids["server"]
        infra_roots = [rng.choice(infra) for _ in range(args.queries)]
        time_impacts(app, every[:5], args.depth, args.time_limit)  # warm up
        for label, roots in (("any CI", every), ("infrastructure", infra_roots)):
            r = time_impacts(app, roots, args.depth, args.time_limit)
            print(f"downstream impact, depth {args.depth}, {label}: {r['queries']} queries, "
                  f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, max {r['max_ms']:.1f} ms; "
                  f"CIs found mean {r['mean_found']:.0f}, max {r['max_found']:,}; "
                  f"walk capped ({r['cap']:,} paths) {r['truncated']} times")
        print("plan of one downstream query from a location:")
        for line in explain(app, ids["location"][0], args.depth):
            print("   ", line)
        for label, rate, report in time_import(app, ids, args.import_rows):
            print(f"import {label}: {2 * args.import_rows:,} rows "
                  f"({args.import_rows:,} CIs + {args.import_rows:,} relations) at "
                  f"{rate:,.0f} rows/s; {json.dumps(report)}")
    finally:
        if app is not None:
            from servicedesk.extensions import db

            with app.app_context():
                db.engine.dispose()
        with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
