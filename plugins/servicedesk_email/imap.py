"""IMAP polling: a thin imaplib wrapper around ``inbound.process``.

One pass: log in, select the folder, ``UID SEARCH UNSEEN``, and for each message
``UID FETCH BODY.PEEK[]`` (peek: fetching does not mark it read), process it, and
only then ``UID STORE +FLAGS (\\Seen)``. A message whose processing failed on our side
stays unseen and is tried again next pass; one that was processed but not flagged
(the connection dropped) is fetched again and ignored as a duplicate by its
Message-ID. So a pass can die anywhere without losing or doubling a message.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import re
import ssl
from dataclasses import dataclass

from servicedesk.channels import InboundResult

from servicedesk_email import inbound

log = logging.getLogger(__name__)

SECURITY_MODES = ("ssl", "starttls", "none")
DEFAULT_PORTS = {"ssl": 993, "starttls": 143, "none": 143}


class ImapError(Exception):
    """The server refused or the connection failed; nothing was lost."""


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    security: str
    user: str
    password: str
    folder: str = "INBOX"
    batch: int = 50
    timeout: float = 30.0
    ca_file: str | None = None

    @classmethod
    def from_plugin(cls, values: dict) -> ImapSettings | None:
        """None when no IMAP host is configured (polling is off)."""
        host = (values.get("imap_host") or "").strip()
        if not host:
            return None
        security = values.get("imap_security") or "ssl"
        return cls(
            host=host, port=int(values.get("imap_port") or DEFAULT_PORTS[security]),
            security=security, user=values.get("imap_user") or "",
            password=values.get("imap_password") or "",
            folder=values.get("imap_folder") or "INBOX",
            batch=int(values.get("imap_batch") or 50),
            ca_file=values.get("imap_ca_file") or None,
        )


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _check(response, what: str):
    typ, data = response
    if typ != "OK":
        detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise ImapError(f"{what} refused: {detail[:200]}")
    return data


def connect(settings: ImapSettings) -> imaplib.IMAP4:
    if settings.security not in SECURITY_MODES:
        raise ImapError(f"imap_security is {settings.security!r}; use one of "
                        f"{', '.join(SECURITY_MODES)}")
    if settings.security == "none" and settings.password and not is_loopback(settings.host):
        raise ImapError("refusing to send the IMAP password unencrypted to a host that is "
                        "not loopback; set imap_security to ssl or starttls")
    try:
        # Certificates are always verified (against the system store or imap_ca_file).
        context = ssl.create_default_context(cafile=settings.ca_file)
        if settings.security == "ssl":
            conn = imaplib.IMAP4_SSL(settings.host, settings.port, timeout=settings.timeout,
                                     ssl_context=context)
        else:
            conn = imaplib.IMAP4(settings.host, settings.port, timeout=settings.timeout)
            if settings.security == "starttls":
                conn.starttls(ssl_context=context)
        _check(conn.login(settings.user, settings.password), "LOGIN")
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapError(f"cannot log in to {settings.host}:{settings.port}: {exc}") from exc
    return conn


def _message_bytes(data) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def poll_once(settings: ImapSettings,
              inbound_settings: inbound.InboundSettings | None = None) -> list[InboundResult]:
    """One pass over the folder's unseen messages (at most ``settings.batch``)."""
    results = []
    conn = connect(settings)
    try:
        _check(conn.select(_quoted(settings.folder)), "SELECT")
        uids = _check(conn.uid("SEARCH", None, "UNSEEN"), "SEARCH")
        for uid in (uids[0] or b"").split()[: settings.batch]:
            if not re.fullmatch(rb"\d+", uid):
                continue
            raw = _message_bytes(_check(conn.uid("FETCH", uid, "(BODY.PEEK[])"), "FETCH"))
            if raw is None:
                continue
            result = inbound.process(raw, inbound_settings)
            results.append(result)
            if result.status != "failed":  # failed: try again next pass
                _check(conn.uid("STORE", uid, "+FLAGS", "(\\Seen)"), "STORE")
    except imaplib.IMAP4.error as exc:
        raise ImapError(str(exc)) from exc
    finally:
        try:
            conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
    return results


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
