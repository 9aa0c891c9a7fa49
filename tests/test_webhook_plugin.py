"""The built-in webhook plugin: signed JSON per event to admin-configured endpoints,
retried through the outbox, and never to a private address unless allow-listed."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from http_receiver import Receiver
from sqlalchemy import select, update

from servicedesk import netguard
from servicedesk.extensions import db
from servicedesk.notify.delivery import deliver_due
from servicedesk.notify.models import Notification
from servicedesk.types import utcnow

SECRET = "a-long-shared-secret-0123"


@pytest.fixture
def sqlite_only(backend):
    """Tests of HTTP and settings, where the database makes no difference."""
    if backend != "sqlite":
        pytest.skip("the database makes no difference here; run on SQLite only")


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


def _settings(url, **overrides):
    return {"endpoints": [{"name": "crm", "url": url,
                           "events": ["ticket.created", "ticket.commented"]}],
            "secrets": {"crm": SECRET}, "allow_hosts": ["127.0.0.1"], **overrides}


def _configure(world, admin, settings):
    return world.api(admin).put("/admin/plugins/webhook/settings", json=settings)


def _verified(request) -> dict:
    """What a receiver does: check the timestamped signature, then trust the body."""
    headers = request["headers"]
    timestamp = headers["X-Servicedesk-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request["body"],
                        hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Servicedesk-Signature"], f"sha256={expected}")
    return json.loads(request["body"])


def _webhook_rows():
    db.session.commit()  # a fresh snapshot: plugin threads wrote these
    return list(db.session.scalars(select(Notification).where(
        Notification.backend == "webhook").order_by(Notification.id)
        .execution_options(populate_existing=True)))


def test_a_new_incident_is_posted_signed_to_the_endpoint(world, desk, receiver):
    assert _configure(world, desk.admin, _settings(receiver.url)).status_code == 200
    number = world.incident(desk.employee, title="VPN down")["number"]
    world.api(desk.agent).patch(f"/incidents/{number}", json={"impact": "high", "version": 1})
    (row,) = _webhook_rows()  # ticket.updated is not subscribed
    assert (row.event, row.address, row.status) == ("ticket.created", receiver.url, "pending")
    deliver_due()
    assert _webhook_rows()[0].status == "sent"
    (request,) = receiver.requests
    assert request["path"] == "/hooks/sd"
    assert request["headers"]["X-Servicedesk-Event"] == "ticket.created"
    assert request["headers"]["X-Servicedesk-Delivery"] == row.dedupe_key
    payload = _verified(request)
    assert payload["event"] == "ticket.created"
    assert payload["ticket"]["number"] == number
    assert payload["ticket"]["title"] == "VPN down"
    assert payload["actor"] == "emma"


def test_internal_notes_are_told_without_their_text(sqlite_only, world, desk, receiver):
    _configure(world, desk.admin, _settings(receiver.url))
    number = world.incident(desk.employee)["number"]
    world.api(desk.agent).post(f"/incidents/{number}/comments",
                               json={"body": "secret note", "public": False})
    deliver_due()
    comment = _verified(receiver.requests[-1])["comment"]
    assert comment["public"] is False and comment["body"] is None
    assert b"secret note" not in receiver.requests[-1]["body"]


def test_a_500_is_retried_and_the_retry_carries_the_same_delivery_id(sqlite_only, world, desk,
                                                                    receiver):
    _configure(world, desk.admin, _settings(receiver.url))
    receiver.statuses = [500, 200]
    world.incident(desk.employee)
    deliver_due()
    (row,) = _webhook_rows()
    assert (row.status, row.attempts) == ("pending", 1) and "HTTP 500" in row.last_error
    db.session.execute(update(Notification).where(Notification.id == row.id)
                       .values(next_attempt_at=utcnow()))
    db.session.commit()
    deliver_due()
    assert _webhook_rows()[0].status == "sent"
    first, second = receiver.requests
    assert (first["headers"]["X-Servicedesk-Delivery"]
            == second["headers"]["X-Servicedesk-Delivery"] == row.dedupe_key)
    _verified(second)


REFUSED = ["http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data/",
           "http://10.0.0.1/hook", "http://[::1]/hook", "http://[::ffff:127.0.0.1]/h",
           "ftp://example.com/x", "http://user:pw@example.com/x", "http://0.0.0.0/x"]


def test_private_and_odd_urls_are_refused_at_save_naming_the_field(sqlite_only, world, desk):
    assert _configure(world, desk.admin, _settings("http://127.0.0.1:8/ok")).status_code == 200
    for url in REFUSED:
        response = _configure(world, desk.admin, _settings(url, allow_hosts=[]))
        assert response.status_code == 422, (url, response.get_json())
        assert "endpoints.0.url" in response.get_json()["error"]["fields"], url
    shown = world.api(desk.admin).get("/admin/plugins/webhook").get_json()["settings"]
    assert shown["endpoints"][0]["url"] == "http://127.0.0.1:8/ok"  # nothing changed
    assert shown["secrets"] == "set"  # and the secret is never shown


def test_loopback_is_accepted_only_when_allow_listed(sqlite_only, world, desk, receiver):
    refused = _configure(world, desk.admin, _settings(receiver.url, allow_hosts=[]))
    assert refused.status_code == 422
    assert "loopback" in refused.get_json()["error"]["fields"]["endpoints.0.url"][0]
    cidr = _configure(world, desk.admin, _settings(receiver.url, allow_hosts=["127.0.0.0/8"]))
    assert cidr.status_code == 200
    typo = _configure(world, desk.admin, _settings(receiver.url, allow_hosts=["127.0.0.0/33"]))
    assert typo.status_code == 422 and "allow_hosts" in typo.get_json()["error"]["fields"]


def test_an_active_endpoint_needs_a_secret(sqlite_only, world, desk):
    response = _configure(world, desk.admin, {**_settings("http://127.0.0.1:8/"), "secrets": {}})
    assert response.status_code == 422
    assert "secrets.crm" in response.get_json()["error"]["fields"]


def test_delivery_checks_the_address_again_and_never_connects_to_a_refused_one(
        sqlite_only, world, desk, receiver):
    _configure(world, desk.admin, _settings(receiver.url))
    world.incident(desk.employee)
    # As if the name now resolved elsewhere (DNS rebinding): the row points at metadata.
    db.session.execute(update(Notification).where(Notification.backend == "webhook").values(
        address="http://169.254.169.254/latest/meta-data/"))
    db.session.commit()
    deliver_due()
    (row,) = _webhook_rows()
    assert row.status == "failed" and "link-local" in row.last_error
    assert receiver.requests == []


def test_only_admins_configure_webhooks(sqlite_only, world, desk, receiver):
    response = _configure(world, desk.agent, _settings(receiver.url))
    assert response.status_code == 403
    world.incident(desk.employee)
    assert _webhook_rows() == []


def test_the_guard_refuses_a_name_resolving_to_loopback_unless_allowed():
    with pytest.raises(netguard.UnsafeURL, match="loopback"):
        netguard.check_url("http://localhost:8080/x")
    assert netguard.check_url("http://localhost:8080/x", ["localhost"]).port == 8080
    assert netguard.check_url("https://93.184.215.14/x").address == "93.184.215.14"


def test_sla_events_reach_the_endpoints_that_subscribed(sqlite_only, world, desk, receiver):
    from servicedesk.plugins import call_hook
    from servicedesk.tickets.models import Ticket

    settings = _settings(receiver.url)
    settings["endpoints"] = [
        {"name": "crm", "url": receiver.url, "events": ["sla.breach"]},
        {"name": "quiet", "url": receiver.url, "events": []},
        {"name": "off", "url": receiver.url, "active": False}]
    settings["secrets"] = {"crm": SECRET, "quiet": SECRET}
    assert _configure(world, desk.admin, settings).status_code == 200
    number = world.incident(desk.employee)["number"]
    ticket = db.session.scalars(select(Ticket).where(Ticket.number == number)).one()
    db.session.commit()
    call_hook("servicedesk_sla_event", ticket=ticket, metric="resolution", event="breach",
              step=None)
    call_hook("servicedesk_sla_event", ticket=ticket, metric="resolution", event="breach",
              step=None)  # told twice (a racing sweep): delivered once
    (row,) = _webhook_rows()
    assert (row.event, row.headers["X-Servicedesk-Endpoint"]) == ("sla.breach", "crm")
    deliver_due()
    payload = _verified(receiver.requests[0])
    assert (payload["metric"], payload["ticket"]["number"]) == ("resolution", number)


def test_an_admin_edits_the_endpoints_on_the_web_page_as_json(app, world, desk, sqlite_only):
    from test_plugin_admin import _TOKEN, page_client

    client = page_client(app, world, "pageadmin")
    form = client.get("/admin/plugins/webhook/settings").get_data(as_text=True)
    assert '<textarea name="endpoints"' in form
    token = _TOKEN.search(form).group(1)
    endpoints = [{"name": "crm", "url": "http://127.0.0.1:9/hook", "events": ["ticket.created"]}]
    broken = client.post("/admin/plugins/webhook/settings", data={
        "csrf_token": token, "endpoints": "[{not json", "allow_hosts": '["127.0.0.1"]',
        "secrets": json.dumps({"crm": SECRET})})
    assert broken.status_code == 422
    assert 'aria-invalid="true">[{not json</textarea>' in broken.get_data(as_text=True)
    refused = client.post("/admin/plugins/webhook/settings", data={
        "csrf_token": token, "endpoints": json.dumps(endpoints), "allow_hosts": "[]",
        "secrets": json.dumps({"crm": SECRET})})
    assert refused.status_code == 422  # loopback is not allow-listed
    assert "endpoints.0.url" in refused.get_data(as_text=True)
    saved = client.post("/admin/plugins/webhook/settings", data={
        "csrf_token": token, "endpoints": json.dumps(endpoints),
        "allow_hosts": '["127.0.0.1"]', "secrets": json.dumps({"crm": SECRET})})
    assert saved.status_code == 302, saved.get_data(as_text=True)
    shown = client.get("/admin/plugins/webhook/settings").get_data(as_text=True)
    assert "http://127.0.0.1:9/hook" in shown and SECRET not in shown


def test_the_webhook_row_commits_with_the_change_that_caused_it(world, desk, monkeypatch):
    """The row is written in the ticket's transaction: a process that dies right after
    the commit (before the other plugins are told) still delivers the webhook."""
    assert _configure(world, desk.admin, _settings("http://127.0.0.1:9/hooks")).status_code == 200
    from servicedesk.tickets import service as core

    def process_dies(*args, **kwargs):
        raise KeyboardInterrupt  # not an Exception: nothing in the request catches it

    monkeypatch.setattr(core, "call_hook", process_dies)
    with pytest.raises(KeyboardInterrupt):
        world.api(desk.employee).post("/incidents", json={"title": "Printer on fire"})
    db.session.rollback()
    (row,) = _webhook_rows()
    assert (row.event, row.status) == ("ticket.created", "pending")
    assert row.ticket_id is not None
