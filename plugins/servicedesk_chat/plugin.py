"""Hook implementations of the chat plugin (registered by the ``chat`` entry point).

Outbound: the ``chat`` notifier posts ``{"text": ...}`` to a Slack- or
Mattermost-compatible incoming-webhook URL. The events an admin picks become one outbox
row each (backend ``chat``, the URL as address, the text as body), delivered and retried
like any notification. The URL is checked by ``servicedesk.netguard`` when saved and
before every delivery.

Inbound: ``POST /chat/command`` is a slash command (form-encoded, as Slack and
Mattermost send it). It is authenticated by Slack's v0 request signature
(``X-Slack-Signature`` / ``X-Slack-Request-Timestamp``, when a signing secret is set) or
by the shared ``token`` field (Mattermost, Slack's legacy tokens), compared in constant
time. The chat user is mapped to a servicedesk user by username (or by e-mail, the chat
user name at ``email_domain``); ``/incident <title>`` then raises an incident with
channel ``chat`` through the incident service, as that user, and answers with its number
and link. The route belongs to this plugin's blueprint (hook ``servicedesk_blueprints``):
while the plugin is disabled it answers 404.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext as _
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, select

from servicedesk import netguard
from servicedesk.errors import ServiceError
from servicedesk.extensions import csrf, db
from servicedesk.notify.service import Message
from servicedesk.plugins import hookimpl, plugin_settings

NAME = "chat"
# Its hooks only write outbox rows (workers do the HTTP): no time box needed, so they
# run in the caller's thread (servicedesk.plugins._runs_inline).
SERVICEDESK_INLINE_HOOKS = True
BACKEND = "chat"
EVENTS = ("ticket.created", "ticket.transitioned", "ticket.commented", "sla.warning",
          "sla.breach")
SIGNATURE_MAX_AGE = 300  # seconds a signed Slack request stays valid (no replay)
COMMANDS = ("/incident",)


class Settings(Schema):
    webhook_url = fields.String(validate=validate.Length(max=320), metadata={
        "description": "Incoming-webhook URL that notifications are posted to."})
    events = fields.List(fields.String(validate=validate.OneOf(EVENTS)),
                         load_default=lambda: ["ticket.created", "sla.breach"])
    allow_hosts = fields.List(fields.String(), load_default=list, metadata={
        "description": "Hosts, addresses or CIDR networks that may be private or loopback."})
    command_token = fields.String(validate=validate.Length(min=16, max=200), metadata={
        "secret": True, "description": "The slash command's token (Mattermost, Slack legacy)."})
    signing_secret = fields.String(validate=validate.Length(min=16, max=200), metadata={
        "secret": True, "description": "Slack's signing secret (v0 request signatures)."})
    match_by = fields.String(load_default="username",
                             validate=validate.OneOf(("username", "email")))
    email_domain = fields.String(validate=validate.Length(max=200), metadata={
        "description": "With match_by=email: chat user NAME is NAME@email_domain."})
    timeout_seconds = fields.Integer(load_default=10, validate=validate.Range(1, 60))

    @validates_schema
    def _check(self, data, **kwargs):
        # Resolve host names only on an admin's save (see the webhook plugin).
        resolve = kwargs.get("partial") is not False
        errors = {}
        problems = netguard.validate_allow_list(data.get("allow_hosts"))
        if problems:
            errors["allow_hosts"] = problems
        if data.get("webhook_url"):
            try:
                netguard.check_url(data["webhook_url"], data.get("allow_hosts"), resolve=resolve)
            except netguard.UnsafeURL as exc:
                errors["webhook_url"] = [str(exc)]
        if data.get("match_by") == "email" and not data.get("email_domain"):
            errors["email_domain"] = ["Required when matching chat users by e-mail."]
        if errors:
            raise ValidationError(errors)


@hookimpl
def servicedesk_settings_schema():
    return Settings


# --- outbound ---------------------------------------------------------------------------


def _link(ticket) -> str:
    base = current_app.config.get("SERVICEDESK_BASE_URL")
    return f"{base.rstrip('/')}/portal/incidents/{ticket.number}" if base else ""


def queue(event: str, ticket, text: str, occurrence: str) -> bool:
    """Add the outbox row that posts ``text`` to the chat (no commit)."""
    settings = plugin_settings(NAME)
    if not settings.get("webhook_url") or event not in (settings.get("events") or ()):
        return False
    link = _link(ticket)
    body = json.dumps({"text": f"{text} {link}".strip()}, ensure_ascii=False)
    row = netguard.queue_outbound(backend=BACKEND, event=event, url=settings["webhook_url"],
                                  body=body, dedupe_key=f"chat:{event}:{occurrence}",
                                  ticket_id=ticket.id)
    return row is not None  # committed by the caller (servicedesk.plugins: with the change)


def _who(user) -> str:
    return user.username if user is not None else "the system"


@hookimpl
def servicedesk_ticket_created(ticket, actor):
    queue("ticket.created", ticket,
          f"{ticket.number} raised by {_who(actor)} (P{ticket.priority}): {ticket.title}",
          f"{ticket.id}")


@hookimpl
def servicedesk_ticket_transitioned(ticket, actor, from_status, to_status):
    queue("ticket.transitioned", ticket,
          f"{ticket.number} {from_status} → {to_status} by {_who(actor)}: {ticket.title}",
          f"{ticket.id}-{ticket.version}-{to_status}")


@hookimpl
def servicedesk_ticket_commented(ticket, comment, actor):
    if comment.public:  # never an internal note
        queue("ticket.commented", ticket,
              f"{ticket.number}: {_who(actor)} replied: {comment.body[:300]}", f"{comment.id}")


@hookimpl
def servicedesk_sla_event(ticket, metric, event, step):
    if event in ("warning", "breach"):
        queue(f"sla.{event}", ticket, f"{ticket.number}: SLA {metric} {event}: {ticket.title}",
              f"{ticket.id}-{metric}-{event}")


class ChatNotifier:
    """The ``chat`` backend: POST the row's ``{"text": ...}`` to the incoming webhook."""

    name = BACKEND

    def __init__(self, allow_hosts: list, timeout: float):
        self.allow_hosts = allow_hosts
        self.timeout = timeout

    def send(self, message: Message) -> None:
        netguard.deliver(message.address, message.body_text.encode("utf-8"),
                         {"Content-Type": "application/json; charset=utf-8",
                          "User-Agent": "servicedesk-chat/1"},
                         allow=self.allow_hosts, timeout=self.timeout)


@hookimpl
def servicedesk_notifiers():
    settings = plugin_settings(NAME)
    return [ChatNotifier(list(settings.get("allow_hosts") or ()),
                         float(settings.get("timeout_seconds") or 10))]


# --- inbound: the slash command ---------------------------------------------------------

bp = Blueprint("chat", __name__, url_prefix="/chat")
csrf.exempt(bp)  # authenticated by its signature or token, never by a cookie


def _refuse(status: int, code: str, message: str, field: str | None = None,
            field_errors: dict | None = None):
    body = {"error": {"code": code, "message": message,
                      "fields": field_errors or ({field: [message]} if field else {})},
            "response_type": "ephemeral", "text": message}
    return jsonify(body), status


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError):
    # Refusals raised before the view (the app's NUL / bad-Unicode check of the form)
    # answer in the command's JSON too, not with an HTML error page.
    return _refuse(exc.status, exc.code, exc.message, None, exc.fields)


def _authentic(settings: dict) -> str | None:
    """Why the request is not from the chat server, or None when it is."""
    signing_secret = settings.get("signing_secret")
    token = settings.get("command_token")
    signature = request.headers.get("X-Slack-Signature")
    if signing_secret and signature:
        stamp = request.headers.get("X-Slack-Request-Timestamp", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > SIGNATURE_MAX_AGE:
            return "the request timestamp is missing or too old"
        base = b"v0:" + stamp.encode("ascii") + b":" + request.get_data(cache=True)
        expected = "v0=" + hmac.new(signing_secret.encode("utf-8"), base,
                                    hashlib.sha256).hexdigest()
        return None if hmac.compare_digest(expected.encode(), signature.encode("utf-8",
                                                                                 "replace")) \
            else "the request signature does not match"
    if token:
        sent = request.form.get("token", "")
        return None if hmac.compare_digest(token.encode(), sent.encode("utf-8", "replace")) \
            else "the token does not match"
    if signing_secret:
        return "the request is not signed"
    return "chat commands are not configured"


def _chat_user(settings: dict):
    from servicedesk.identity.models import User

    name = (request.form.get("user_name") or "").strip()
    if not name or len(name) > 150:
        return None
    if settings.get("match_by") == "email":
        address = f"{name}@{settings.get('email_domain', '')}".lower()
        query = select(User).where(func.lower(User.email) == address)
    else:
        query = select(User).where(User.username == name)
    user = db.session.scalars(query).first()
    return user if user is not None and user.active else None


@bp.post("/command")
def command():
    from servicedesk.incidents.service import create_incident

    request.get_data(cache=True)  # keep the raw body for the signature
    settings = plugin_settings(NAME)
    problem = _authentic(settings)
    if problem is not None:
        return _refuse(401 if "configured" not in problem else 403, "not_authenticated",
                       _("Refused: %(reason)s.", reason=problem))
    user = _chat_user(settings)
    if user is None:
        return _refuse(403, "unknown_user", _("Your chat account is not linked to an active "
                                              "servicedesk user."), "user_name")
    name = (request.form.get("command") or "").strip()
    text = (request.form.get("text") or "").strip()
    if name not in COMMANDS:
        return _refuse(422, "unknown_command", _("Unknown command; use /incident <title>."),
                       "command")
    if not text or len(text) > 200:
        return _refuse(422, "invalid_title", _("Give a title of 1 to 200 characters: "
                                               "/incident <title>."), "text")
    try:
        incident = create_incident(user, {"title": text}, "chat")
    except ServiceError as exc:
        db.session.rollback()
        return _refuse(exc.status if 400 <= getattr(exc, "status", 0) < 500 else 422,
                       "refused", str(exc))
    base = current_app.config.get("SERVICEDESK_BASE_URL") or request.host_url
    link = f"{base.rstrip('/')}/portal/incidents/{incident.number}"
    return jsonify({"response_type": "ephemeral", "number": incident.number, "url": link,
                    "text": _("Incident %(number)s raised: %(title)s",
                              number=incident.number, title=incident.title) + f"\n{link}"})


@hookimpl
def servicedesk_blueprints():
    return [bp]
