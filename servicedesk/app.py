"""``create_app(config)``: the only place that wires servicedesk together."""

from __future__ import annotations

import importlib
import logging
import os

from flask import Flask, g, has_request_context, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from servicedesk.config import load_config
from servicedesk.errors import NotFound, ServiceError, ValidationError
from servicedesk.extensions import babel, csrf, db, login_manager, migrate

log = logging.getLogger(__name__)

RTL_LOCALES = frozenset({"fa", "he", "ar", "ur"})


def create_app(config: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder="web/templates",
        static_folder="web/static",
    )
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.update(load_config(app.instance_path))
    if config:
        app.config.update(config)

    db.init_app(app)
    migrate.init_app(app, db, directory=app.config["SERVICEDESK_MIGRATIONS_DIR"],
                     render_as_batch=True, compare_type=True)
    _init_identity(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale, timezone_selector=_select_timezone)
    _init_plugins(app)
    _init_cmdb(app)
    _register_api(app)
    _register_web(app)
    _register_plugin_extensions(app)
    _register_errors(app)
    app.before_request(_refuse_nul_characters)
    app.after_request(_security_headers)
    app.jinja_env.globals["text_direction"] = text_direction
    app.jinja_env.globals["get_locale"] = get_locale
    return app


def _import_models():
    # Every table must be known to the metadata (Alembic, relationships by name).
    from servicedesk.identity import models as _identity  # noqa: F401
    from servicedesk.incidents import models as _incidents  # noqa: F401
    from servicedesk.ldap import models as _ldap  # noqa: F401
    from servicedesk.notify import models as _notify  # noqa: F401
    # The outbox's session listeners (hand new rows to a worker after commit).
    from servicedesk.notify import service as _notify_service  # noqa: F401
    # Notification rules, preferences, watchers (and the audit collector of notify_hooks).
    from servicedesk.notify import preferences as _notify_preferences  # noqa: F401
    from servicedesk.sla import models as _sla  # noqa: F401
    from servicedesk.tickets import models as _tickets  # noqa: F401
    # CMDB tables, and the tickets' link to them (ticket_cis).
    from cmdb import models as _cmdb  # noqa: F401
    from servicedesk import cmdb_links as _cmdb_links  # noqa: F401
    from servicedesk.kb import models as _kb  # noqa: F401
    from servicedesk.csat import models as _csat  # noqa: F401
    from servicedesk.changes import models as _changes  # noqa: F401
    from servicedesk.approvals import models as _approvals  # noqa: F401
    from servicedesk.reports import models as _reports  # noqa: F401  (report indexes)
    from servicedesk import plugin_admin as _plugin_admin  # noqa: F401
    from servicedesk.problems import models as _problems  # noqa: F401
    from servicedesk.attachments import models as _attachments  # noqa: F401
    from servicedesk.catalogue import models as _catalogue  # noqa: F401
    from servicedesk.requests import models as _requests  # noqa: F401


def _init_identity(app: Flask) -> None:
    from servicedesk.identity.service import load_session_user

    _import_models()
    login_manager.init_app(app)
    login_manager.login_view = "web.login"
    login_manager.login_message = None
    login_manager.session_protection = "basic"
    login_manager.user_loader(load_session_user)


def _init_plugins(app: Flask) -> None:
    from servicedesk.plugins import create_plugin_manager

    pm = create_plugin_manager(app.config.get("SERVICEDESK_LOAD_PLUGINS", True))
    app.extensions["servicedesk"] = {"plugins": pm, "failures": {}}


def _init_cmdb(app: Flask) -> None:
    # The CMDB knows nothing of tickets; the core tells it which are open on its CIs.
    from servicedesk.cmdb_links import open_tickets_for

    app.extensions["cmdb"] = {"open_tickets": open_tickets_for}


# Every API blueprint, as "module:attribute". Bearer tokens only (no ambient
# credentials to forge), so none needs CSRF; csat's public one is keyed by its signed link.
API_BLUEPRINTS = (
    "servicedesk.incidents.api:blp",
    "servicedesk.identity.api:blp",
    "servicedesk.tickets.api:blp",
    "servicedesk.sla.api:blp",
    "servicedesk.notify.api:blp",
    "cmdb.api:blp",
    "servicedesk.ldap.api:blp",
    "servicedesk.kb.api:blp",
    "servicedesk.csat.api:blp",
    "servicedesk.csat.api:public_blp",
    "servicedesk.plugin_admin_views:blp",  # plugin administration
    "servicedesk.changes.api:blp",  # change management (CHG)
    "servicedesk.problems.api:blp",  # problems, known errors
    "servicedesk.catalogue.api:blp",  # the service catalogue
    "servicedesk.requests.api:blp",  # service requests (REQ)
    "servicedesk.reports.api:blp",  # KPIs and the category report
    "servicedesk.approvals.api:blp",  # approvals on any ticket
    "servicedesk.notify.views:blp",  # notification rules, preferences, watchers
    "servicedesk.attachments.api:blp",  # files, the inbound mail log
)
# Every page blueprint (forms carry CSRF tokens).
WEB_BLUEPRINTS = (
    "servicedesk.web.views:bp",
    "cmdb.views:bp",
    "servicedesk.incidents.views:bp",
    "servicedesk.kb.views:bp",
    "servicedesk.sla.views:bp",
    "servicedesk.ldap.views:bp",
    "servicedesk.csat.views:bp",
    "servicedesk.plugin_admin_views:bp",
    "servicedesk.problems.views:bp",
    "servicedesk.attachments.views:bp",  # downloads
    "servicedesk.reports.views:bp",
    "servicedesk.approvals.views:bp",  # the approvals inbox
    "servicedesk.notify.views:bp",  # rules, my notifications, failed deliveries
    "servicedesk.catalogue.views:bp",
    "servicedesk.requests.views:bp",
    "servicedesk.changes.views:bp",
)


def _blueprint(path: str):
    module, _sep, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _register_api(app: Flask) -> None:
    from servicedesk.api import Api

    api = Api(app)
    for path in API_BLUEPRINTS:
        blp = _blueprint(path)
        api.register_blueprint(blp)
        csrf.exempt(blp)


def _register_plugin_extensions(app: Flask) -> None:
    # Plugins' blueprints and CLI commands (hooks servicedesk_blueprints /
    # servicedesk_cli_commands); a disabled plugin's routes answer 404.
    from servicedesk.plugins import register_plugin_extensions

    register_plugin_extensions(app)


def _register_web(app: Flask) -> None:
    for path in WEB_BLUEPRINTS:
        app.register_blueprint(_blueprint(path))


def _register_errors(app: Flask) -> None:
    from servicedesk.api import api_http_error, api_service_error, error_body, is_api_request

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        if is_api_request():
            return api_service_error(exc)
        return render_template("error.html", status=exc.status, message=exc.message), exc.status

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if is_api_request():
            return api_http_error(exc)
        return render_template("error.html", status=exc.code,
                               message=exc.description), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        if is_api_request():
            return error_body(500, "internal_error", "Something went wrong on our side.")
        return render_template("error.html", status=500,
                               message=_("Something went wrong on our side.")), 500


def _select_locale():
    from flask_login import current_user

    if not has_request_context():  # CLI, jobs, tests: the default locale (en)
        return None
    supported = [str(locale) for locale in babel.list_translations()] or ["en"]
    available = set(supported) | set(_config_locales())
    if current_user and current_user.is_authenticated and current_user.locale in available:
        return current_user.locale
    return request.accept_languages.best_match(_config_locales()) or "en"


def _config_locales():
    from flask import current_app

    return current_app.config["SERVICEDESK_LOCALES"]


def _select_timezone():
    from flask_login import current_user

    if current_user and current_user.is_authenticated:
        return current_user.timezone
    return None


def text_direction() -> str:
    locale = get_locale()
    return "rtl" if locale is not None and locale.language in RTL_LOCALES else "ltr"


def _holds(value, bad) -> bool:
    """Whether any string in ``value`` (a str, or JSON lists and objects, keys included)
    is ``bad``."""
    if isinstance(value, str):
        return bad(value)
    if isinstance(value, dict):
        return any(_holds(k, bad) or _holds(v, bad) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds(v, bad) for v in value)
    return False


def _nul(text: str) -> bool:
    return "\x00" in text


def _lone_surrogate(text: str) -> bool:
    """JSON escapes such as ``"\\ud800"`` decode to unpaired surrogates: not Unicode text,
    so no database (nor UTF-8) can store them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _refuse_nul_characters():
    """Refuse input no database can store, naming the field, before anything reads it.

    PostgreSQL text cannot store NUL, so such input would otherwise fail deep inside a
    query (a 500) on PostgreSQL while SQLite accepts it; no legitimate text holds one.
    Unpaired surrogates (only JSON can carry them) fail on both back ends, and a JSON
    body nested deeper than Python's recursion limit cannot even be parsed.
    """
    if "\x00" in request.path:
        raise NotFound(_("No such page."))
    bad = {key for key, value in request.args.items(multi=True) if _holds(key + value, _nul)}
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        bad |= {key for key, value in request.form.items(multi=True)
                if _holds(key + value, _nul)}
    unpaired = set()
    if request.is_json:
        try:
            body = request.get_json(silent=True)
        except RecursionError:  # not a ValueError, so ``silent`` does not cover it
            raise ServiceError(_("The JSON body is nested too deeply."),
                               fields={"json": [_("Nested too deeply.")]},
                               code="bad_json") from None
        items = body.items() if isinstance(body, dict) else [("_body", body)]
        for key, value in items:
            if _holds(key, _nul) or _holds(value, _nul):
                bad.add(str(key))
            if _holds(key, _lone_surrogate) or _holds(value, _lone_surrogate):
                unpaired.add(str(key).encode("utf-8", "backslashreplace").decode())
    if bad:
        raise ValidationError(
            _("Text may not contain NUL characters."),
            fields={key.replace("\x00", "\\x00"): [_("Contains a NUL character.")]
                    for key in sorted(bad)},
            code="nul_character",
        )
    if unpaired:
        raise ValidationError(
            _("Text must be valid Unicode."),
            fields={key: [_("Contains an unpaired surrogate (\\ud800-\\udfff).")]
                    for key in sorted(unpaired)},
            code="invalid_text",
        )


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/") or getattr(g, "no_store", False):
        response.headers.setdefault("Cache-Control", "no-store")
    return response
