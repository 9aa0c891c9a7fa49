"""Hook implementations of the webhook plugin (registered by the ``webhook`` entry point).

Each ticket lifecycle and SLA event an endpoint subscribes to becomes one outbox row per
(event, endpoint), backend ``webhook``: the JSON payload in ``body_text``, the URL in
``address``, the event in ``subject``. The row is delivered like any notification (a
worker, retries with back-off, the admin's list of failed ones). Delivery POSTs the
JSON with

- ``X-Servicedesk-Event``: the event (``ticket.created``...),
- ``X-Servicedesk-Delivery``: the row's dedupe key, the same on every retry,
- ``X-Servicedesk-Timestamp``: Unix seconds of this attempt,
- ``X-Servicedesk-Signature``: ``sha256=`` + hex HMAC-SHA256, keyed with the endpoint's
  secret, of ``<timestamp>.<raw body>`` (receivers refuse old timestamps: no replay).

A 2xx answer is success; anything else (or no answer within the timeout) is retried.
URLs are checked by ``servicedesk.netguard`` when saved and again before each delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

from flask import current_app
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from servicedesk import netguard
from servicedesk.notify.service import Message, PermanentFailure
from servicedesk.plugins import hookimpl, plugin_settings
from servicedesk.types import utcnow

NAME = "webhook"
# Its hooks only write outbox rows (workers do the HTTP): no time box needed, so they
# run in the caller's thread (servicedesk.plugins._runs_inline).
SERVICEDESK_INLINE_HOOKS = True
BACKEND = "webhook"
EVENTS = ("ticket.created", "ticket.updated", "ticket.transitioned", "ticket.commented",
          "sla.warning", "sla.breach", "sla.step")
MAX_URL = 320  # the outbox's address column


def flatten(messages, prefix: str = "") -> dict:
    """marshmallow's nested errors as dotted field names: ``endpoints.0.url``."""
    if not isinstance(messages, dict):
        return {prefix or "settings": messages if isinstance(messages, list) else [messages]}
    flat = {}
    for key, value in messages.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten(value, name))
        else:
            flat[name] = value if isinstance(value, list) else [value]
    return flat


class FlatErrors(Schema):
    def handle_error(self, error, data, **kwargs):
        raise ValidationError(flatten(error.messages))


class Endpoint(Schema):
    name = fields.String(required=True, validate=validate.Regexp(
        r"^[a-z0-9][a-z0-9_-]{0,39}$", error="Use a-z, 0-9, _ and - (at most 40)."))
    url = fields.String(required=True, validate=validate.Length(max=MAX_URL))
    events = fields.List(fields.String(validate=validate.OneOf(EVENTS)),
                         load_default=lambda: list(EVENTS))
    active = fields.Boolean(load_default=True)


class Settings(FlatErrors):
    endpoints = fields.List(fields.Nested(Endpoint), load_default=list, metadata={
        "description": "Each {name, url, events, active}; events default to all."})
    secrets = fields.Dict(keys=fields.String(), values=fields.String(
        validate=validate.Length(min=16, max=200)), metadata={
        "secret": True,
        "description": "Signing secret per endpoint name (at least 16 characters)."})
    allow_hosts = fields.List(fields.String(), load_default=list, metadata={
        "description": "Hosts, addresses or CIDR networks that may be private or loopback."})
    timeout_seconds = fields.Integer(load_default=10, validate=validate.Range(1, 60))

    @validates_schema
    def _check_endpoints(self, data, **kwargs):
        # An admin's save resolves each host name; reading the saved settings (which
        # plugin_settings does with partial=False, on every event) checks without DNS,
        # and delivery checks again, resolved, right before connecting.
        resolve = kwargs.get("partial") is not False
        errors = {}
        for problem in netguard.validate_allow_list(data.get("allow_hosts")):
            errors.setdefault("allow_hosts", []).append(problem)
        seen = set()
        secrets = data.get("secrets") or {}
        for index, endpoint in enumerate(data.get("endpoints") or ()):
            if endpoint["name"] in seen:
                errors[f"endpoints.{index}.name"] = ["Another endpoint has this name."]
            seen.add(endpoint["name"])
            try:
                netguard.check_url(endpoint["url"], data.get("allow_hosts"), resolve=resolve)
            except netguard.UnsafeURL as exc:
                errors[f"endpoints.{index}.url"] = [str(exc)]
            if endpoint.get("active", True) and not secrets.get(endpoint["name"]):
                errors[f"secrets.{endpoint['name']}"] = [
                    "An active endpoint needs a signing secret."]
        if errors:
            raise ValidationError(errors)


@hookimpl
def servicedesk_settings_schema():
    return Settings


# --- payloads --------------------------------------------------------------------------


def _username(user) -> str | None:
    return user.username if user is not None else None


def ticket_json(ticket) -> dict:
    base = current_app.config.get("SERVICEDESK_BASE_URL")
    return {
        "number": ticket.number, "kind": ticket.kind, "title": ticket.title,
        "status": ticket.status, "priority": ticket.priority, "impact": ticket.impact,
        "urgency": ticket.urgency, "channel": ticket.channel,
        "requester": _username(ticket.requester), "assignee": _username(ticket.assignee),
        "group": ticket.group.name if ticket.group is not None else None,
        "url": f"{base.rstrip('/')}/console/incidents/{ticket.number}"
        if base and ticket.kind == "incident" else None,
    }


def queue(event: str, ticket, actor, data: dict, occurrence: str | None = None) -> int:
    """Add one outbox row per active endpoint subscribed to ``event`` (no commit)."""
    settings = plugin_settings(NAME)
    endpoints = [e for e in settings.get("endpoints") or ()
                 if e.get("active", True) and event in (
                     EVENTS if e.get("events") is None else e["events"])]
    if not endpoints:
        return 0
    occurrence = occurrence or uuid.uuid4().hex
    queued = 0
    for endpoint in endpoints:
        key = f"webhook:{endpoint['name']}:{event}:{occurrence}"
        payload = {"event": event, "delivery": key, "occurred_at": utcnow().isoformat(),
                   "actor": _username(actor), "ticket": ticket_json(ticket), **data}
        if netguard.queue_outbound(
                backend=BACKEND, event=event, url=endpoint["url"], dedupe_key=key,
                body=json.dumps(payload, ensure_ascii=False, sort_keys=True),
                ticket_id=ticket.id, headers={"X-Servicedesk-Endpoint": endpoint["name"]}):
            queued += 1
    return queued  # committed by the caller (servicedesk.plugins: with the change)


@hookimpl
def servicedesk_ticket_created(ticket, actor):
    queue("ticket.created", ticket, actor, {}, f"{ticket.id}")


@hookimpl
def servicedesk_ticket_updated(ticket, actor, changes):
    fields_changed = [{"field": c.field, "old": c.old_value, "new": c.new_value}
                      for c in changes]
    first = min((c.id for c in changes if c.id is not None), default=None)
    queue("ticket.updated", ticket, actor, {"changes": fields_changed},
          f"{ticket.id}-{first}" if first is not None else None)


@hookimpl
def servicedesk_ticket_transitioned(ticket, actor, from_status, to_status):
    queue("ticket.transitioned", ticket, actor,
          {"from_status": from_status, "to_status": to_status})


@hookimpl
def servicedesk_ticket_commented(ticket, comment, actor):
    # Internal notes are told, never their text: the endpoint may face requesters.
    queue("ticket.commented", ticket, actor, {"comment": {
        "id": comment.id, "public": comment.public,
        "body": comment.body if comment.public else None}}, f"{comment.id}")


@hookimpl
def servicedesk_sla_event(ticket, metric, event, step):
    step_key = (step or {}).get("key") if isinstance(step, dict) else None
    queue(f"sla.{event}", ticket, None, {"metric": metric, "step": step},
          f"{ticket.id}-{metric}-{event}-{step_key}")


# --- delivery ----------------------------------------------------------------------------


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                      hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    """The ``webhook`` backend: POST the row's JSON, signed, to the row's URL."""

    name = BACKEND

    def __init__(self, secrets: dict, allow_hosts: list, timeout: float):
        self.secrets = secrets
        self.allow_hosts = allow_hosts
        self.timeout = timeout

    def send(self, message: Message) -> None:
        endpoint = message.headers.get("X-Servicedesk-Endpoint", "")
        secret = self.secrets.get(endpoint)
        if not secret:
            raise PermanentFailure(f"endpoint {endpoint!r} has no signing secret (any more)")
        body = message.body_text.encode("utf-8")
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "servicedesk-webhook/1",
            "X-Servicedesk-Event": message.subject,
            "X-Servicedesk-Delivery": message.dedupe_key,
            "X-Servicedesk-Timestamp": timestamp,
            "X-Servicedesk-Signature": sign(secret, timestamp, body),
        }
        netguard.deliver(message.address, body, headers, allow=self.allow_hosts,
                         timeout=self.timeout)


@hookimpl
def servicedesk_notifiers():
    settings = plugin_settings(NAME)
    return [WebhookNotifier(dict(settings.get("secrets") or {}),
                            list(settings.get("allow_hosts") or ()),
                            float(settings.get("timeout_seconds") or 10))]
