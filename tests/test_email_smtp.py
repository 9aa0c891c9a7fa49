"""The e-mail notifier against a real SMTP server (aiosmtpd on loopback).

Notifications are queued through the outbox like any caller does, delivered by the
outbox's own delivery function, and read back as the server received them.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from servicedesk.extensions import db
from servicedesk.incidents.models import Incident
from servicedesk.notify import delivery
from servicedesk.notify.models import Notification
from servicedesk.notify.render import header_safe
from servicedesk.notify.service import Message, PermanentFailure, queue_notification
from servicedesk_email.plugin import SmtpNotifier, SmtpSettings, build_email

SENDER = "Service Desk <desk@example.test>"


# --- a real SMTP server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)


class Mailbox:
    """An aiosmtpd handler that keeps what it receives; can refuse recipients or be slow."""

    def __init__(self):
        self.received: list[Received] = []
        self.refuse_rcpt: str | None = None  # e.g. "550 5.1.1 no such user"
        self.delay = 0.0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)  # widen the window two senders could overlap in
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      envelope.content))
        return "250 OK"


class SmtpServer:
    def __init__(self, port: int | None = None, **controller_kwargs):
        self.port = port or free_port()
        self.mailbox = Mailbox()
        self.controller_kwargs = controller_kwargs
        self.controller = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     **self.controller_kwargs)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def received(self) -> list[Received]:
        return self.mailbox.received


def use_smtp(app, port: int, **extra) -> None:
    app.config.update({
        "SERVICEDESK_SMTP_HOST": "127.0.0.1",
        "SERVICEDESK_SMTP_PORT": port,
        "SERVICEDESK_SMTP_SECURITY": "none",
        "SERVICEDESK_SMTP_USERNAME": "",
        "SERVICEDESK_SMTP_PASSWORD": "",
        "SERVICEDESK_SMTP_FROM": SENDER,
        "SERVICEDESK_SMTP_TIMEOUT": 5,
        "SERVICEDESK_MAIL_DOMAIN": "example.test",
        **extra,
    })


@pytest.fixture
def smtp(app):
    server = SmtpServer().start()
    use_smtp(app, server.port)
    yield server
    server.stop()


# --- helpers ----------------------------------------------------------------------------


def incident_of(world, requester, **fields) -> Incident:
    number = world.incident(requester, **fields)["number"]
    return db.session.scalars(select(Incident).where(Incident.number == number)).one()


def queue_sla_warning(ticket, recipient, key="k", due_at=None) -> Notification:
    notification = queue_notification(
        "sla.warning", recipient, ticket=ticket, dedupe_key=key,
        context={"metric": "resolution", "step": {"key": "warn"},
                 "due_at": due_at or datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc)})
    db.session.commit()
    return notification


def deliver_all() -> dict[str, int]:
    db.session.rollback()  # hold no transaction (SQLite: the write lock) meanwhile
    return delivery.deliver_due()


# --- delivery -----------------------------------------------------------------------------


def test_a_queued_notification_arrives_once_threaded_under_its_ticket_with_both_parts(
        world, desk, smtp):
    ticket = incident_of(world, desk.employee, title="Laptop does not boot")
    queue_sla_warning(ticket, desk.agent, key="sla:1:resolution:warn")
    assert deliver_all() == {"sent": 1, "retry": 0, "failed": 0}
    assert deliver_all() == {"sent": 0, "retry": 0, "failed": 0}  # never twice

    [mail] = smtp.received
    assert mail.rcpt_tos == ["agent1@example.test"]
    assert mail.mail_from == "desk@example.test"
    message = mail.message
    assert message["Subject"].startswith(f"[{ticket.number}] ")
    assert "Laptop does not boot" in message["Subject"]
    assert message["From"] == SENDER
    assert message["To"] == "agent1@example.test"
    assert message["Message-ID"].endswith("@example.test>")
    assert message["In-Reply-To"] == f"<ticket.{ticket.number}@example.test>"
    assert message["References"] == f"<ticket.{ticket.number}@example.test>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert ticket.number in text and "resolution" in text
    assert "<strong>" in html and ticket.number in html


def test_every_message_about_a_ticket_refers_to_the_same_thread_with_its_own_id(
        world, desk, smtp):
    ticket = incident_of(world, desk.employee)
    queue_sla_warning(ticket, desk.agent, key="warn")
    queue_notification("sla.breach", desk.manager, ticket=ticket, dedupe_key="breach",
                       context={"metric": "resolution", "step": {}, "due_at": None})
    db.session.commit()
    deliver_all()
    messages = [r.message for r in smtp.received]
    assert len(messages) == 2
    assert len({m["Message-ID"] for m in messages}) == 2
    assert {m["References"] for m in messages} == {f"<ticket.{ticket.number}@example.test>"}


def test_the_message_id_is_the_same_on_every_attempt(world, desk, smtp):
    ticket = incident_of(world, desk.employee)
    notification = queue_sla_warning(ticket, desk.agent, key="stable")
    first = notification.headers["Message-ID"]
    deliver_all()
    assert smtp.received[0].message["Message-ID"] == first


@pytest.mark.parametrize("locale, title, expected", [
    ("fa", "چاپگر طبقه سوم کار نمی‌کند", "هشدار SLA"),
    ("ru", "Не работает принтер на третьем этаже", "Предупреждение SLA"),
    ("he", "המדפסת בקומה השלישית לא עובדת", "אזהרת SLA"),
])
def test_persian_russian_and_hebrew_arrive_intact_in_the_recipients_language(
        world, desk, smtp, locale, title, expected):
    agent = world.user("agent", groups=[desk.l1], locale=locale)
    ticket = incident_of(world, desk.employee, title=title, description="")
    queue_sla_warning(ticket, agent, key=f"i18n-{locale}")
    deliver_all()
    [mail] = smtp.received
    raw_headers = mail.content.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" in raw_headers.lower()  # RFC 2047 encoded, not raw 8-bit
    message = mail.message
    assert message["Subject"] == f"[{ticket.number}] " + message["Subject"].split("] ", 1)[1]
    assert title in message["Subject"] and expected in message["Subject"]
    assert title in message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert title in html
    assert f'lang="{locale}"' in html
    assert ('dir="rtl"' in html) == (locale in ("fa", "he"))


def test_a_title_cannot_inject_a_header(world, desk, smtp):
    ticket = incident_of(world, desk.employee, title="Printer\r\nBcc: x@evil.test")
    queue_sla_warning(ticket, desk.agent, key="inject")
    deliver_all()
    [mail] = smtp.received
    assert mail.rcpt_tos == ["agent1@example.test"]
    message = mail.message
    assert message["Bcc"] is None
    assert "\r" not in message["Subject"] and "\n" not in message["Subject"]
    assert "Printer Bcc: x@evil.test" in message["Subject"]
    header_block = mail.content.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))


def test_header_safe_strips_line_breaks_and_control_characters():
    assert header_safe("a\r\nBcc: x") == "a Bcc: x"
    assert header_safe("a\nb\rc\x00d\u2028e\x85f") == "a b c d e f"
    assert header_safe("  many    spaces  ") == "many spaces"
    assert len(header_safe("x" * 1000)) == 250


def test_the_mime_builder_keeps_injected_headers_out_even_from_a_message_it_is_handed():
    message = Message(address="a@example.test", subject="Hi\r\nBcc: b@example.test",
                      body_text="text", body_html=None,
                      headers={"Message-ID": "<1@x>\r\nBcc: c@example.test",
                               "X-Servicedesk-Ticket": "INC1\nBcc: d@example.test",
                               "Bcc": "e@example.test"},
                      dedupe_key="d", ticket_number=None)
    mail = build_email(message, SENDER)
    assert mail["Bcc"] is None
    headers = mail.as_bytes().split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert not any(h.lower().startswith(b"bcc") for h in headers)
    assert mail.get_content_type() == "text/plain"


# --- failures -----------------------------------------------------------------------------


def test_a_5xx_reply_fails_the_notification_at_once_without_retrying(world, desk, smtp):
    smtp.mailbox.refuse_rcpt = "550 5.1.1 No such user"
    ticket = incident_of(world, desk.employee)
    notification = queue_sla_warning(ticket, desk.agent, key="gone")
    assert deliver_all() == {"sent": 0, "retry": 0, "failed": 1}
    row = db.session.get(Notification, notification.id, populate_existing=True)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "550" in row.last_error and "No such user" in row.last_error
    assert smtp.received == []


def test_a_4xx_reply_is_retried(world, desk, smtp):
    smtp.mailbox.refuse_rcpt = "451 4.3.0 Try again later"
    ticket = incident_of(world, desk.employee)
    notification = queue_sla_warning(ticket, desk.agent, key="later")
    assert deliver_all() == {"sent": 0, "retry": 1, "failed": 0}
    row = db.session.get(Notification, notification.id, populate_existing=True)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "451" in row.last_error


# --- TLS and authentication ---------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    return str(cert), str(key)


class Credentials:
    def __init__(self):
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        password = (auth_data.password.decode() if isinstance(auth_data.password, bytes)
                    else auth_data.password)
        self.seen.append(login)
        # handled=False: aiosmtpd answers a refusal with 535 itself.
        return AuthResult(success=(login, password) == ("desk", "s3cret"), handled=False)


def _tls_context(certificate):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def test_starttls_with_authentication_delivers(world, desk, app, certificate):
    credentials = Credentials()
    server = SmtpServer(tls_context=_tls_context(certificate), require_starttls=True,
                        authenticator=credentials, auth_require_tls=True).start()
    try:
        use_smtp(app, server.port, SERVICEDESK_SMTP_SECURITY="starttls",
                 SERVICEDESK_SMTP_USERNAME="desk", SERVICEDESK_SMTP_PASSWORD="s3cret",
                 SERVICEDESK_SMTP_CA_FILE=certificate[0])
        ticket = incident_of(world, desk.employee)
        queue_sla_warning(ticket, desk.agent, key="tls")
        assert deliver_all()["sent"] == 1
        assert credentials.seen == ["desk"]
        assert len(server.received) == 1
    finally:
        server.stop()


def test_wrong_credentials_are_a_permanent_failure(world, desk, app, certificate):
    server = SmtpServer(tls_context=_tls_context(certificate), require_starttls=True,
                        authenticator=Credentials(), auth_require_tls=True).start()
    try:
        use_smtp(app, server.port, SERVICEDESK_SMTP_SECURITY="starttls",
                 SERVICEDESK_SMTP_USERNAME="desk", SERVICEDESK_SMTP_PASSWORD="wrong",
                 SERVICEDESK_SMTP_CA_FILE=certificate[0])
        ticket = incident_of(world, desk.employee)
        notification = queue_sla_warning(ticket, desk.agent, key="badauth")
        outcome = deliver_all()
        row = db.session.get(Notification, notification.id, populate_existing=True)
        assert outcome["failed"] == 1, row.last_error
        assert "535" in row.last_error
    finally:
        server.stop()


def test_implicit_tls_delivers(world, desk, app, certificate):
    server = SmtpServer(ssl_context=_tls_context(certificate)).start()
    try:
        use_smtp(app, server.port, SERVICEDESK_SMTP_SECURITY="ssl",
                 SERVICEDESK_SMTP_CA_FILE=certificate[0])
        ticket = incident_of(world, desk.employee)
        queue_sla_warning(ticket, desk.agent, key="ssl")
        assert deliver_all()["sent"] == 1
        assert len(server.received) == 1
    finally:
        server.stop()


def test_an_untrusted_certificate_is_refused_and_retried(world, desk, app, certificate):
    server = SmtpServer(ssl_context=_tls_context(certificate)).start()
    try:
        use_smtp(app, server.port, SERVICEDESK_SMTP_SECURITY="ssl")  # system CAs only
        ticket = incident_of(world, desk.employee)
        notification = queue_sla_warning(ticket, desk.agent, key="untrusted")
        assert deliver_all()["retry"] == 1
        row = db.session.get(Notification, notification.id, populate_existing=True)
        assert "CERTIFICATE_VERIFY_FAILED" in row.last_error
        assert server.received == []
    finally:
        server.stop()


def test_credentials_are_never_sent_unencrypted_to_a_remote_host():
    notifier = SmtpNotifier(SmtpSettings(host="192.0.2.10", port=25, security="none",
                                         username="desk", password="s3cret",
                                         sender=SENDER, timeout=1))
    message = Message(address="a@example.test", subject="s", body_text="t", body_html=None,
                      headers={}, dedupe_key="k", ticket_number=None)
    with pytest.raises(PermanentFailure, match="unencrypted"):
        notifier.send(message)


def test_an_unknown_security_mode_is_a_permanent_failure():
    notifier = SmtpNotifier(SmtpSettings(host="127.0.0.1", port=free_port(), security="tls1",
                                         username="", password="", sender=SENDER, timeout=1))
    message = Message(address="a@example.test", subject="s", body_text="t", body_html=None,
                      headers={}, dedupe_key="k", ticket_number=None)
    with pytest.raises(PermanentFailure, match="SERVICEDESK_SMTP_SECURITY"):
        notifier.send(message)


def test_default_settings_are_a_local_relay_without_credentials(app):
    from servicedesk.config import load_config

    config = load_config(app.instance_path)
    settings = SmtpSettings.from_config(config)
    assert (settings.host, settings.port, settings.security) == ("127.0.0.1", 25, "none")
    assert settings.username == "" and settings.timeout > 0
    assert SmtpSettings.from_config({**config, "SERVICEDESK_SMTP_SECURITY": "starttls"}).port == 587
    assert SmtpSettings.from_config({**config, "SERVICEDESK_SMTP_SECURITY": "ssl"}).port == 465
