"""Inbound e-mail: one RFC 5322 message in, an incident or a public comment out.

``process(raw)`` is the whole channel; the MTA pipe (``servicedesk mail ingest``) and
the IMAP poller (``imap.py``) only hand it bytes. Order of the checks, each of which
ends the story for the message:

1. too big, or not parseable at all → ``rejected`` (never a traceback);
2. its Message-ID (or, without one, a hash of the bytes) was taken in before →
   ``ignored`` (duplicates are free: MTA retries, a poll that died before flagging);
3. an auto-reply, bounce, list or bulk mail, mail from ourselves, or more than
   ``max_per_sender_per_hour`` messages from one sender → ``ignored`` (logged, no
   ticket, no answer: no mail loops);
4. the sender: an active user with that address; unknown senders are refused or get
   a requester account (setting ``unknown_senders``);
5. a reply (our thread id in In-Reply-To/References, or ``[INC000123]`` in the
   subject) to an incident the sender may see and that still takes comments → a
   public comment; otherwise a new incident.

The ticket or comment, its attachments and the ``inbound_messages`` row commit in one
transaction (``servicedesk.channels.record_with_change``), through the incident
service with channel ``email``, so SLA clocks, audit, notifications and hooks happen
as for any other channel.

HTML bodies are reduced to text (nh3 strips every tag, script and style contents
included); pages show comments as escaped text only. An HTML-only message also keeps
its nh3-cleaned HTML as an attachment, which is only ever served as a download.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import html
import logging
import mimetypes
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import nh3
from flask import current_app

from servicedesk import channels
from servicedesk.attachments import service as files
from servicedesk.errors import Conflict, NotFound, ServiceError
from servicedesk.extensions import db
from servicedesk.notify.render import header_safe

log = logging.getLogger(__name__)

CHANNEL = "email"
MAX_BODY_CHARS = 100_000
_THREAD_REF = re.compile(r"<ticket\.[A-Za-z0-9]{1,20}@[^<>\s]{1,200}>")
_SUBJECT_REF = re.compile(r"\[(INC\d{3,12})\]", re.IGNORECASE)
_AUTO_LOCALPARTS = {"mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply",
                    "donotreply"}
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}


@dataclass
class Part:
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class ParsedMail:
    message_id: str
    sender: str  # the bare address, lower case ("" when none could be read)
    sender_name: str
    subject: str
    text: str
    html: str | None
    references: list[str]
    parts: list[Part] = field(default_factory=list)
    auto_reason: str | None = None


# --- parsing (never raises on bad input) ------------------------------------------------


def _header(msg: EmailMessage, name: str) -> str:
    """A header's decoded value (RFC 2047 words decoded), or its raw text when the
    header is too broken to decode; "" when absent."""
    try:
        value = msg.get(name)
        return "" if value is None else str(value)
    except Exception:  # a header the policy cannot parse: use its raw text
        for key, raw in msg.raw_items():
            if key.lower() == name.lower():
                return str(raw)
        return ""


def _decode(part) -> str:
    data = part.get_payload(decode=True) or b""
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
        return data.decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown or nonsense charset: best effort
        return data.decode("utf-8", errors="replace")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML body: block ends become line breaks, every tag goes
    (script and style with their contents), entities are decoded. Shown escaped."""
    markup = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6]|blockquote)\s*>", "\n", markup)
    text = html.unescape(nh3.clean(markup, tags=set()))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines()))


def clean_html(markup: str) -> str:
    return nh3.clean(markup)


def _is_attachment(part) -> bool:
    try:
        disposition = (part.get_content_disposition() or "").lower()
        filename = part.get_filename()
    except Exception:
        disposition, filename = "attachment", None
    if disposition == "attachment" or filename:
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _auto_reason(msg: EmailMessage, sender: str) -> str | None:
    """Why this is machine mail we must never answer or ticket (RFC 3834), or None."""
    auto = _header(msg, "Auto-Submitted").strip().lower()
    if auto and not auto.startswith("no"):
        return f"Auto-Submitted: {auto[:40]}"
    precedence = _header(msg, "Precedence").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response"):
        if _header(msg, name):
            return f"{name} present"
    if msg.get_content_type() == "multipart/report":
        return "delivery report (bounce)"
    local = sender.split("@", 1)[0]
    if local in _AUTO_LOCALPARTS:
        return f"sent by {local}"
    if _header(msg, "Return-Path").strip() == "<>":
        return "null return path (bounce)"
    return None


def parse(raw: bytes) -> ParsedMail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = header_safe(_header(msg, "Message-ID"), 255).strip()
    if not message_id:
        message_id = f"<sha256.{hashlib.sha256(raw).hexdigest()}@inbound.invalid>"
    name, address = "", ""
    try:
        pairs = getaddresses([_header(msg, "From")])
        name, address = pairs[0] if pairs else ("", "")
    except Exception:
        name, address = parseaddr(_header(msg, "From"))
    address = address.strip().lower()
    if "@" not in address or any(c in address for c in "\r\n <>\"'"):
        address = ""
    references = _THREAD_REF.findall(
        " ".join([_header(msg, "In-Reply-To"), _header(msg, "References")]))
    mail = ParsedMail(
        message_id=message_id, sender=address, sender_name=header_safe(name, 200),
        subject=header_safe(_header(msg, "Subject"), 998), text="", html=None,
        references=references,
    )
    mail.auto_reason = _auto_reason(msg, address)
    text_body = html_body = None
    for part in msg.walk():
        if part.is_multipart():
            continue
        if _is_attachment(part):
            try:
                filename = part.get_filename()
            except Exception:
                filename = None
            data = part.get_payload(decode=True) or b""
            mail.parts.append(Part(filename, part.get_content_type(), data))
        elif part.get_content_type() == "text/plain" and text_body is None:
            text_body = _decode(part)
        elif part.get_content_type() == "text/html" and html_body is None:
            html_body = _decode(part)
    if text_body is not None:
        mail.text = text_body
    elif html_body is not None:
        mail.text = html_to_text(html_body)
        mail.html = clean_html(html_body)
    mail.text = mail.text.replace("\r\n", "\n").replace("\x00", "").strip()[:MAX_BODY_CHARS]
    return mail


def strip_quoted(text: str) -> str:
    """The new part of a reply: without the quoted message below it."""
    lines = text.splitlines()
    cut = len(lines)
    for i, line in enumerate(lines):
        if line.strip() in ("-----Original Message-----", "----- Original Message -----"):
            cut = i
            break
        if line.startswith(">") and all(not rest.strip() or rest.startswith(">")
                                        for rest in lines[i:]):
            cut = i
            if i and lines[i - 1].rstrip().endswith(":"):  # "On ..., X wrote:"
                cut = i - 1
            break
    new = "\n".join(lines[:cut]).strip()
    return new or text.strip()


# --- settings -------------------------------------------------------------------------


DEFAULT_ALLOWED_TYPES = (
    "text/plain", "text/csv", "application/pdf", "image/png", "image/jpeg", "image/gif",
    "image/webp", "application/zip", "message/rfc822",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
)


@dataclass(frozen=True)
class InboundSettings:
    unknown_senders: str = "reject"
    max_attachment_bytes: int = 10 * 1024 * 1024
    max_message_bytes: int = 25 * 1024 * 1024
    allowed_types: tuple[str, ...] = DEFAULT_ALLOWED_TYPES
    max_per_sender_per_hour: int = 30

    @classmethod
    def from_plugin(cls, values: dict) -> InboundSettings:
        types = values.get("allowed_types")
        return cls(
            unknown_senders=values.get("unknown_senders") or "reject",
            max_attachment_bytes=int(values.get("max_attachment_bytes") or cls.max_attachment_bytes),
            max_message_bytes=int(values.get("max_message_bytes") or cls.max_message_bytes),
            max_per_sender_per_hour=int(values.get("max_per_sender_per_hour")
                                        or cls.max_per_sender_per_hour),
            allowed_types=tuple(t.strip().lower() for t in types.split(",") if t.strip())
            if types else DEFAULT_ALLOWED_TYPES,
        )


def _effective_type(part: Part) -> str:
    declared = files.safe_content_type(part.content_type)
    if declared == "application/octet-stream" and part.filename:
        guessed, _enc = mimetypes.guess_type(files.safe_filename(part.filename))
        return guessed or declared
    return declared


def _keepable(parts: list[Part], settings: InboundSettings) -> tuple[list[Part], list[str]]:
    """The parts we keep, and a line for each we refused (told in the ticket)."""
    kept, notes = [], []
    for part in parts:
        name = files.safe_filename(part.filename)
        kind = _effective_type(part)
        if len(part.data) > settings.max_attachment_bytes:
            notes.append(f"{name} ({len(part.data) // 1024} KiB) was not kept: larger than "
                         f"{settings.max_attachment_bytes // 1024} KiB.")
        elif kind not in settings.allowed_types:
            notes.append(f"{name} was not kept: files of type {kind} are not accepted.")
        else:
            kept.append(Part(name, kind, part.data))
    return kept, notes


# --- the sender -----------------------------------------------------------------------


def _sender_user(mail: ParsedMail, settings: InboundSettings):
    """(user, None) or (None, reason to refuse)."""
    from sqlalchemy import func, select

    from servicedesk.identity.models import User
    from servicedesk.identity.service import create_user, get_user

    if not mail.sender:
        return None, "no readable From address"
    users = list(db.session.scalars(
        select(User).where(func.lower(User.email) == mail.sender).order_by(User.id)))
    active = [u for u in users if u.active]
    if active:
        return active[0], None
    if users:
        return None, "the sender's account is deactivated"
    if settings.unknown_senders != "create":
        return None, "unknown sender"
    base = re.sub(r"[^\w.@+-]", "_", mail.sender)[:140] or "mail"
    username, n = base, 1
    while get_user(username) is not None:
        n += 1
        username = f"{base}.{n}"
    user = create_user(None, username, mail.sender, "requester",
                       display_name=mail.sender_name or mail.sender.split("@")[0])
    return user, None


def _reply_target(mail: ParsedMail, actor):
    """The incident this message answers, if it names one ``actor`` may see."""
    from servicedesk.incidents import service as incidents
    from servicedesk.notify.service import thread_id

    candidates = [(ref[len("<ticket."):].split("@", 1)[0], ref) for ref in mail.references]
    match = _SUBJECT_REF.search(mail.subject)
    if match:
        candidates.append((match.group(1).upper(), None))
    for number, ref in candidates:
        try:
            incident = incidents.get_incident(actor, number)
        except NotFound:
            continue
        # A thread id must be ours exactly (our domain), not just look like it.
        if ref is not None and ref != thread_id(incident):
            continue
        return incident
    return None


# --- processing -----------------------------------------------------------------------


def _log(mail_id: str, status: str, reason: str, mail: ParsedMail | None = None,
         ticket_id: int | None = None) -> channels.InboundResult:
    db.session.rollback()
    channels.record_message(CHANNEL, mail_id, status, reason,
                            sender=mail.sender if mail else "",
                            subject=mail.subject if mail else "", ticket_id=ticket_id)
    return channels.InboundResult(status, reason, mail_id)


def process(raw: bytes, settings: InboundSettings | None = None) -> channels.InboundResult:
    """Take one message in (see the module docstring). Never raises for bad input."""
    settings = settings or current_settings()
    db.session.rollback()  # start from a clean unit of work
    if len(raw) > settings.max_message_bytes:
        return _log(f"<sha256.{hashlib.sha256(raw).hexdigest()}@inbound.invalid>",
                    "rejected", f"message larger than {settings.max_message_bytes} bytes")
    try:
        mail = parse(raw)
    except Exception as exc:  # the parser is lenient; this is the truly broken
        log.warning("unparseable inbound mail: %r", exc)
        return _log(f"<sha256.{hashlib.sha256(raw).hexdigest()}@inbound.invalid>",
                    "rejected", f"malformed message: {type(exc).__name__}")
    existing = channels.find_message(mail.message_id)
    if existing is not None and existing.status != "failed":
        return channels.InboundResult("ignored", f"duplicate (already {existing.status})",
                                      mail.message_id)
    if mail.auto_reason:
        return _log(mail.message_id, "ignored", mail.auto_reason, mail)
    ours = parseaddr(current_app.config.get("SERVICEDESK_SMTP_FROM") or "")[1].lower()
    if ours and mail.sender == ours:
        return _log(mail.message_id, "ignored", "sent by this service desk (loop)", mail)
    # An auto-responder that sends no RFC 3834 headers would answer every message we
    # send about its ticket, each answer becoming a comment: stop such loops here.
    if mail.sender and channels.recent_from(mail.sender) >= settings.max_per_sender_per_hour:
        return _log(mail.message_id, "ignored", "too many messages from this sender in the "
                    "last hour (loop guard)", mail)
    try:
        return _take_in(mail, settings)
    except ServiceError as exc:
        db.session.rollback()
        if isinstance(exc, Conflict) and channels.find_message(mail.message_id):
            return channels.InboundResult("ignored", "duplicate (taken in concurrently)",
                                          mail.message_id)
        details = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in exc.fields.items())
        return _log(mail.message_id, "rejected",
                    f"{exc.message}{f' ({details})' if details else ''}", mail)
    except Exception as exc:
        log.exception("inbound mail %s failed", mail.message_id)
        return _log(mail.message_id, "failed", f"internal error: {type(exc).__name__}", mail)


def _take_in(mail: ParsedMail, settings: InboundSettings) -> channels.InboundResult:
    from servicedesk.incidents import service as incidents

    actor, refusal = _sender_user(mail, settings)
    if actor is None:
        return _log(mail.message_id, "rejected", refusal, mail)
    kept, notes = _keepable(mail.parts, settings)
    if mail.html is not None:
        kept.append(Part("message.html", "text/html", mail.html.encode("utf-8")))

    def attach(ticket, comment):
        for part in kept:
            files.store(part.data, part.filename, part.content_type, ticket=ticket,
                        comment=comment)

    incident = _reply_target(mail, actor)
    if incident is not None and not incidents.WORKFLOW.is_final(incident.status):
        body = strip_quoted(mail.text) or "(no text)"
        body = "\n\n".join([body, *notes]) if notes else body
        with channels.record_with_change(CHANNEL, mail.message_id, mail.sender, mail.subject,
                                         ticket=incident, attachments=attach):
            incidents.comment_incident(actor, incident.number, body, public=True)
        return channels.InboundResult("processed", "", mail.message_id, incident.number,
                                      "commented")
    title = " ".join(_SUBJECT_REF.sub("", mail.subject).split()).strip(" :-") or "(no subject)"
    description = mail.text
    if incident is not None:  # a reply to a finished incident: a new one, linked in text
        description = f"Follow-up to {incident.number}.\n\n{strip_quoted(mail.text)}"
    if notes:
        description = "\n\n".join([description, *notes])
    with channels.record_with_change(CHANNEL, mail.message_id, mail.sender, mail.subject,
                                     attachments=attach) as pending:
        incidents.create_incident(actor, {"title": title[:200], "description": description},
                                  channel=CHANNEL)
    return channels.InboundResult("processed", "", mail.message_id, pending.ticket.number,
                                  "created")


def current_settings() -> InboundSettings:
    from servicedesk.plugins import plugin_settings

    return InboundSettings.from_plugin(plugin_settings("email"))
