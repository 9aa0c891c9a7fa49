"""Background jobs: auto-closing resolved incidents, in-process and on a real RQ worker."""

from __future__ import annotations

import json
import os
import subprocess
import zlib
from datetime import timedelta

import pytest
from conftest import SERVICEDESK, redis_test_url
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from sqlalchemy import select, update

from servicedesk import jobs
from servicedesk.extensions import db
from servicedesk.incidents.jobs import auto_close_resolved
from servicedesk.incidents.models import Incident
from servicedesk.tickets.models import AuditEntry, Ticket
from servicedesk.types import utcnow

AUTO_CLOSE = "servicedesk.incidents.jobs.auto_close_resolved"
TEST_REDIS_URL = redis_test_url(13, "SERVICEDESK_TEST_REDIS")


def _resolved(world, desk, days_ago: float) -> str:
    number = world.incident(desk.employee)["number"]
    response = world.api(desk.agent).post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed", "resolution_notes": "Rebooted."})
    assert response.status_code == 200
    db.session.execute(update(Ticket).where(Ticket.number == number).values(
        resolved_at=utcnow() - timedelta(days=days_ago)))
    db.session.commit()
    return number


def _status(number) -> str:
    """The committed status, read in a transaction of its own (ended at once: outside a
    request, a SQLite transaction holds the write lock the job needs)."""
    db.session.rollback()
    try:
        return db.session.scalar(select(Incident.status).where(Incident.number == number))
    finally:
        db.session.rollback()


# --- the job itself ------------------------------------------------------------------------


def test_auto_close_closes_incidents_resolved_longer_ago_than_the_setting(world, desk, app):
    days = app.config["SERVICEDESK_AUTOCLOSE_DAYS"]
    old = [_resolved(world, desk, days + 1), _resolved(world, desk, days * 10)]
    young = _resolved(world, desk, days - 0.5)
    open_one = world.incident(desk.employee)["number"]
    assert auto_close_resolved() == 2
    assert [_status(n) for n in old] == ["closed", "closed"]
    assert _status(young) == "resolved"
    assert _status(open_one) == "new"


def test_auto_close_is_done_by_the_system(world, desk, app):
    number = _resolved(world, desk, app.config["SERVICEDESK_AUTOCLOSE_DAYS"] + 1)
    auto_close_resolved()
    entry = db.session.scalars(select(AuditEntry).join(Ticket, Ticket.id == AuditEntry.ticket_id)
                               .where(Ticket.number == number, AuditEntry.field == "status")
                               .order_by(AuditEntry.id.desc())).first()
    assert (entry.old_value, entry.new_value, entry.actor_id) == ("resolved", "closed", None)
    history = world.api(desk.agent).get(f"/incidents/{number}/history").get_json()
    last = [e for e in history if e["field"] == "status"][-1]
    assert (last["actor"], last["actor_name"]) == (None, "System")
    body = world.api(desk.agent).get(f"/incidents/{number}").get_json()
    assert (body["status"], body["is_open"]) == ("closed", False)
    assert body["closed_at"] is not None
    assert body["resolution_code"] == "fixed"  # closing keeps the resolution


def test_running_auto_close_again_closes_nothing_more(world, desk, app):
    days = app.config["SERVICEDESK_AUTOCLOSE_DAYS"]
    _resolved(world, desk, days + 1)
    _resolved(world, desk, days + 2)
    assert auto_close_resolved() == 2
    audit = db.session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1))
    assert auto_close_resolved() == 0
    assert db.session.scalar(select(AuditEntry.id).order_by(AuditEntry.id.desc()).limit(1)) == audit


def test_the_auto_close_period_is_configurable(world, desk, app):
    number = _resolved(world, desk, 2)
    app.config["SERVICEDESK_AUTOCLOSE_DAYS"] = 3
    assert auto_close_resolved() == 0
    app.config["SERVICEDESK_AUTOCLOSE_DAYS"] = 1
    assert auto_close_resolved() == 1
    assert _status(number) == "closed"


def test_a_reopened_incident_is_not_auto_closed(world, desk, app):
    number = _resolved(world, desk, app.config["SERVICEDESK_AUTOCLOSE_DAYS"] + 1)
    world.api(desk.agent).post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    assert auto_close_resolved() == 0
    assert _status(number) == "in_progress"


def test_without_redis_a_job_runs_in_process(world, desk, app):
    _resolved(world, desk, app.config["SERVICEDESK_AUTOCLOSE_DAYS"] + 1)
    assert app.config["SERVICEDESK_REDIS_URL"] is None
    assert jobs.enqueue(AUTO_CLOSE) == 1


def test_the_in_process_scheduler_runs_each_periodic_job_once_per_interval(world, desk, app):
    number = _resolved(world, desk, app.config["SERVICEDESK_AUTOCLOSE_DAYS"] + 1)
    scheduler = jobs.InProcessJobs(app, tick=3600)
    # (Other periodic jobs run on their own intervals: only this one is looked at.)
    assert "auto-close-resolved" in scheduler.run_due(now=1_000_000.0)
    assert _status(number) == "closed"
    assert scheduler.run_due(now=1_000_001.0) == []
    assert "auto-close-resolved" in scheduler.run_due(now=1_000_000.0 + 3600)


# --- on a real Redis and a real RQ worker -----------------------------------------------------


@pytest.fixture
def redis_url(app):
    connection = Redis.from_url(TEST_REDIS_URL)
    try:
        connection.ping()
    except Exception as exc:  # pragma: no cover - the machine runs Redis
        pytest.fail(f"Redis at {TEST_REDIS_URL} is not reachable: {exc}")
    connection.flushdb()
    app.config["SERVICEDESK_REDIS_URL"] = TEST_REDIS_URL
    yield TEST_REDIS_URL
    connection.flushdb()
    connection.close()


def _run_worker(app, redis_url) -> subprocess.CompletedProcess:
    env = {**os.environ,
           "SERVICEDESK_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "SERVICEDESK_REDIS_URL": redis_url,
           "SERVICEDESK_SECRET_KEY": "worker-test-secret"}
    # Nothing of ours may hold a transaction (on SQLite: the write lock) meanwhile.
    db.session.rollback()
    return subprocess.run([SERVICEDESK, "worker", "--burst"], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.jobs
def test_a_real_rq_worker_runs_the_auto_close_job(world, desk, app, redis_url):
    days = app.config["SERVICEDESK_AUTOCLOSE_DAYS"]
    old = _resolved(world, desk, days + 1)
    young = _resolved(world, desk, 0)
    job = jobs.enqueue(AUTO_CLOSE)
    assert isinstance(job, Job)
    assert _status(old) == "resolved"  # queued, not run here
    result = _run_worker(app, redis_url)
    job = Job.fetch(job.id, connection=Redis.from_url(redis_url), serializer=JSONSerializer)
    # A burst worker exits 0 even when the job failed: the job's status is the truth.
    assert job.get_status() == JobStatus.FINISHED, (
        result.stdout, result.stderr, job.latest_result() and job.latest_result().exc_string)
    assert job.return_value() == 1
    assert _status(old) == "closed"
    assert _status(young) == "resolved"


@pytest.mark.jobs
def test_a_pickled_job_is_refused_by_the_json_only_worker(world, desk, app, redis_url):
    """Whatever lands in Redis never becomes code: a pickled job fails to deserialize."""
    number = _resolved(world, desk, app.config["SERVICEDESK_AUTOCLOSE_DAYS"] + 1)
    pickled = Queue(jobs.QUEUE_NAME, connection=Redis.from_url(redis_url)).enqueue(AUTO_CLOSE)
    _run_worker(app, redis_url)
    job = Job.fetch(pickled.id, connection=Redis.from_url(redis_url))
    assert job.get_status() == JobStatus.FAILED
    assert "DeserializationError" in job.latest_result().exc_string
    assert _status(number) == "resolved"


def test_jobs_are_enqueued_as_json_never_pickle(app, redis_url):
    with app.app_context():
        job = jobs.enqueue(AUTO_CLOSE, 42, "x", job_id="json-check")
    assert job.serializer is JSONSerializer or isinstance(job.serializer, JSONSerializer)
    raw = Redis.from_url(redis_url).hget("rq:job:json-check", "data")
    assert not raw.startswith(b"\x80")  # no pickle protocol header
    payload = json.loads(zlib.decompress(raw))
    assert payload[0] == AUTO_CLOSE
    assert payload[2:] == [[42, "x"], {}] or [42, "x"] in payload
    with pytest.raises(Exception):
        import pickle

        pickle.loads(zlib.decompress(raw))


def test_enqueue_periodic_enqueues_one_job_per_slot(app, redis_url):
    queue = jobs.get_queue(app)
    interval = jobs.PERIODIC_JOBS["auto-close-resolved"][1]
    now = 1_800_000_000.0

    def auto_close(job_ids):  # other periodic jobs have slots of their own
        return [j for j in job_ids if j.startswith("periodic-auto-close-resolved-")]

    first = auto_close(jobs.enqueue_periodic(app, now=now))
    second = auto_close(jobs.enqueue_periodic(app, now=now + interval / 2))  # same slot
    assert first == [f"periodic-auto-close-resolved-{int(now // interval)}"]
    assert second == []
    assert auto_close(queue.job_ids) == first
    job = queue.fetch_job(first[0])
    assert job.func_name == AUTO_CLOSE
    raw = queue.connection.hget(f"rq:job:{first[0]}", "data")
    assert json.loads(zlib.decompress(raw))[0] == AUTO_CLOSE
    # The next slot gets its own job.
    third = auto_close(jobs.enqueue_periodic(app, now=now + interval))
    assert third == [f"periodic-auto-close-resolved-{int(now // interval) + 1}"]
    assert len(auto_close(queue.job_ids)) == 2


def test_two_schedulers_in_the_same_slot_enqueue_one_job_between_them(app, redis_url):
    from conftest import make_app

    other = make_app(app.config["SQLALCHEMY_DATABASE_URI"], SERVICEDESK_REDIS_URL=redis_url)
    now = 1_800_000_000.0
    enqueued = jobs.enqueue_periodic(app, now=now) + jobs.enqueue_periodic(other, now=now + 1)
    # Each periodic job once between the two (both calls fall in one slot of each).
    assert sorted(j.rsplit("-", 1)[0] for j in enqueued) == sorted(
        f"periodic-{name}" for name in jobs.PERIODIC_JOBS)
    assert jobs.get_queue(app).count == len(jobs.PERIODIC_JOBS)
