"""Rendering notifications: per-event Jinja templates in the recipient's language.

Templates live in ``notify/templates/<locale>/``: ``<event>.subject.txt``,
``<event>.txt`` (plain text) and ``<event>.html`` (optional). A locale without its own
file for an event falls back to ``en/``, so a new event needs only English to work
(a plugin's, say); servicedesk's own events ship in every language of
``SERVICEDESK_LOCALES`` (tests/test_notify_locales.py checks fa, ru and he).
Rendering happens under ``flask_babel.force_locale``, so any ``_()`` in a template and
the dates we format come out in the recipient's language too. HTML templates are
autoescaped (ticket titles are user data); plain-text ones are not (nothing
interprets them).
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from flask import current_app
from flask_babel import force_locale
from jinja2 import FileSystemLoader, TemplateNotFound, select_autoescape

TEMPLATES = Path(__file__).resolve().parent / "templates"
FALLBACK_LOCALE = "en"
_UNSAFE_HEADER_CHARS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
MAX_SUBJECT = 250


def header_safe(value: object, limit: int = MAX_SUBJECT) -> str:
    """``value`` made safe for a mail header: no CR, LF or other control characters.

    A header line ends at CR/LF, so user data (a ticket title) containing
    ``"\\r\\nBcc: x"`` would otherwise add a header of the attacker's choosing
    (Request Tracker CVE-2012-4730). Control runs become one space; whitespace is
    collapsed; the result is cut at ``limit`` characters.
    """
    text = _UNSAFE_HEADER_CHARS.sub(" ", str(value))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _environment():
    """One Jinja environment per app, sharing the app's filters and Babel's gettext."""
    env = current_app.extensions["servicedesk"].get("notify_jinja")
    if env is None:
        env = current_app.jinja_env.overlay(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(enabled_extensions=("html",),
                                         default_for_string=False, default=False),
        )
        current_app.extensions["servicedesk"]["notify_jinja"] = env
    return env


def _locale_of(user) -> str:
    locale = (getattr(user, "locale", None) or FALLBACK_LOCALE).replace("-", "_")
    supported = current_app.config.get("SERVICEDESK_LOCALES") or [FALLBACK_LOCALE]
    if locale in supported:
        return locale
    language = locale.split("_")[0]
    return language if language in supported else FALLBACK_LOCALE


def _timezone_of(user) -> ZoneInfo:
    try:
        return ZoneInfo(getattr(user, "timezone", None) or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _template(env, locale: str, name: str, required: bool = True):
    candidates = [f"{locale}/{name}"] if locale != FALLBACK_LOCALE else []
    candidates.append(f"{FALLBACK_LOCALE}/{name}")
    try:
        return env.select_template(candidates)
    except TemplateNotFound:
        if required:
            raise
        return None


def has_templates(event: str) -> bool:
    return (TEMPLATES / FALLBACK_LOCALE / f"{event}.txt").is_file()


def render(event: str, recipient, context: dict) -> tuple[str, str, str | None]:
    """(subject, text, html) of ``event`` for ``recipient``, in their language."""
    env = _environment()
    locale = _locale_of(recipient)
    zone = _timezone_of(recipient)

    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        return format_datetime(value.astimezone(zone), "medium", locale=locale) + f" ({zone.key})"

    values = {**context, "recipient": recipient, "locale": locale, "when": when,
              "direction": "rtl" if locale.split("_")[0] in {"fa", "he", "ar", "ur"}
              else "ltr"}
    with force_locale(locale):
        subject = _template(env, locale, f"{event}.subject.txt").render(values)
        text = _template(env, locale, f"{event}.txt").render(values)
        html_template = _template(env, locale, f"{event}.html", required=False)
        html = html_template.render(values) if html_template is not None else None
    return header_safe(subject), text.strip() + "\n", html
