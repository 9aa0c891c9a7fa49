"""The notification outbox: rows written with their cause, delivered once, retried,
failed visibly, retried by admins; delivery kicked after commit (RQ or in-process).

Mail goes to a real SMTP server (aiosmtpd on loopback, see test_email_smtp.py); the
RQ test runs a real ``servicedesk worker --burst`` against Redis db 11.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import warnings
from datetime import timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from conftest import SERVICEDESK, redis_test_url
from flask.cli import ScriptInfo
from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy import event, func, select
from sqlalchemy.exc import SAWarning
from test_email_smtp import SmtpServer, deliver_all, free_port, incident_of, use_smtp

from servicedesk import jobs
from servicedesk.cli import main as cli
from servicedesk.extensions import db
from servicedesk.notify import delivery
from servicedesk.notify.models import Notification
from servicedesk.notify.service import queue_notification
from servicedesk.plugins import hookimpl
from servicedesk.types import utcnow

REDIS_URL = redis_test_url(11)


@pytest.fixture
def smtp(app):
    server = SmtpServer().start()
    use_smtp(app, server.port)
    yield server
    server.stop()


class Clock:
    """Moves delivery's idea of "now" (back-off and leases) without sleeping."""

    def __init__(self):
        self.offset = timedelta()

    def now(self):
        return utcnow() + self.offset

    def advance(self, **kwargs):
        self.offset += timedelta(**kwargs)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(delivery, "utcnow", clock.now)
    return clock


def warn(ticket, recipient, key, **kwargs):
    return queue_notification("sla.warning", recipient, ticket=ticket, dedupe_key=key,
                              context={"metric": "response", "step": {}, "due_at": None},
                              **kwargs)


def row(notification_id) -> Notification:
    db.session.rollback()
    return db.session.get(Notification, notification_id, populate_existing=True)


def count_rows() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Notification))


# --- schema --------------------------------------------------------------------------------


def test_the_outbox_migration_builds_exactly_the_model(app):
    with db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)  # other tables' expression indexes
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert [entry for entry in diff if "notifications" in repr(entry)] == []


# --- queueing ------------------------------------------------------------------------------


def test_a_row_is_written_with_the_change_and_a_rollback_leaves_none(world, desk, smtp):
    ticket = incident_of(world, desk.employee)
    assert warn(ticket, desk.agent, "rolled-back") is not None
    db.session.rollback()
    assert count_rows() == 0
    assert deliver_all()["sent"] == 0
    assert smtp.received == []


def test_a_dedupe_key_queues_one_message_only(world, desk, smtp):
    ticket = incident_of(world, desk.employee)
    first = warn(ticket, desk.agent, "once")
    assert warn(ticket, desk.agent, "once") is None  # same session
    db.session.commit()
    assert warn(ticket, desk.manager, "once") is None  # already in the database
    db.session.commit()
    assert count_rows() == 1
    deliver_all()
    assert [r.rcpt_tos for r in smtp.received] == [["agent1@example.test"]]
    assert row(first.id).status == "sent"


def test_inactive_recipients_and_recipients_without_an_address_get_nothing(world, desk):
    ticket = incident_of(world, desk.employee)
    gone = world.user("agent", groups=[desk.l1])
    gone.active = False
    mute = world.user("agent", groups=[desk.l1])
    mute.email = ""
    sneaky = world.user("agent", groups=[desk.l1])
    sneaky.email = "a@example.test\r\nBcc: b@example.test"
    assert warn(ticket, gone, "gone") is None
    assert warn(ticket, mute, "mute") is None
    assert warn(ticket, sneaky, "sneaky") is None
    db.session.commit()
    assert count_rows() == 0


def test_the_message_is_rendered_in_the_recipients_language_or_english(world, desk):
    ticket = incident_of(world, desk.employee)
    persian = world.user("agent", groups=[desk.l1], locale="fa")
    german = world.user("agent", groups=[desk.l1])
    german.locale = "de"  # e.g. from a directory: a language the desk does not speak
    fa = warn(ticket, persian, "fa")
    de = warn(ticket, german, "de")
    created = queue_notification("ticket.created", persian, ticket=ticket, dedupe_key="created",
                                 context={"actor": desk.employee})
    assert "هشدار" in fa.subject and "پاسخ اولیه" in fa.body_text
    assert de.subject.startswith(f"[{ticket.number}] SLA warning")
    assert "Emma Employee" in created.body_text and "was raised" not in created.body_text
    # A language the desk speaks but has no mail templates for (an admin added Arabic to
    # SERVICEDESK_LOCALES): English, still in that language's page direction.
    world.app.config["SERVICEDESK_LOCALES"] = [*world.app.config["SERVICEDESK_LOCALES"], "ar"]
    arabic = world.user("agent", groups=[desk.l1])
    arabic.locale = "ar"
    english = queue_notification("ticket.created", arabic, ticket=ticket,
                                 dedupe_key="created-ar", context={"actor": desk.employee})
    assert "was raised by Emma Employee" in english.body_text
    assert 'dir="rtl"' in english.body_html


@pytest.mark.parametrize("event, context, expected", [
    ("ticket.created", {}, "was raised"),
    ("ticket.assigned", {}, "is now assigned to"),
    ("ticket.commented", {"comment": None}, "replied on"),
    ("ticket.transitioned", {"from_status": "new", "to_status": "resolved"},
     "moved from new to resolved"),
    ("sla.breach", {"metric": "ola:7", "step": None, "due_at": None, "group": "Network"},
     "internal hand-over (OLA) – Network"),
])
def test_every_event_has_a_template(world, desk, event, context, expected):
    ticket = incident_of(world, desk.employee, title="<b>bold</b> title")
    notification = queue_notification(event, desk.agent, ticket=ticket, context=context,
                                      dedupe_key=event)
    assert expected in notification.body_text
    assert "<b>bold</b> title" in notification.body_text  # plain text: as typed
    assert "&lt;b&gt;bold&lt;/b&gt; title" in notification.body_html  # HTML: escaped
    assert notification.subject.startswith(f"[{ticket.number}] ")


# --- delivery, retries, failures ----------------------------------------------------------


def test_a_down_server_is_retried_with_back_off_until_it_comes_up(world, desk, app, clock):
    port = free_port()  # nothing listens here yet
    use_smtp(app, port)
    ticket = incident_of(world, desk.employee)
    notification = warn(ticket, desk.agent, "patience")
    db.session.commit()

    assert deliver_all() == {"sent": 0, "retry": 1, "failed": 0}
    first = row(notification.id)
    assert (first.status, first.attempts) == ("pending", 1)
    assert "Connection" in first.last_error
    assert timedelta(seconds=50) < first.next_attempt_at - clock.now() <= timedelta(minutes=1)

    assert deliver_all()["retry"] == 0  # not due yet: nothing tried
    clock.advance(minutes=1, seconds=1)
    assert deliver_all()["retry"] == 1
    second = row(notification.id)
    assert second.attempts == 2
    assert timedelta(minutes=1) < second.next_attempt_at - clock.now() <= timedelta(minutes=2)

    server = SmtpServer(port=port).start()
    try:
        assert deliver_all()["sent"] == 0  # still waiting out its back-off
        clock.advance(minutes=2, seconds=1)
        assert deliver_all() == {"sent": 1, "retry": 0, "failed": 0}
        assert len(server.received) == 1
    finally:
        server.stop()
    sent = row(notification.id)
    assert (sent.status, sent.attempts, sent.last_error) == ("sent", 3, None)


def test_after_the_last_attempt_a_notification_is_failed_with_its_error(
        world, desk, app, clock):
    use_smtp(app, free_port(), SERVICEDESK_NOTIFY_MAX_ATTEMPTS=3)
    ticket = incident_of(world, desk.employee)
    notification = warn(ticket, desk.agent, "doomed")
    db.session.commit()
    outcomes = []
    for _ in range(3):
        outcomes.append(deliver_all())
        clock.advance(hours=2)
    assert [o["retry"] for o in outcomes] == [1, 1, 0]
    assert outcomes[-1]["failed"] == 1
    failed = row(notification.id)
    assert (failed.status, failed.attempts) == ("failed", 3)
    assert "Connection" in failed.last_error


def test_the_back_off_doubles_and_is_capped(app):
    assert [delivery.backoff(n).total_seconds() / 60 for n in range(1, 9)] == [
        1, 2, 4, 8, 16, 32, 60, 60]


def test_a_row_whose_worker_died_mid_send_is_delivered_after_its_lease(
        world, desk, smtp, clock):
    ticket = incident_of(world, desk.employee)
    notification = warn(ticket, desk.agent, "orphan")
    db.session.commit()
    db.session.rollback()
    claimed = delivery.claim_next()  # ... and the worker dies here
    assert claimed.id == notification.id
    assert deliver_all()["sent"] == 0  # the lease protects it meanwhile
    clock.advance(seconds=smtp_lease() + 1)
    assert deliver_all()["sent"] == 1
    assert len(smtp.received) == 1
    # The dead worker's late outcome cannot overwrite the newer attempt's.
    assert delivery._finish(claimed, status="failed", last_error="late") is False
    assert row(notification.id).status == "sent"


def smtp_lease() -> int:
    from flask import current_app

    return current_app.config["SERVICEDESK_NOTIFY_LEASE_SECONDS"]


def test_what_is_due_is_one_range_scan_of_the_partial_index(world, desk):
    ticket = incident_of(world, desk.employee)
    for i in range(3):
        warn(ticket, desk.agent, f"plan-{i}")
    db.session.commit()
    captured = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        captured.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        db.session.execute(delivery.due_query(utcnow()))
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    db.session.rollback()
    statement, parameters = captured[-1]
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement,
                                                            parameters)]
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")  # 3 rows: a scan is cheaper
            plan = [row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
            conn.rollback()
    assert any("ix_notifications_due" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line or line.lstrip().startswith("Sort") for line in plan)


def test_a_notification_is_not_delivered_before_deliver_after(world, desk, smtp, clock):
    ticket = incident_of(world, desk.employee)
    notification = warn(ticket, desk.agent, "later", deliver_after=utcnow() + timedelta(hours=1))
    db.session.commit()
    assert deliver_all()["sent"] == 0
    assert delivery.deliver_one(notification.id) is None
    clock.advance(hours=1, seconds=1)
    assert deliver_all()["sent"] == 1
    assert len(smtp.received) == 1


def test_two_sweeps_running_at_once_send_each_message_once(world, desk, app, smtp):
    smtp.mailbox.delay = 0.01
    ticket = incident_of(world, desk.employee)
    rows = [warn(ticket, desk.agent, f"race-{i}") for i in range(16)]
    db.session.commit()
    ids = [r.id for r in rows]
    db.session.rollback()
    barrier = threading.Barrier(2, timeout=30)
    results, errors = [], []

    def sweep():
        with app.app_context():
            try:
                barrier.wait()
                results.append(delivery.deliver_due())
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert sum(r["sent"] for r in results) == 16
    message_ids = [r.message["Message-ID"] for r in smtp.received]
    assert len(message_ids) == 16 and len(set(message_ids)) == 16
    assert {row(i).status for i in ids} == {"sent"}


def test_a_missing_backend_is_retried_not_lost(world, desk, smtp):
    ticket = incident_of(world, desk.employee)
    desk.agent.email = "agent1@example.test"
    notification = warn(ticket, desk.agent, "pager")
    notification.backend = "pager"  # no plugin provides it
    db.session.commit()
    assert deliver_all()["retry"] == 1
    assert "no notifier named 'pager'" in row(notification.id).last_error


class Pager:
    """A second backend, provided by a plugin registered for one test."""

    name = "pager"

    def __init__(self):
        self.sent = []

    def address_for(self, user):
        return {"agent1": "+49 170 0000001"}.get(user.username)

    def send(self, message):
        self.sent.append(message)


class PagerPlugin:
    def __init__(self, pager):
        self.pager = pager

    @hookimpl
    def servicedesk_notifiers(self):
        return [self.pager]


def test_another_backend_from_a_plugin_gets_its_own_addresses_and_messages(world, desk, app):
    pager = Pager()
    plugin = PagerPlugin(pager)
    plugin_manager = app.extensions["servicedesk"]["plugins"]
    plugin_manager.register(plugin, name="test-pager")
    try:
        ticket = incident_of(world, desk.employee)
        paged = warn(ticket, desk.agent, "page-agent", backend="pager")
        assert warn(ticket, desk.agent_b, "page-agent-b", backend="pager") is None  # no pager
        assert paged.address == "+49 170 0000001"
        db.session.commit()
        assert deliver_all()["sent"] == 1
    finally:
        plugin_manager.unregister(plugin)
    [message] = pager.sent
    assert message.address == "+49 170 0000001"
    assert message.ticket_number == ticket.number
    assert message.subject.startswith(f"[{ticket.number}] ")
    assert message.headers["Message-ID"] == paged.headers["Message-ID"]


# --- admin: list failures, retry --------------------------------------------------------


def _failed_one(world, desk, smtp) -> Notification:
    smtp.mailbox.refuse_rcpt = "550 5.1.1 No such user"
    ticket = incident_of(world, desk.employee)
    notification = warn(ticket, desk.agent, "bounce")
    db.session.commit()
    assert deliver_all()["failed"] == 1
    return notification


def test_admins_see_failed_deliveries_and_a_retry_delivers(world, desk, smtp):
    failed = _failed_one(world, desk, smtp)
    admin = world.api(desk.admin)
    body = admin.get("/admin/notifications?status=failed").get_json()
    [item] = body["items"]
    assert item["id"] == failed.id and item["status"] == "failed"
    assert item["recipient"] == "agent1" and item["address"] == "agent1@example.test"
    assert "550" in item["last_error"] and item["attempts"] == 1
    assert item["ticket"].startswith("INC")
    assert admin.get("/admin/notifications?status=sent").get_json()["items"] == []

    smtp.mailbox.refuse_rcpt = None  # the mailbox exists now
    response = admin.post(f"/admin/notifications/{failed.id}/retry")
    assert response.status_code == 200, response.get_json()
    assert (response.get_json()["status"], response.get_json()["attempts"]) == ("pending", 0)
    assert deliver_all()["sent"] == 1
    assert len(smtp.received) == 1
    assert admin.get("/admin/notifications?status=failed").get_json()["items"] == []
    assert [i["id"] for i in admin.get("/admin/notifications?status=sent")
            .get_json()["items"]] == [failed.id]


def test_only_failed_notifications_can_be_retried(world, desk, smtp):
    ticket = incident_of(world, desk.employee)
    notification = warn(ticket, desk.agent, "pending")
    db.session.commit()
    admin = world.api(desk.admin)
    response = admin.post(f"/admin/notifications/{notification.id}/retry")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "not_failed"
    assert admin.post("/admin/notifications/999999/retry").status_code == 404
    assert admin.post("/admin/notifications/99999999999/retry").status_code == 404


def test_bad_list_filters_are_a_400_naming_the_field(world, desk):
    admin = world.api(desk.admin)
    for query, field in (("status=lost", "status"), ("limit=0", "limit"),
                         ("after=x", "after"), ("colour=red", "colour")):
        response = admin.get(f"/admin/notifications?{query}")
        assert response.status_code == 400, query
        assert field in response.get_json()["error"]["fields"], query


def test_the_list_pages_newest_first(world, desk):
    ticket = incident_of(world, desk.employee)
    rows = [warn(ticket, desk.agent, f"page-{i}") for i in range(5)]
    db.session.commit()
    ids = [r.id for r in rows]
    admin = world.api(desk.admin)
    first = admin.get("/admin/notifications?limit=3").get_json()
    second = admin.get(f"/admin/notifications?limit=3&after={first['next_after']}").get_json()
    assert [i["id"] for i in first["items"] + second["items"]] == ids[::-1]
    assert second["next_after"] is None


@pytest.mark.parametrize("role", ["requester", "agent", "manager"])
def test_only_admins_use_the_notification_admin_api(world, desk, smtp, role):
    failed = _failed_one(world, desk, smtp)
    api = world.api(world.user(role, groups=[] if role == "requester" else [desk.l1]))
    for response in (api.get("/admin/notifications"),
                     api.post(f"/admin/notifications/{failed.id}/retry")):
        assert response.status_code == 403
        assert response.get_json()["error"]["code"] == "forbidden"
    assert row(failed.id).status == "failed"
    assert world.api(None).get("/admin/notifications").status_code == 401


def test_the_cli_delivers_what_is_due_and_lists_failures(world, desk, app, smtp):
    ticket = incident_of(world, desk.employee)
    warn(ticket, desk.agent, "cli")
    db.session.commit()
    db.session.rollback()
    def run(*args):
        return CliRunner().invoke(cli, list(args), obj=ScriptInfo(create_app=lambda: app))

    result = run("notify", "deliver")
    assert result.exit_code == 0, result.output
    assert "1 sent" in result.output
    assert len(smtp.received) == 1
    _failed_one(world, desk, smtp)
    listed = run("notify", "list", "--failed")
    assert listed.exit_code == 0 and "550" in listed.output and "bounce" not in listed.output
    assert len(listed.output.strip().splitlines()) == 1


# --- kicking delivery after commit --------------------------------------------------------


def test_without_redis_the_in_process_job_thread_delivers_right_after_commit(
        world, desk, app, smtp):
    runner = jobs.InProcessJobs(app, tick=3600)
    runner.last_run = {name: time.time() for name in jobs.PERIODIC_JOBS}  # all just ran
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while app.extensions["servicedesk"].get("in_process_jobs") is not runner:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ticket = incident_of(world, desk.employee)
        warn(ticket, desk.agent, "in-process")
        db.session.commit()
        db.session.rollback()
        deadline = time.monotonic() + 20
        while not smtp.received:
            assert time.monotonic() < deadline, "not delivered"
            time.sleep(0.02)
    finally:
        runner.stop()
        runner.join(timeout=30)
        app.extensions["servicedesk"].pop("in_process_jobs", None)
    assert len(smtp.received) == 1


@pytest.fixture
def redis_url(app):
    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    app.config["SERVICEDESK_REDIS_URL"] = REDIS_URL
    yield REDIS_URL
    connection.flushdb()
    connection.close()


def test_with_redis_a_commit_enqueues_one_delivery_job_per_row(world, desk, redis_url):
    ticket = incident_of(world, desk.employee)
    warn(ticket, desk.agent_b, "rolled-back")
    db.session.flush()
    db.session.rollback()  # no job for a row that was never committed
    now_row = warn(ticket, desk.agent, "now")
    later = warn(ticket, desk.manager, "later", deliver_after=utcnow() + timedelta(hours=2))
    db.session.commit()
    queue = jobs.get_queue()
    assert queue.job_ids == [f"notify-{now_row.id}"]
    scheduled = ScheduledJobRegistry(queue=queue)
    assert scheduled.get_job_ids() == [f"notify-{later.id}"]
    job = Job.fetch(f"notify-{now_row.id}", connection=queue.connection,
                    serializer=JSONSerializer)
    assert (job.func_name, job.args) == ("servicedesk.notify.jobs.deliver", [now_row.id])


@pytest.mark.jobs
def test_a_real_worker_delivers_a_queued_notification(world, desk, app, smtp, redis_url):
    ticket = incident_of(world, desk.employee, title="Сервер недоступен")
    notification = warn(ticket, desk.agent, "worker")
    db.session.commit()
    db.session.rollback()  # hold no transaction (SQLite: the write lock) meanwhile
    assert smtp.received == []  # queued, not sent by the request's process
    env = {**os.environ,
           "SERVICEDESK_DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
           "SERVICEDESK_REDIS_URL": redis_url,
           "SERVICEDESK_SECRET_KEY": "worker-test-secret",
           "SERVICEDESK_SMTP_HOST": "127.0.0.1",
           "SERVICEDESK_SMTP_PORT": str(smtp.port),
           "SERVICEDESK_SMTP_SECURITY": "none",
           "SERVICEDESK_SMTP_FROM": "desk@example.test",
           "SERVICEDESK_MAIL_DOMAIN": "example.test"}
    result = subprocess.run([SERVICEDESK, "worker", "--burst"], env=env, capture_output=True,
                            text=True, timeout=120)
    job = Job.fetch(f"notify-{notification.id}", connection=Redis.from_url(redis_url),
                    serializer=JSONSerializer)
    assert job.get_status() == JobStatus.FINISHED, (
        result.stdout, result.stderr, job.latest_result() and job.latest_result().exc_string)
    assert job.return_value() == "sent"
    [mail] = smtp.received
    assert "Сервер недоступен" in mail.message["Subject"]
    assert row(notification.id).status == "sent"
