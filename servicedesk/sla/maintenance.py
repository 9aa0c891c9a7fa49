"""Keeping open tickets' clocks true after an admin edits a calendar, policy or OLA.

A ticket's clocks are recomputed whenever the ticket changes; an edit of the rules
they run on changes no ticket, so without more the edit would reach a ticket only at
its next change. After every committed edit, :func:`request_repair` asks for one run
of :func:`repair_after_edit` (``servicedesk sla repair`` as a job) — never inside the
web request, which must not wait for every open ticket of a big database:

* With Redis, the job goes on the RQ queue. A burst of edits queues *one* repair: a
  Redis key (``SET NX``) holds the id of the queued job (``sla-repair-<n>``, numbered
  by a Redis counter, so ids are deterministic and a running repair is never
  overwritten by a new one). The job deletes the key as the first thing it does and
  only then reads the rules: an edit committed before that is seen by the job, an
  edit after it queues the next job. A claim whose job is gone (Redis restarted, the
  worker died before starting it) is replaced; at worst the key expires.
* Without Redis (the embedded default), the job is left for the in-process timer of
  ``servicedesk run`` (``jobs.InProcessJobs``), which is woken and runs it at once on
  its own thread; any number of edits before it gets to it make one run.

If Redis is configured but cannot be reached, the edit stands and the error is logged:
tickets follow at their next change, or at once with ``servicedesk sla repair``.

Either way the repair is ``sla.service.repair_clocks``: idempotent, in batches, every
clock recomputed from history — running it once too often costs time, never data.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app
from redis.exceptions import RedisError
from rq.job import JobStatus

from servicedesk.jobs import get_queue, redis_connection

log = logging.getLogger(__name__)

REPAIR_JOB = "servicedesk.sla.maintenance.repair_after_edit"
CLAIM_KEY = "servicedesk:sla-repair:queued"
SEQUENCE_KEY = "servicedesk:sla-repair:sequence"
CLAIM_SECONDS = 3600
IN_PROCESS_ID = "sla-repair"
_CLAIMING = b"claiming"  # the claim's value while its job is being queued
# A claim naming a job in one of these states still stands: that job will run.
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def request_repair(app: Flask | None = None) -> str | None:
    """After a committed edit: have every open ticket's clocks recomputed soon.

    Returns the id of the job queued for it, or None when one that will see this edit
    is waiting already.
    """
    app = app or current_app._get_current_object()
    queue = get_queue(app)
    if queue is not None:
        try:
            return _enqueue_once(queue)
        except RedisError:
            log.exception("could not queue the SLA repair after an edit; open tickets follow "
                          "at their next change, or run `servicedesk sla repair`")
            return None
    extensions = app.extensions["servicedesk"]
    deferred = extensions.setdefault("deferred_jobs", {})
    if IN_PROCESS_ID in deferred:
        return None
    deferred[IN_PROCESS_ID] = (REPAIR_JOB, ())
    timer = extensions.get("in_process_jobs")
    if timer is not None:
        timer.wake_event.set()  # its next tick is now, on its own thread
    return IN_PROCESS_ID


def _enqueue_once(queue) -> str | None:
    redis = queue.connection
    for _attempt in range(3):
        if redis.set(CLAIM_KEY, _CLAIMING, nx=True, ex=CLAIM_SECONDS):
            try:
                job_id = f"sla-repair-{redis.incr(SEQUENCE_KEY)}"
                queue.enqueue(REPAIR_JOB, job_id=job_id)
                redis.set(CLAIM_KEY, job_id, xx=True, ex=CLAIM_SECONDS)
            except Exception:
                redis.delete(CLAIM_KEY)
                raise
            return job_id
        claimed = redis.get(CLAIM_KEY)
        if claimed is None:
            continue  # the job just started and released it: claim again
        if claimed == _CLAIMING:
            return None  # another request is queueing it this very moment
        job = queue.fetch_job(claimed.decode())
        if job is not None and job.get_status(refresh=True) in _WAITING:
            return None
        # Its job is gone or will never start: replace the claim (a race here costs
        # at most one extra, harmless, repair).
        if redis.get(CLAIM_KEY) == claimed:
            redis.delete(CLAIM_KEY)
    log.warning("SLA repair claim kept changing hands; leaving it to the claimed job")
    return None


def repair_after_edit() -> int:
    """The job: release the claim, then recompute every open ticket's clocks (SLA and
    OLA). Returns how many tickets changed."""
    from servicedesk.sla.service import repair_clocks

    connection = redis_connection()
    if connection is not None:
        connection.delete(CLAIM_KEY)  # edits from here on queue the next repair
    changed, checked = repair_clocks()
    log.info("SLA repair after an edit: %s of %s open tickets changed", changed, checked)
    return changed
