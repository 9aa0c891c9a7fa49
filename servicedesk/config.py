"""Settings, read from ``SERVICEDESK_*`` environment variables.

The embedded default is a SQLite file in the instance folder and in-process jobs, so
one command starts a working desk. Production sets a PostgreSQL URL and a Redis URL.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in _TRUE


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _instance_secret(instance_path: str) -> str:
    """A secret key kept in the instance folder (mode 0600), made on first use.

    So the embedded default needs no set-up, yet sessions survive restarts and every
    process on this machine signs with the same key.
    """
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        tmp = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: the first process to get here wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def load_config(instance_path: str) -> dict:
    """Build the Flask config mapping from the environment."""
    database_url = os.environ.get("SERVICEDESK_DATABASE_URL") or (
        "sqlite:///" + str(Path(instance_path) / "servicedesk.sqlite")
    )
    if database_url.startswith("postgresql://"):
        # psycopg 3 is our PostgreSQL driver; accept the plain scheme people paste.
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://"):]
    secret_key = os.environ.get("SERVICEDESK_SECRET_KEY")
    return {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SERVICEDESK_REDIS_URL": os.environ.get("SERVICEDESK_REDIS_URL") or None,
        "SECRET_KEY": secret_key or _instance_secret(instance_path),
        # Bodies beyond this are refused (413) before anything reads them into memory.
        "MAX_CONTENT_LENGTH": _int("SERVICEDESK_MAX_REQUEST_BYTES", 10 * 1024 * 1024),
        "SESSION_COOKIE_SECURE": _flag("SERVICEDESK_COOKIE_SECURE", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_NAME": "servicedesk_session",
        "REMEMBER_COOKIE_SECURE": _flag("SERVICEDESK_COOKIE_SECURE", True),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "WTF_CSRF_TIME_LIMIT": None,  # the token is bound to the session instead
        "BABEL_DEFAULT_LOCALE": "en",
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "SERVICEDESK_LOCALES": ["en", "fa", "ru", "he"],
        # Incident policy.
        "SERVICEDESK_REOPEN_WINDOW_DAYS": _int("SERVICEDESK_REOPEN_WINDOW_DAYS", 7),
        "SERVICEDESK_AUTOCLOSE_DAYS": _int("SERVICEDESK_AUTOCLOSE_DAYS", 5),
        "SERVICEDESK_DEFAULT_GROUP": os.environ.get("SERVICEDESK_DEFAULT_GROUP") or None,
        # Members of this group get halved SLA targets (built-in plugin vip_sla).
        "SERVICEDESK_VIP_GROUP": os.environ.get("SERVICEDESK_VIP_GROUP", "VIP"),
        # Login throttling: failures per username and per client address in a window.
        "SERVICEDESK_LOGIN_WINDOW_SECONDS": _int("SERVICEDESK_LOGIN_WINDOW_SECONDS", 900),
        "SERVICEDESK_LOGIN_MAX_PER_USER": _int("SERVICEDESK_LOGIN_MAX_PER_USER", 5),
        "SERVICEDESK_LOGIN_MAX_PER_ADDRESS": _int("SERVICEDESK_LOGIN_MAX_PER_ADDRESS", 30),
        # --- notifications (servicedesk/notify) and the e-mail plugin's SMTP -----------
        # Defaults: a mail server on this machine (port 25, no TLS, no auth): the usual
        # local relay. For a remote relay set HOST, SECURITY=starttls (port 587) or ssl
        # (465) and USERNAME/PASSWORD; credentials are never sent unencrypted to a
        # host that is not loopback. PORT 0 means the security mode's standard port.
        "SERVICEDESK_SMTP_HOST": os.environ.get("SERVICEDESK_SMTP_HOST") or "127.0.0.1",
        "SERVICEDESK_SMTP_PORT": _int("SERVICEDESK_SMTP_PORT", 0),
        "SERVICEDESK_SMTP_USERNAME": os.environ.get("SERVICEDESK_SMTP_USERNAME") or "",
        "SERVICEDESK_SMTP_PASSWORD": os.environ.get("SERVICEDESK_SMTP_PASSWORD") or "",
        "SERVICEDESK_SMTP_SECURITY": (os.environ.get("SERVICEDESK_SMTP_SECURITY")
                                      or "none").strip().lower(),
        "SERVICEDESK_SMTP_FROM": os.environ.get("SERVICEDESK_SMTP_FROM")
        or "servicedesk@localhost",
        "SERVICEDESK_SMTP_TIMEOUT": _int("SERVICEDESK_SMTP_TIMEOUT", 30),
        # A CA bundle to verify the server's certificate with (an internal CA); the
        # system's trust store when unset. Certificates are always verified.
        "SERVICEDESK_SMTP_CA_FILE": os.environ.get("SERVICEDESK_SMTP_CA_FILE") or None,
        # Right-hand side of our Message-IDs (default: the From address's domain).
        "SERVICEDESK_MAIL_DOMAIN": os.environ.get("SERVICEDESK_MAIL_DOMAIN") or None,
        # The public address of the web UI, for links in e-mail (survey links, ...) that
        # background jobs write without a request to take the host from.
        "SERVICEDESK_BASE_URL": os.environ.get("SERVICEDESK_BASE_URL") or None,
        # Delivery: attempts before a notification is "failed", back-off cap (minutes),
        # how long a worker's claim on a row lasts (seconds), rows per deliver_due run.
        "SERVICEDESK_NOTIFY_MAX_ATTEMPTS": _int("SERVICEDESK_NOTIFY_MAX_ATTEMPTS", 10),
        "SERVICEDESK_NOTIFY_MAX_BACKOFF_MINUTES": _int(
            "SERVICEDESK_NOTIFY_MAX_BACKOFF_MINUTES", 60),
        "SERVICEDESK_NOTIFY_LEASE_SECONDS": _int("SERVICEDESK_NOTIFY_LEASE_SECONDS", 300),
        "SERVICEDESK_NOTIFY_BATCH": _int("SERVICEDESK_NOTIFY_BATCH", 200),
        # In-process periodic jobs (embedded default only), in seconds.
        "SERVICEDESK_JOB_INTERVAL": _int("SERVICEDESK_JOB_INTERVAL", 60),
        "SERVICEDESK_MIGRATIONS_DIR": os.environ.get("SERVICEDESK_MIGRATIONS_DIR")
        or str(Path(__file__).resolve().parent.parent / "migrations"),
        # flask-smorest / OpenAPI.
        "API_TITLE": "servicedesk",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer"},
                }
            },
            "security": [{"bearer": []}],
        },
        "JSON_SORT_KEYS": False,
    }
