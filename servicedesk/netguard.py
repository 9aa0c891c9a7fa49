"""The guard on every outbound request a plugin makes to an admin-given URL (SSRF).

A webhook or chat URL is checked twice: when an admin saves it (so a typo or a
forbidden target is a 422 naming the field) and again right before each delivery,
because DNS may answer differently by then (DNS rebinding). The check resolves the
host and refuses it when any address is loopback, private, link-local (cloud metadata
at 169.254.169.254), multicast, reserved or unspecified, unless the address or host is
in the admin's allow-list (hosts, IP addresses or CIDR networks). Only http and https,
no credentials in the URL. ``post_json`` then connects to the very address that was
checked (never re-resolving), sends with a timeout and follows no redirect.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_RESPONSE_BYTES = 64 * 1024


class UnsafeURL(ValueError):
    """The URL may not be requested; the message says why (shown to admins)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the resolved address) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _networks(allow: list[str] | tuple[str, ...] | None):
    hosts, networks = set(), []
    for entry in allow or ():
        entry = (entry or "").strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return hosts, networks


def validate_allow_list(allow) -> list[str]:
    """Reasons the allow-list entries are unusable (empty list: all fine)."""
    problems = []
    for entry in allow or ():
        if not isinstance(entry, str) or not entry.strip() or any(c.isspace() for c in entry):
            problems.append(f"{entry!r} is not a host name, address or CIDR network")
            continue
        if "/" in entry or ":" in entry or entry.replace(".", "").isdigit():
            try:
                ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                problems.append(f"{entry!r} is not a valid address or CIDR network")
    return problems


def forbidden_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` is not a public destination, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden_reason(address.ipv4_mapped)
    for attribute, reason in (("is_loopback", "loopback"), ("is_link_local", "link-local"),
                              ("is_multicast", "multicast"), ("is_unspecified", "unspecified"),
                              ("is_reserved", "reserved"), ("is_private", "private")):
        if getattr(address, attribute):
            return reason
    if not address.is_global:
        return "not public"
    return None


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURL(f"the host {host!r} does not resolve ({exc})") from None
    addresses = []
    for info in infos:
        address = info[4][0].split("%", 1)[0]  # drop an IPv6 zone id
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"the host {host!r} does not resolve")
    return addresses


def check_url(url: str, allow=None, *, resolve: bool = True) -> Target:
    """The checked target of ``url``; raises ``UnsafeURL`` saying why it is refused.

    ``allow``: the admin's allow-list (host names, addresses, CIDR networks) whose
    addresses pass even when they are private or loopback. Every address the host
    resolves to must pass, so a name with one public and one private record is refused.
    """
    if not isinstance(url, str) or not url:
        raise UnsafeURL("a URL is required")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURL("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"not a valid URL ({exc})") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("credentials in the URL are not allowed; use the secret setting")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURL("the URL has no host")
    port = port or DEFAULT_PORTS[scheme]
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    hosts, networks = _networks(allow)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is None and not resolve:
        return Target(scheme, host, port, path, host)
    addresses = [str(literal)] if literal is not None else _resolve(host, port)
    for text in addresses:
        address = ipaddress.ip_address(text)
        reason = forbidden_reason(address)
        if reason is None or host.lower() in hosts or any(
                address in network for network in networks):
            continue
        shown = host if literal is not None else f"{host} ({text})"
        raise UnsafeURL(f"{shown} is a {reason} address; an admin must allow-list it")
    return Target(scheme, host, port, path, addresses[0])


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self):
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout,
                         context=ssl.create_default_context())
        self._address = target.address

    def connect(self):
        sock = socket.create_connection((self._address, self.port), self.timeout)
        # The certificate is checked against the host name, not the address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def post(url: str, body: bytes, headers: dict[str, str], *, allow=None,
         timeout: float = 10.0) -> Response:
    """POST ``body`` to ``url`` after ``check_url`` (at this instant), connecting to
    the address that was checked. Redirects are not followed (a 3xx is returned)."""
    target = check_url(url, allow)
    factory = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = factory(target, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        reply = connection.getresponse()
        return Response(reply.status, reply.read(MAX_RESPONSE_BYTES))
    finally:
        connection.close()


def deliver(url: str, body: bytes, headers: dict[str, str], *, allow=None,
            timeout: float = 10.0) -> Response:
    """``post`` for a notifier backend's ``send``: a refused URL is a
    ``PermanentFailure`` (never retried); a network error or a non-2xx reply raises
    ``RuntimeError`` (retried with back-off)."""
    from servicedesk.notify.service import PermanentFailure

    try:
        reply = post(url, body, headers, allow=allow, timeout=timeout)
    except UnsafeURL as exc:
        raise PermanentFailure(f"refused to deliver: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= reply.status < 300:
        raise RuntimeError(f"HTTP {reply.status}: {reply.body[:200]!r}")
    return reply


def queue_outbound(*, backend: str, event: str, url: str, body: str, dedupe_key: str,
                   ticket_id: int | None = None, headers: dict | None = None):
    """ADD an outbox row that POSTs ``body`` to ``url`` through notifier ``backend``
    (no commit; None if a row with ``dedupe_key`` exists already). The row is delivered,
    retried with back-off and administered like any notification; ``event`` is its
    subject, the URL its address."""
    from sqlalchemy import select

    from servicedesk.extensions import db
    from servicedesk.notify.models import Notification
    from servicedesk.types import utcnow

    with db.session.no_autoflush:
        if any(isinstance(obj, Notification) and obj.dedupe_key == dedupe_key
               for obj in db.session.new) or db.session.scalar(
                select(Notification.id).where(Notification.dedupe_key == dedupe_key)):
            return None
    now = utcnow()
    row = Notification(
        dedupe_key=dedupe_key[:255], event=event[:64], backend=backend, ticket_id=ticket_id,
        recipient_id=None, address=url, subject=event, body_text=body, body_html=None,
        headers=dict(headers or {}), status="pending", attempts=0, next_attempt_at=now,
        created_at=now)
    db.session.add(row)
    return row
