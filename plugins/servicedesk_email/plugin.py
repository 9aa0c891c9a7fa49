"""Hook implementations of the e-mail plugin (registered by the ``email`` entry point).

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

from servicedesk.notify.render import header_safe
from servicedesk.notify.service import Message, PermanentFailure
from servicedesk.plugins import hookimpl
from servicedesk.types import utcnow

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
