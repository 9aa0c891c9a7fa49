"""The built-in chat plugin: employees raise incidents with a slash command (token or
Slack-signed), and events are posted to a Slack/Mattermost incoming webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import pytest
from http_receiver import Receiver
from sqlalchemy import func, select

from servicedesk.extensions import db
from servicedesk.notify.delivery import deliver_due
from servicedesk.notify.models import Notification
from servicedesk.tickets.models import Ticket

TOKEN = "mattermost-token-0123456789"
SIGNING = "slack-signing-secret-abcdef"


@pytest.fixture
def sqlite_only(backend):
    if backend != "sqlite":
        pytest.skip("the database makes no difference here; run on SQLite only")


@pytest.fixture
def chat(world, desk):
    response = world.api(desk.admin).put("/admin/plugins/chat/settings", json={
        "command_token": TOKEN, "signing_secret": SIGNING})
    assert response.status_code == 200, response.get_json()
    return world


def _command(client, text, user="emma", token=TOKEN, command="/incident", headers=None):
    return client.post("/chat/command", data={
        "token": token, "user_name": user, "user_id": "U123", "command": command,
        "text": text}, headers=headers or {})


def _tickets() -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(Ticket))


def test_an_employee_raises_an_incident_from_chat_and_gets_its_number(chat, client, desk):
    response = _command(client, "Printer on 3rd floor is jammed")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    number = body["number"]
    assert number in body["text"] and body["url"].endswith(f"/portal/incidents/{number}")
    incident = chat.api(desk.employee).get(f"/incidents/{number}").get_json()
    assert incident["title"] == "Printer on 3rd floor is jammed"
    assert incident["channel"] == "chat" and incident["requester"] == "emma"


def test_a_slack_signed_command_is_accepted_and_a_stale_or_forged_one_refused(
        sqlite_only, chat, client):
    raw = urlencode({"user_name": "emma", "command": "/incident", "text": "VPN is down"})

    def signed(stamp, secret=SIGNING):
        digest = hmac.new(secret.encode(), f"v0:{stamp}:{raw}".encode(), hashlib.sha256)
        return {"X-Slack-Request-Timestamp": str(stamp),
                "X-Slack-Signature": "v0=" + digest.hexdigest(),
                "Content-Type": "application/x-www-form-urlencoded"}

    now = int(time.time())
    assert client.post("/chat/command", data=raw, headers=signed(now)).status_code == 200
    for headers in (signed(now - 3600), signed(now, "not-the-secret-at-all")):
        refused = client.post("/chat/command", data=raw, headers=headers)
        assert refused.status_code == 401
        assert refused.get_json()["error"]["code"] == "not_authenticated"
    assert _tickets() == 1


def test_a_bad_token_an_unknown_user_and_bad_input_are_refused_and_create_nothing(
        sqlite_only, chat, client):
    bad_token = _command(client, "x", token="wrong")
    assert bad_token.status_code == 401 and "token" in bad_token.get_json()["text"]
    unknown = _command(client, "x", user="nobody")
    assert unknown.status_code == 403
    assert unknown.get_json()["error"]["fields"] == {"user_name": [
        unknown.get_json()["error"]["message"]]}
    empty = _command(client, "   ")
    assert empty.status_code == 422 and "text" in empty.get_json()["error"]["fields"]
    other = _command(client, "x", command="/deploy")
    assert other.status_code == 422 and "command" in other.get_json()["error"]["fields"]
    assert _tickets() == 0


def test_commands_are_refused_until_a_secret_is_configured(sqlite_only, client, desk):
    response = _command(client, "x")
    assert response.status_code == 403 and "not configured" in response.get_json()["text"]
    assert _tickets() == 0


def test_the_command_is_gone_while_the_plugin_is_disabled(sqlite_only, chat, client, desk):
    chat.api(desk.admin).post("/admin/plugins/chat/disable")
    assert _command(client, "x").status_code == 404
    assert _tickets() == 0


def test_users_can_be_matched_by_email(sqlite_only, chat, client, desk):
    chat.api(desk.admin).put("/admin/plugins/chat/settings", json={
        "match_by": "email", "email_domain": "example.test"})
    assert _command(client, "Mail is slow", user="EMMA").status_code == 200
    missing = chat.api(desk.admin).put("/admin/plugins/chat/settings", json={
        "match_by": "email", "email_domain": ""})
    assert missing.status_code == 422


def test_new_incidents_are_posted_to_the_incoming_webhook(sqlite_only, chat, desk):
    receiver = Receiver()
    try:
        saved = chat.api(desk.admin).put("/admin/plugins/chat/settings", json={
            "webhook_url": receiver.url, "allow_hosts": ["127.0.0.1"]})
        assert saved.status_code == 200, saved.get_json()
        number = chat.incident(desk.employee, title="Wi-Fi flaky")["number"]
        deliver_due()
        (request,) = receiver.requests
        text = json.loads(request["body"])["text"]
        assert number in text and "Wi-Fi flaky" in text and "emma" in text
        db.session.commit()
        row = db.session.scalars(select(Notification).where(Notification.backend == "chat")
                                 .execution_options(populate_existing=True)).one()
        assert row.status == "sent"
    finally:
        receiver.close()


def test_a_private_incoming_webhook_url_is_refused_naming_the_field(sqlite_only, chat, desk):
    response = chat.api(desk.admin).put("/admin/plugins/chat/settings", json={
        "webhook_url": "http://169.254.169.254/hooks/x"})
    assert response.status_code == 422
    assert "webhook_url" in response.get_json()["error"]["fields"]
