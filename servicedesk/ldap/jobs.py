"""Background work of the directory sync. Jobs take ids (JSON), never objects.

``run_sync(report_id)`` runs one queued sync report (the CLI, the admin page, the API
and the schedule all create one; see ``service.start_sync``). ``scheduled_sync`` is
``PERIODIC_JOBS["ldap-sync"]``: every minute it checks whether the configured interval
has passed since the schedule last started a sync and, if so, starts one — the claim
is one conditional UPDATE, so any number of schedulers and workers start it once.
"""

from __future__ import annotations

from datetime import timedelta

from flask_babel import gettext as _
from sqlalchemy import or_, update

from servicedesk import jobs as job_runner
from servicedesk.extensions import db
from servicedesk.ldap import service
from servicedesk.ldap.models import LdapSyncReport, LdapSyncState
from servicedesk.types import utcnow

SYNC_JOB = "servicedesk.ldap.jobs.run_sync"
# A sync of a very large directory may take long; RQ's default (3 minutes) would kill it.
JOB_TIMEOUT_SECONDS = 4 * 3600
ABANDONED_AFTER = timedelta(hours=6)


def run_sync(report_id: int) -> str:
    """Run queued sync report ``report_id``; its final status."""
    report = service.execute_report(int(report_id))
    return report.status if report is not None else "missing"


def dispatch(report_id: int, run_here: bool = False) -> None:
    """Run the report on a worker (with Redis), else here and now."""
    queue = None if run_here else job_runner.get_queue()
    if queue is None:
        run_sync(report_id)
        return
    queue.enqueue(SYNC_JOB, report_id, job_id=f"ldap-sync-{report_id}",
                  job_timeout=JOB_TIMEOUT_SECONDS)


def scheduled_sync() -> str:
    """Start a sync if the directory is enabled with a schedule and its interval passed
    (and close the reports of runs that can no longer finish)."""
    close_abandoned_reports()
    config = service.load_config()
    if config is None or not config.enabled or not config.sync_interval_minutes:
        return "off"
    service.state_row()
    now = utcnow()
    due_before = now - timedelta(minutes=config.sync_interval_minutes)
    claimed = db.session.execute(
        update(LdapSyncState)
        .where(LdapSyncState.id == service.STATE_ID,
               or_(LdapSyncState.last_scheduled_at.is_(None),
                   LdapSyncState.last_scheduled_at <= due_before))
        .values(last_scheduled_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    if claimed != 1:
        return "not due"
    report = service.start_sync(None, "schedule")
    return f"report {report.id}: {report.status}"


def close_abandoned_reports() -> int:
    """Reports whose run can no longer finish: queued for longer than a job may wait
    (its job was lost, e.g. Redis was flushed) or running for longer than a job may run
    (its worker died). Marked failed, so the admin sees it and starts another."""
    now = utcnow()
    lost = db.session.execute(
        update(LdapSyncReport)
        .where(LdapSyncReport.status == "queued",
               LdapSyncReport.created_at < now - ABANDONED_AFTER)
        .values(status="failed", finished_at=now,
                message=_("This sync never started (its job was lost); start another."))
        .execution_options(synchronize_session=False)).rowcount
    died = db.session.execute(
        update(LdapSyncReport)
        .where(LdapSyncReport.status == "running",
               LdapSyncReport.started_at < now - timedelta(seconds=JOB_TIMEOUT_SECONDS)
               - ABANDONED_AFTER)
        .values(status="failed", finished_at=now,
                message=_("This sync stopped without finishing (its worker ended); what it "
                          "committed is consistent. Start another."))
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return lost + died
