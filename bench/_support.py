"""What the benchmarks share: a database of their own (a SQLite file or a PostgreSQL
database, dropped on the way out), migrated with ``servicedesk db upgrade`` in a process
of its own, an app on it, and the printing helpers.

The scripts run as ``python bench/<name>.py``, so this module is imported as
``_support`` (the script's folder comes first on ``sys.path``). It also puts the
repository root on ``sys.path`` so that ``servicedesk`` imports from the checkout.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SERVICEDESK = str(Path(sys.executable).with_name("servicedesk"))


def log(message: str = "") -> None:
    print(message, flush=True)


def load_average() -> str:
    """The 1-minute load average and the CPU count: other work on the machine skews rates."""
    try:
        return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "unknown"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


# --- databases -----------------------------------------------------------------------


@contextmanager
def sqlite_database():
    """The URL of a SQLite file in a temporary folder, removed on the way out."""
    tmp = tempfile.mkdtemp(prefix="sd-bench-")
    try:
        yield "sqlite:///" + os.path.join(tmp, "bench.sqlite")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def postgresql_database(admin_dsn: str, prefix: str = "sdbench_", nbytes: int = 5):
    """The URL of a new PostgreSQL database ``<prefix><random>``, created and dropped
    (always, with FORCE) through ``admin_dsn``, which is used for nothing else."""
    import psycopg

    name = prefix + secrets.token_hex(nbytes)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def upgrade(env: dict) -> None:
    """``servicedesk db upgrade`` in a process of its own, with the environment ``env``."""
    subprocess.run([SERVICEDESK, "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   capture_output=True)


def migrate(url: str, **extra: str) -> dict:
    """Migrate the database at ``url``; returns the environment the upgrade ran with
    (this process's, the database URL, a fresh secret key and ``extra``), for the
    servicedesk processes a benchmark starts on it."""
    env = {**os.environ, "SERVICEDESK_DATABASE_URL": url,
           "SERVICEDESK_SECRET_KEY": secrets.token_hex(16), **extra}
    upgrade(env)
    return env


def bench_app(url: str, env: dict):
    """An in-process app on ``url`` (for seeding and timing), without Redis."""
    from servicedesk import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SERVICEDESK_REDIS_URL": None,
                       "SECRET_KEY": env["SERVICEDESK_SECRET_KEY"]})


def migrated_app(url: str):
    """Migrate the database at ``url`` and return an in-process app on it."""
    return bench_app(url, migrate(url))
