"""Talking to the directory (ldap3): connections with failover and TLS, paged searches
whose every page's result code is checked, and the helpers filters and DNs need.

Why each rule here exists (all seen against a real slapd, see docs/operations.md):

- an unpaged search over more entries than the server's size limit returns the first
  1,000 and ``sizeLimitExceeded`` *without raising*, and a page larger than the server
  allows returns nothing (``adminLimitExceeded``): a sync that trusted either would
  deactivate almost everyone. So every search is paged, the paging control is critical
  (a server that cannot page refuses instead of answering partly), and any result other
  than ``success`` raises :class:`DirectoryError`;
- ldap3's ``Tls()`` validates nothing by default: certificates are validated against
  the configured CA file (or the system's CAs) unless an admin switched it off, which
  is logged on every connection;
- ``auto_escape`` does not escape ``*``: every value put into a filter goes through
  :func:`escape`;
- a simple bind with a DN and an empty password is an "unauthenticated bind" that
  servers answer with success: :func:`bind_as` refuses empty passwords itself.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import ldap3
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

log = logging.getLogger(__name__)

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
# Active Directory advertises this in the root DSE's supportedCapabilities.
AD_CAPABILITY_OID = "1.2.840.113556.1.4.800"
# AD's LDAP_MATCHING_RULE_IN_CHAIN: transitive group membership in one search.
IN_CHAIN_RULE = "1.2.840.113556.1.4.1941"
INVALID_CREDENTIALS = 49
MAX_PAGES = 100_000  # a runaway cookie loop ends here (100 million entries at most)


class DirectoryError(Exception):
    """The directory could not be reached, refused us, or answered incompletely."""

    def __init__(self, message: str, result: str | None = None):
        super().__init__(message)
        self.message = message
        self.result = result


@dataclass
class Settings:
    """What a connection needs, taken from the configuration (or a draft of it)."""

    server_uris: list[str]
    security: str = "starttls"
    ca_file: str = ""
    tls_verify: bool = True
    timeout_seconds: int = 10
    bind_dn: str = ""
    bind_password: str = ""
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_config(cls, config) -> Settings:
        return cls(list(config.server_uris or []), config.security, config.ca_file or "",
                   bool(config.tls_verify), int(config.timeout_seconds or 10),
                   config.bind_dn or "", config.bind_password or "")


def escape(value: str) -> str:
    """A value safe inside a filter: ``*``, ``(``, ``)``, ``\\`` and NUL escaped."""
    return escape_filter_chars(value)


def escape_bytes(value: bytes) -> str:
    """A binary value (e.g. an objectGUID) as a filter value: every byte ``\\xx``."""
    return "".join(f"\\{b:02x}" for b in value)


def in_chain_filter(attribute: str, group_dn: str) -> str:
    """AD's transitive membership filter, e.g. ``(memberOf:1.2.840.113556.1.4.1941:=DN)``."""
    return f"({attribute}:{IN_CHAIN_RULE}:={escape(group_dn)})"


def normalize_dn(dn: str) -> str:
    """A DN in one canonical spelling: attribute types and values lower-cased, no spaces
    around separators, so ``CN=Ann, OU=X`` and ``cn=ann,ou=x`` compare equal."""
    dn = dn or ""
    if not any(c in dn for c in '\\+"#<>;'):
        # The common case, without escapes or multi-valued RDNs: a plain split is exact
        # (and many times faster than parsing; a sync normalises every DN it reads).
        parts = [rdn.partition("=") for rdn in dn.split(",")]
        if all(sep for _attr, sep, _value in parts):
            return ",".join(f"{attr.strip().lower()}={value.strip().lower()}"
                            for attr, _sep, value in parts)
    try:
        parts = parse_dn(dn or "", escape=False, strip=True)
    except (LDAPException, ValueError, TypeError):
        return (dn or "").strip().lower()
    rdns, current = [], []
    for attr, value, separator in parts:
        current.append(f"{attr.strip().lower()}={value.strip().lower()}")
        if separator != "+":
            rdns.append("+".join(sorted(current)))
            current = []
    if current:
        rdns.append("+".join(sorted(current)))
    return ",".join(rdns)


def dn_hash(dn: str) -> str:
    return hashlib.sha256(normalize_dn(dn).encode("utf-8")).hexdigest()


def valid_dn(dn: str) -> bool:
    try:
        return bool(parse_dn(dn, escape=False, strip=True))
    except (LDAPException, ValueError, TypeError, IndexError):
        return False


def valid_filter(text: str) -> bool:
    """Whether ``text`` is one well-formed, parenthesised LDAP filter."""
    from ldap3.operation.search import parse_filter

    text = (text or "").strip()
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    for i, char in enumerate(text):
        if char == "(" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif char == ")" and text[i - 1] != "\\":
            depth -= 1
            if depth == 0 and i != len(text) - 1:
                return False  # "(a=1)(b=2)": two filters, not one
        if depth < 0:
            return False
    try:
        parse_filter(text, None, auto_escape=False, auto_encode=True, validator=None,
                     check_names=False)
    except (LDAPException, ValueError, TypeError, IndexError, AttributeError):
        return False
    return depth == 0


def parse_uri(uri: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an ``ldap://`` / ``ldaps://`` URI; ValueError if not one."""
    parts = urlsplit((uri or "").strip())
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValueError(uri)
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(uri)
    port = parts.port or (636 if parts.scheme == "ldaps" else 389)
    return parts.scheme, parts.hostname, port


def tls_for(settings: Settings, host: str) -> ldap3.Tls | None:
    if settings.security == "plain":
        return None
    if not settings.tls_verify:
        log.warning("LDAP: certificate validation is switched off by an admin for %s; "
                    "the connection is encrypted but the server is not authenticated", host)
        return ldap3.Tls(validate=ssl.CERT_NONE)
    try:
        return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ca_file or None,
                         sni=host)
    except LDAPException as exc:
        raise DirectoryError(f"TLS set-up failed: {exc}") from None


def _connection(settings: Settings, uri: str, user: str | None,
                password: str | None) -> ldap3.Connection:
    scheme, host, port = parse_uri(uri)
    tls = tls_for(settings, host)
    server = ldap3.Server(host, port=port, use_ssl=scheme == "ldaps", tls=tls,
                          get_info=ldap3.NONE, connect_timeout=settings.timeout_seconds)
    receive = min(max(settings.timeout_seconds * 6, 30), 600)
    conn = ldap3.Connection(
        server, user=user or None, password=password or None,
        authentication=ldap3.SIMPLE if user else ldap3.ANONYMOUS,
        auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False, read_only=True,
        receive_timeout=receive, auto_referrals=False, return_empty_attributes=False,
        client_strategy=ldap3.SYNC,
    )
    conn.open()
    if settings.security == "starttls":
        conn.start_tls()
    return conn


def _describe(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    return text if len(text) < 300 else text[:300] + "…"


def connect(settings: Settings, user: str | None = None,
            password: str | None = None) -> tuple[ldap3.Connection, str]:
    """A bound connection to the first server of ``settings.server_uris`` that answers.

    Servers are tried in order (failover). Wrong credentials end the attempt at once:
    the next server would only say the same, and each try counts toward lockouts.
    """
    if settings.security == "plain":
        log.warning("LDAP: connecting without TLS (security=plain): passwords cross the "
                    "network in clear text")
    if user is None:
        user, password = settings.bind_dn, settings.bind_password
    failures = []
    for uri in settings.server_uris:
        conn = None
        try:
            conn = _connection(settings, uri, user, password)
            if not conn.bind():
                code = conn.result.get("result")
                reason = f"{conn.result.get('description')}: {conn.result.get('message') or ''}"
                conn.unbind()
                if code == INVALID_CREDENTIALS:
                    raise DirectoryError(f"{uri}: bind refused (invalidCredentials)",
                                         "invalidCredentials")
                failures.append(f"{uri}: bind failed ({reason.strip(': ')})")
                continue
            return conn, uri
        except DirectoryError:
            raise
        except (LDAPException, OSError, ssl.SSLError, ValueError) as exc:
            failures.append(f"{uri}: {_describe(exc)}")
            if conn is not None:
                try:
                    conn.unbind()
                except Exception:  # the socket may be half-open; nothing to do
                    pass
    raise DirectoryError("No directory server could be used: " + "; ".join(failures)
                         if failures else "No server URIs are configured.", "unreachable")


def bind_as(settings: Settings, dn: str, password: str) -> bool:
    """Whether ``password`` is the password of ``dn`` (a bind as that DN succeeds).

    Never with an empty password (an "unauthenticated bind" succeeds on most servers).
    Raises DirectoryError when no server could be asked.
    """
    if not dn or not password:
        return False
    try:
        conn, _uri = connect(settings, dn, password)
    except DirectoryError as exc:
        if exc.result == "invalidCredentials":
            return False
        raise
    ok = conn.bound and conn.result.get("result") == 0
    conn.unbind()
    return bool(ok)


class Directory:
    """A service-bound connection: ``with Directory(settings) as directory: ...``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.conn: ldap3.Connection | None = None
        self.server_uri = ""

    def __enter__(self) -> Directory:
        self.conn, self.server_uri = connect(self.settings)
        return self

    def __exit__(self, *exc) -> None:
        if self.conn is not None:
            try:
                self.conn.unbind()
            except Exception:  # closing a broken socket: nothing left to do
                pass
            self.conn = None

    def root_dse(self) -> dict[str, list[str]]:
        """The root DSE's attributes we use (vendor, capabilities, AD's highest USN)."""
        self.conn.search("", "(objectClass=*)", ldap3.BASE,
                         attributes=["objectClass", "namingContexts", "supportedCapabilities",
                                     "supportedControl", "vendorName", "vendorVersion",
                                     "highestCommittedUSN", "dnsHostName", "currentTime"])
        if self.conn.result.get("result") != 0 or not self.conn.response:
            return {}
        raw = self.conn.response[0].get("raw_attributes", {})
        return {key: [v.decode("utf-8", "replace") for v in values]
                for key, values in raw.items()}

    def exists(self, dn: str) -> bool:
        self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
        return self.conn.result.get("result") == 0 and bool(self.conn.response)

    def paged_search(self, base: str, search_filter: str, attributes: list[str],
                     page_size: int, scope=ldap3.SUBTREE,
                     deadline: float | None = None) -> Iterator[dict]:
        """Every entry matching, page by page; DirectoryError on any other result than
        success on any page (so a partial answer is never taken for the whole)."""
        cookie = None
        count = 0
        for _page in range(MAX_PAGES):
            if deadline is not None and time.monotonic() > deadline:
                raise DirectoryError(f"The search of {base} took too long; stopped after "
                                     f"{count} entries.", "timeLimitExceeded")
            try:
                self.conn.search(base, search_filter, scope, attributes=attributes,
                                 paged_size=page_size, paged_criticality=True,
                                 paged_cookie=cookie, size_limit=0)
            except LDAPException as exc:
                raise DirectoryError(f"The search of {base} failed after {count} entries: "
                                     f"{_describe(exc)}", "error") from None
            result = self.conn.result
            if result.get("result") != 0:
                description = result.get("description") or str(result.get("result"))
                message = (result.get("message") or "").strip()
                raise DirectoryError(
                    f"The search of {base} with {search_filter} ended with "
                    f"{description} after {count} entries"
                    + (f" ({message})" if message else "")
                    + "; nothing was trusted from it.", description)
            for item in self.conn.response or ():
                if item.get("type") == "searchResEntry":
                    count += 1
                    yield item
            control = (result.get("controls") or {}).get(PAGED_RESULTS_OID)
            cookie = control["value"]["cookie"] if control else None
            if not cookie:
                return
        raise DirectoryError(f"The search of {base} did not end after {MAX_PAGES} pages.",
                             "tooManyPages")


# --- reading values -------------------------------------------------------------------------


def first_text(raw: dict, attribute: str) -> str:
    """The first value of ``attribute`` as text ("" when absent); UnicodeDecodeError if
    it is not UTF-8."""
    if not attribute:
        return ""
    for key, values in raw.items():
        if key.lower() == attribute.lower() and values:
            return values[0].decode("utf-8").strip()
    return ""


def all_text(raw: dict, attribute: str) -> list[str]:
    for key, values in raw.items():
        if key.lower() == attribute.lower():
            return [v.decode("utf-8", "replace") for v in values]
    return []


def stable_id(raw: dict, attribute: str) -> str:
    """The directory's stable identifier of an entry as text: AD's 16-byte little-endian
    objectGUID as a UUID, OpenLDAP's entryUUID as it is (lower case). "" if missing."""
    for key, values in raw.items():
        if key.lower() == attribute.lower() and values:
            value = values[0]
            if attribute.lower() == "objectguid":
                if len(value) != 16:
                    return ""
                return str(uuid.UUID(bytes_le=bytes(value)))
            return value.decode("utf-8", "replace").strip().lower()
    return ""
