"""Running jobs: on RQ with Redis, or in-process in the embedded default.

Job functions are plain functions addressed by dotted path, taking JSON-able ids; the
same function runs on an RQ worker or in-process, never a variant of it. Queues use
RQ's JSON serializer only: nothing read from Redis is ever unpickled.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

from flask import Flask, current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

log = logging.getLogger(__name__)
QUEUE_NAME = "servicedesk"

# name -> (dotted path of the job function, interval in seconds)
PERIODIC_JOBS = {
    "auto-close-resolved": ("servicedesk.incidents.jobs.auto_close_resolved", 3600),
    # The outbox's safety net: retries, and rows whose delivery job was lost.
    "deliver-notifications": ("servicedesk.notify.jobs.deliver_due", 60),
    # SLA escalation's reconciliation sweep: fires what a lost job did not.
    "sla-sweep": ("servicedesk.sla.jobs.sweep", 60),
    # Starts a directory sync when the configured interval (admin settings) has passed.
    "ldap-sync": ("servicedesk.ldap.jobs.scheduled_sync", 60),
    # Inbound channels that poll (e-mail over IMAP): one pass each.
    "poll-channels": ("servicedesk.channels.poll_channels", 60),
    # Pending approvals past their due instant: escalated once to the approvers' managers.
    "approvals-escalate": ("servicedesk.approvals.jobs.escalate_overdue", 300),
}
# In-process (no Redis), a sweep is the only thing that fires SLA steps (there is no
# enqueue_at): run it more often. The timer ticks at least this often too.
IN_PROCESS_INTERVALS = {"sla-sweep": 15}


def redis_connection(app: Flask | None = None) -> Redis | None:
    url = (app or current_app).config.get("SERVICEDESK_REDIS_URL")
    return Redis.from_url(url) if url else None


def get_queue(app: Flask | None = None) -> Queue | None:
    connection = redis_connection(app)
    if connection is None:
        return None
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def resolve(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def enqueue(path: str, *args, job_id: str | None = None):
    """Run job ``path(*args)``: on a worker with Redis, else here and now."""
    queue = get_queue()
    if queue is None:
        return resolve(path)(*args)
    return queue.enqueue(path, *args, job_id=job_id)


def enqueue_periodic(app: Flask, now: float | None = None) -> list[str]:
    """Enqueue each periodic job once per interval; any number of schedulers may call it.

    The job id names the interval (``periodic-<name>-<slot>``) and a Redis SET NX claims
    it, so two schedulers enqueue one job per slot between them.
    """
    now = time.time() if now is None else now
    queue = get_queue(app)
    enqueued = []
    for name, (path, interval) in PERIODIC_JOBS.items():
        slot = int(now // interval)
        job_id = f"periodic-{name}-{slot}"
        if queue.connection.set(f"servicedesk:claim:{job_id}", "1", nx=True, ex=interval * 2):
            queue.enqueue(path, job_id=job_id)
            enqueued.append(job_id)
    return enqueued


def run_scheduler(app: Flask, tick: float = 15.0, stop: threading.Event | None = None) -> None:
    """``servicedesk scheduler``: enqueue periodic jobs (JSON, deterministic ids) forever."""
    stop = stop or threading.Event()
    while not stop.is_set():
        try:
            for job_id in enqueue_periodic(app):
                log.info("enqueued %s", job_id)
        except Exception:  # Redis away for a moment: try again next tick
            log.exception("scheduler tick failed")
        stop.wait(tick)


class InProcessJobs(threading.Thread):
    """The embedded default's scheduler: periodic jobs on a timer, in this process."""

    def __init__(self, app: Flask, tick: float | None = None):
        super().__init__(name="servicedesk-jobs", daemon=True)
        self.app = app
        self.tick = tick or min(app.config["SERVICEDESK_JOB_INTERVAL"],
                                *IN_PROCESS_INTERVALS.values())
        self.stop_event = threading.Event()
        self.wake_event = threading.Event()
        self.last_run: dict[str, float] = {}

    def wake(self, name: str) -> None:
        """Run periodic job ``name`` on this thread now rather than at its next interval
        (the outbox calls it after a commit that queued notifications)."""
        self.last_run[name] = 0.0
        self.wake_event.set()

    def stop(self) -> None:
        self.stop_event.set()
        self.wake_event.set()

    def run_due(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        ran = []
        for name, (path, interval) in PERIODIC_JOBS.items():
            interval = IN_PROCESS_INTERVALS.get(name, interval)
            if now - self.last_run.get(name, 0) < interval:
                continue
            self.last_run[name] = now
            with self.app.app_context():
                try:
                    resolve(path)()
                    ran.append(name)
                except Exception:
                    log.exception("periodic job %s failed", name)
        self.run_deferred()
        return ran

    def run_deferred(self) -> None:
        """One-off jobs asked for without Redis (``app.extensions["servicedesk"]
        ["deferred_jobs"]``: job id -> (path, args), e.g. the SLA repair after an edit):
        each id runs once, however often it was asked for since the last tick."""
        deferred = self.app.extensions["servicedesk"].setdefault("deferred_jobs", {})
        for job_id in list(deferred):
            path, args = deferred.pop(job_id)
            with self.app.app_context():
                try:
                    resolve(path)(*args)
                except Exception:
                    log.exception("job %s failed", job_id)

    def run(self):
        self.app.extensions["servicedesk"]["in_process_jobs"] = self
        while not self.stop_event.is_set():
            self.run_due()
            self.wake_event.wait(self.tick)
            self.wake_event.clear()
