"""Attachments: safe names, storage on disk under generated keys, and who may read them.

Nothing from the sender ever becomes a path: a file is written under a random key
(``<instance>/attachments/<k[:2]>/<k>``, or ``SERVICEDESK_ATTACHMENTS_DIR``), and the
sender's file name survives only as a sanitised label for the download. Bytes are
written (and fsync'd) before the row is committed, so a row never names a missing
file; a transaction that fails afterwards leaves an orphan file, which costs disk
space, never correctness.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import unicodedata
from pathlib import Path

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from servicedesk.attachments.models import Attachment, InboundMessage
from servicedesk.errors import Forbidden, NotFound
from servicedesk.extensions import db
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import Comment, Ticket

MAX_FILENAME = 120
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|;]+")
_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def safe_filename(name: str | None, fallback: str = "attachment") -> str:
    """A label safe to show and to put in Content-Disposition: the last path segment
    only, no control or path characters, no leading dots, at most MAX_FILENAME chars
    (the extension kept). ``"../../etc/passwd"`` becomes ``"passwd"``."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if not name:
        return fallback
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem if dot else name)[: MAX_FILENAME - len(ext) - 1].rstrip() + (
            "." + ext if ext else "")
    return name


def safe_content_type(value: str | None) -> str:
    value = (value or "").strip().lower()
    return value if _TYPE.match(value) else "application/octet-stream"


def storage_root() -> Path:
    # The app config wins (tests); else the environment, like every SERVICEDESK_* setting.
    configured = (current_app.config.get("SERVICEDESK_ATTACHMENTS_DIR")
                  or os.environ.get("SERVICEDESK_ATTACHMENTS_DIR"))
    return Path(configured or os.path.join(current_app.instance_path, "attachments"))


def _path_for(key: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{32}", key):  # keys are ours; anything else is a bug
        raise ValueError("bad storage key")
    return storage_root() / key[:2] / key


def store(data: bytes, filename: str | None, content_type: str | None, *,
          ticket: Ticket | None = None, ticket_id: int | None = None,
          comment: Comment | None = None) -> Attachment:
    """Write ``data`` under a new key and return its row, added to the session (the
    caller's transaction commits it). ``ticket``/``comment`` may be objects not yet
    flushed."""
    key = secrets.token_hex(16)
    path = _path_for(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    row = Attachment(
        filename=safe_filename(filename), content_type=safe_content_type(content_type),
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), storage_key=key)
    if ticket is not None:
        row.ticket = ticket
    else:
        row.ticket_id = ticket_id
    if comment is not None:
        row.comment = comment
    db.session.add(row)
    return row


def _visible(actor, query):
    """Only attachments of tickets ``actor`` may see, and, for requesters, not those of
    internal notes."""
    query = query.join(Ticket, Ticket.id == Attachment.ticket_id).where(
        visible_tickets_clause(actor, Ticket))
    if actor is not None and not actor.is_staff:
        query = query.outerjoin(Comment, Comment.id == Attachment.comment_id).where(
            (Attachment.comment_id.is_(None)) | (Comment.public.is_(True)))
    return query


def list_attachments(actor, ticket: Ticket) -> list[Attachment]:
    query = select(Attachment).where(Attachment.ticket_id == ticket.id).order_by(Attachment.id)
    return list(db.session.scalars(_visible(actor, query)))


def get_attachment(actor, attachment_id: int) -> Attachment:
    """The attachment if ``actor`` may see its ticket (and comment); else NotFound."""
    if not 0 < attachment_id <= 2**31 - 1:  # beyond the column: matches nothing (and
        raise NotFound(_("No such attachment."))  # PostgreSQL would refuse the value)
    row = db.session.scalars(
        _visible(actor, select(Attachment).where(Attachment.id == attachment_id))
    ).one_or_none()
    if row is None:
        raise NotFound(_("No such attachment."))
    return row


def read_bytes(row: Attachment) -> bytes:
    return _path_for(row.storage_key).read_bytes()


def open_file(row: Attachment):
    return open(_path_for(row.storage_key), "rb")


def list_ticket_attachments(actor, number: str) -> list[Attachment]:
    """The attachments of ticket ``number`` (any kind) that ``actor`` may see."""
    from servicedesk.tickets.service import get_visible_ticket

    return list_attachments(actor, get_visible_ticket(actor, Ticket, number))


def list_inbound_messages(actor, status: str | None = None, *, after_id: int | None = None,
                          limit: int = 50) -> list[InboundMessage]:
    """The inbound message log, newest first (keyset by id); admins (and the system,
    ``None``: the command line) only."""
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins read the inbound message log."))
    query = select(InboundMessage).order_by(InboundMessage.id.desc()).limit(limit)
    if status is not None:
        query = query.where(InboundMessage.status == status)
    if after_id is not None:
        query = query.where(InboundMessage.id < after_id)
    return list(db.session.scalars(query))
