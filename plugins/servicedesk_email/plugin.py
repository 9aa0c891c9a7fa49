"""Hook implementations of the e-mail plugin (registered by the ``email`` entry point).

Inbound, the ``email`` channel (``servicedesk_channels``): messages piped in by the
MTA (``servicedesk mail ingest``) or polled over IMAP (``imap.py``) are processed by
``inbound.py``; its settings are the plugin's (``servicedesk_settings_schema``).

The ``email`` notifier: sends outbox rows over SMTP (STARTTLS, implicit TLS or plain),
as multipart/alternative text + HTML, with the Message-ID / In-Reply-To / References
headers the outbox computed, so mail clients thread the messages of one ticket.
Settings are the app's ``SERVICEDESK_SMTP_*`` (see docs/operations.md).

A 5xx reply means the server will never take this message (unknown mailbox, refused
content, bad credentials): ``PermanentFailure``, no retry. A 4xx reply, a refused or
dropped connection, a timeout are retried by the outbox with back-off.
"""

from __future__ import annotations

import ipaddress
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, parseaddr

from flask import current_app
from marshmallow import Schema, fields, validate, validates_schema
from marshmallow import ValidationError as SchemaError

from servicedesk.notify.render import header_safe
from servicedesk.notify.service import Message, PermanentFailure
from servicedesk.plugins import hookimpl
from servicedesk.types import utcnow

from servicedesk_email import inbound
from servicedesk_email.inbound import DEFAULT_ALLOWED_TYPES

SECURITY_MODES = ("starttls", "ssl", "none")
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
# Headers a Message may carry into the mail: the outbox's threading headers and our own.
PASSED_HEADERS = ("Message-ID", "In-Reply-To", "References")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    username: str
    password: str
    sender: str
    timeout: float
    ca_file: str | None = None

    @classmethod
    def from_config(cls, config) -> SmtpSettings:
        security = (config.get("SERVICEDESK_SMTP_SECURITY") or "none").lower()
        return cls(
            host=config.get("SERVICEDESK_SMTP_HOST") or "127.0.0.1",
            port=int(config.get("SERVICEDESK_SMTP_PORT") or DEFAULT_PORTS.get(security, 25)),
            security=security,
            username=config.get("SERVICEDESK_SMTP_USERNAME") or "",
            password=config.get("SERVICEDESK_SMTP_PASSWORD") or "",
            sender=config.get("SERVICEDESK_SMTP_FROM") or "servicedesk@localhost",
            timeout=float(config.get("SERVICEDESK_SMTP_TIMEOUT") or 30),
            ca_file=config.get("SERVICEDESK_SMTP_CA_FILE") or None,
        )


def build_email(message: Message, sender: str) -> EmailMessage:
    """The MIME message: text part first, HTML alternative second (clients show the
    last part they can display). Every header value goes through ``header_safe``."""
    mail = EmailMessage(policy=SMTP_POLICY)
    mail["From"] = header_safe(sender, 998)
    mail["To"] = header_safe(message.address, 998)
    mail["Subject"] = header_safe(message.subject)
    mail["Date"] = format_datetime(utcnow())
    for name in PASSED_HEADERS:
        if message.headers.get(name):
            mail[name] = header_safe(message.headers[name], 998)
    for name, value in message.headers.items():
        if name.startswith("X-Servicedesk-") and header_safe(name, 78) == name:
            mail[name] = header_safe(value, 998)
    # RFC 3834: no vacation auto-replies to, or mail loops with, our notifications.
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.body_text)
    if message.body_html:
        mail.add_alternative(message.body_html, subtype="html")
    return mail


def _reply_text(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)


class SmtpNotifier:
    """The ``email`` backend."""

    name = "email"

    def __init__(self, settings: SmtpSettings):
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security not in SECURITY_MODES:
            raise PermanentFailure(
                f"SERVICEDESK_SMTP_SECURITY is {s.security!r}; "
                f"use one of {', '.join(SECURITY_MODES)}")
        if s.username and s.security == "none" and not _is_loopback(s.host):
            raise PermanentFailure(
                "refusing to send SMTP credentials unencrypted to a host that is not loopback;"
                " set SERVICEDESK_SMTP_SECURITY to starttls or ssl")
        if s.security == "ssl":
            smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout,
                                    context=self._tls_context())
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            smtp.ehlo()
            if s.security == "starttls":
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, message: Message) -> None:
        mail = build_email(message, self.settings.sender)
        envelope_from = parseaddr(self.settings.sender)[1] or self.settings.sender
        try:
            smtp = self._connect()
            try:
                refused = smtp.send_message(mail, from_addr=envelope_from,
                                            to_addrs=[message.address])
            finally:
                try:
                    smtp.quit()
                except (smtplib.SMTPException, OSError):
                    smtp.close()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _text in exc.recipients.values()]
            detail = "; ".join(f"{rcpt}: {code} {text.decode('utf-8', 'replace')}"
                               for rcpt, (code, text) in exc.recipients.items())
            if codes and all(500 <= code < 600 for code in codes):
                raise PermanentFailure(f"recipient refused: {detail}") from exc
            raise RuntimeError(f"recipient refused for now: {detail}") from exc
        except smtplib.SMTPResponseException as exc:
            if 500 <= exc.smtp_code < 600:
                raise PermanentFailure(f"SMTP {exc.smtp_code}: {_reply_text(exc)}") from exc
            raise
        if refused:  # one recipient only, so this is an all-refused case in practice
            raise PermanentFailure(f"recipient refused: {refused}")


@hookimpl
def servicedesk_notifiers():
    return [SmtpNotifier(SmtpSettings.from_config(current_app.config))]


# --- inbound: the ``email`` channel ---------------------------------------------------


class InboundMailSettings(Schema):
    """What admins set for inbound mail (``servicedesk plugins settings email``)."""

    unknown_senders = fields.String(
        load_default="reject", validate=validate.OneOf(["reject", "create"]),
        metadata={"description": "Mail from an address no user has: refuse it, or create "
                                 "a requester account for it."})
    max_attachment_bytes = fields.Integer(
        load_default=10 * 1024 * 1024, validate=validate.Range(1, 100 * 1024 * 1024))
    max_message_bytes = fields.Integer(
        load_default=25 * 1024 * 1024, validate=validate.Range(1024, 200 * 1024 * 1024))
    max_per_sender_per_hour = fields.Integer(
        load_default=30, validate=validate.Range(1, 100_000),
        metadata={"description": "Loop guard: more messages than this from one sender in "
                                 "an hour are ignored."})
    allowed_types = fields.String(
        load_default=",".join(DEFAULT_ALLOWED_TYPES), validate=validate.Length(max=4000),
        metadata={"description": "Comma-separated content types of attachments kept."})
    imap_host = fields.String(load_default="", validate=validate.Length(max=255),
                              metadata={"description": "Empty: no IMAP polling."})
    imap_port = fields.Integer(load_default=None, allow_none=True,
                               validate=validate.Range(1, 65535))
    imap_security = fields.String(load_default="ssl",
                                  validate=validate.OneOf(["ssl", "starttls", "none"]))
    imap_user = fields.String(load_default="", validate=validate.Length(max=255))
    imap_password = fields.String(load_default="", metadata={"secret": True})
    imap_folder = fields.String(load_default="INBOX", validate=validate.Length(1, 255))
    imap_ca_file = fields.String(
        load_default="", validate=validate.Length(max=1000),
        metadata={"description": "CA bundle to verify the IMAP server with (an internal "
                                 "CA); empty: the system trust store."})
    imap_batch = fields.Integer(load_default=50, validate=validate.Range(1, 1000))

    @validates_schema
    def _no_cleartext_password(self, data, **_kwargs):
        from servicedesk_email.imap import is_loopback

        if (data.get("imap_security") == "none" and data.get("imap_password")
                and data.get("imap_host") and not is_loopback(data["imap_host"])):
            raise SchemaError("The IMAP password would cross the network unencrypted; use "
                              "ssl or starttls.", field_name="imap_security")


@hookimpl
def servicedesk_settings_schema():
    return InboundMailSettings


class EmailChannel:
    """The ``email`` channel: an MTA pipe (``ingest``) and IMAP polling (``poll``)."""

    name = "email"

    def ingest(self, raw: bytes):
        return inbound.process(raw)

    def poll(self):
        from servicedesk.plugins import plugin_settings

        from servicedesk_email import imap

        values = plugin_settings("email")
        settings = imap.ImapSettings.from_plugin(values)
        if settings is None:
            return []  # no IMAP host configured: polling is off
        return imap.poll_once(settings, inbound.InboundSettings.from_plugin(values))


@hookimpl
def servicedesk_channels():
    return [EmailChannel()]


@hookimpl
def servicedesk_cli_commands():
    from servicedesk_email.cli import mail

    return [mail]
