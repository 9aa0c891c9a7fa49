"""Directory sync benchmark: a full sync of 20,000 users and an incremental one with 1 %
changed, against a real OpenLDAP slapd generated for the purpose.

Run it (from the repository root, with the venv)::

    .venv/bin/python bench/ldap_sync.py                       # SQLite, 20,000 users
    .venv/bin/python bench/ldap_sync.py --db postgresql
    .venv/bin/python bench/ldap_sync.py --db both --users 5000 --changed 2
    make bench-ldap                                           # = the first line

It

1. builds and starts a slapd (tests/ldap_server.py: the test suite's own, with
   ``--users`` generated users in ``ou=people``, a 1,000-entry server limit like
   Active Directory's, and a 100-member group mapped to a servicedesk group and role);
2. per back end, creates a fresh database of its own (a SQLite file in a temporary
   directory, or a PostgreSQL database ``bench_<random>`` made through the admin DSN
   ``--pg-dsn`` and dropped at the end) migrated with ``servicedesk db upgrade``, and
   saves the directory settings (StartTLS validated against the test CA, pages of
   1,000);
3. times, through the same code path as ``servicedesk ldap sync``:
   (a) the first, full sync (every user created);
   (b) an incremental sync with nothing changed;
   (c) an incremental sync after ``--changed`` percent of the users (1 by default)
       had their title changed in the directory (the changes themselves are made
       before the clock starts);
   (d) a full sync with nothing to change (what the daily full sync costs);
   and prints, for each, the seconds, users per second and the report's counts.

Everything stays on loopback. This is a benchmark printing figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import ldap3  # noqa: E402

import ldap_server as ls  # noqa: E402

SERVICEDESK = str(Path(sys.executable).parent / "servicedesk")
PG_ADMIN_DSN = os.environ.get("SERVICEDESK_BENCH_PG",
                              "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def database(kind: str, pg_dsn: str):
    """A fresh, migrated database URL of ``kind``; removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="sd-bench-ldap-") as tmp:
            url = f"sqlite:///{tmp}/bench.sqlite"
            migrate(url)
            yield url
        return
    import psycopg

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(url: str) -> None:
    subprocess.run([SERVICEDESK, "db", "upgrade"], check=True, capture_output=True,
                   env={**os.environ, "SERVICEDESK_DATABASE_URL": url})


def change_titles(server: ls.LdapServer, count: int, marker: str) -> float:
    """Change the title of ``count`` users spread over the directory; seconds taken."""
    started = time.perf_counter()
    conn = server.admin()
    step = max(server.bulk_users // max(count, 1), 1)
    for i in range(1, server.bulk_users + 1, step)[:count]:
        conn.modify(ls.bulk_dn(i), {"title": [(ldap3.MODIFY_REPLACE, [f"Changed {marker}"])]})
    conn.unbind()
    return time.perf_counter() - started


def run_backend(kind: str, server: ls.LdapServer, args) -> list[str]:
    from servicedesk import create_app
    from servicedesk.extensions import db
    from servicedesk.identity.service import create_group
    from servicedesk.ldap import service

    lines = []
    with database(kind, args.pg_dsn) as url:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                          "SERVICEDESK_REDIS_URL": None})
        with app.app_context():
            create_group(None, "Bulk", 1)
            service.update_config(None, ls.settings(server, base=ls.PEOPLE, page_size=1000,
                                                    group_mappings=[{
                                                        "ldap_group": ls.group_dn("bulk-agents"),
                                                        "group": "Bulk", "role": "agent"}]))

            def timed(label: str, **options) -> None:
                started = time.perf_counter()
                report = service.start_sync(None, "cli", run_here=True, **options)
                seconds = time.perf_counter() - started
                rate = server.bulk_users / seconds
                line = (f"{kind:<10} {label:<34} {seconds:8.2f} s {rate:9.0f} users/s  "
                        f"[{report.status}, {report.mode}: created {report.created}, "
                        f"updated {report.updated}, deactivated {report.deactivated}, "
                        f"unchanged {report.unchanged}, errors {report.errors}]")
                print(line, flush=True)
                lines.append(line)

            timed("full sync (all created)")
            timed("incremental, nothing changed")
            changed = max(server.bulk_users * args.changed // 100, 1)
            took = change_titles(server, changed, f"{kind} {secrets.token_hex(3)}")
            print(f"{kind:<10} (changed {changed} titles in the directory in {took:.1f} s)")
            timed(f"incremental, {args.changed} % changed")
            timed("full sync, nothing changed", full=True)
        with app.app_context():
            db.engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="sqlite")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--changed", type=int, default=1, help="percent changed")
    parser.add_argument("--pg-dsn", default=PG_ADMIN_DSN)
    args = parser.parse_args()
    started = time.perf_counter()
    server = ls.LdapServer(bulk_users=args.users).start()
    print(f"slapd with {args.users} users built and started in "
          f"{time.perf_counter() - started:.1f} s on {server.uri}", flush=True)
    summary = []
    try:
        for kind in (("sqlite", "postgresql") if args.db == "both" else (args.db,)):
            summary += run_backend(kind, server, args)
    finally:
        server.stop()
    print("\nsummary")
    for line in summary:
        print("  " + line)


if __name__ == "__main__":
    main()
