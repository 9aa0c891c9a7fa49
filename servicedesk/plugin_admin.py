"""Plugin administration: which plugins are enabled, their settings, install records.

State lives in the ``plugins`` table so every web process and worker agrees without a
restart (``servicedesk.plugins`` reads the disabled set once per context). A plugin
without a row is enabled with default settings: built-in and already installed plugins
keep working when first seen; only ``servicedesk plugins install`` records a new plugin,
disabled, with who installed it and when. The web never installs code.

Settings are validated by the plugin's own marshmallow schema (hook
``servicedesk_settings_schema``). Fields whose metadata holds ``{"secret": True}`` are
write-only: they are stored, handed to the plugin by ``plugin_settings``, and shown to
admins only as "set" / "not set".
"""

from __future__ import annotations

import copy
import getpass
import importlib
import importlib.metadata
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import gettext as _
from marshmallow import Schema, missing
from marshmallow import ValidationError as SchemaError
from sqlalchemy import JSON, Boolean, String, select
from sqlalchemy.orm import Mapped, mapped_column

from servicedesk.errors import Forbidden, NotFound, ServiceError, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.types import UTCDateTime, utcnow

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "servicedesk"
INSTALL_TIMEOUT_SECONDS = 600


class PluginState(db.Model):
    """An admin's decisions about one plugin (no row: enabled, default settings)."""

    __tablename__ = "plugins"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    package: Mapped[str | None] = mapped_column(String(300))
    installed_by: Mapped[str | None] = mapped_column(String(150))
    installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


@dataclass
class PluginInfo:
    name: str
    version: str | None
    hooks: list[str]
    enabled: bool
    loaded: bool
    failures: int
    last_error: str | None
    settings: dict
    settings_fields: list[dict] = field(default_factory=list)
    package: str | None = None
    installed_by: str | None = None
    installed_at: datetime | None = None

    @property
    def healthy(self) -> bool:
        return self.failures == 0


# --- reading (used on the hook path: cheap) ---------------------------------------------


# Loaded settings by (plugin, saved values): plugins read theirs on every hook call,
# and loading through the schema (defaults, validation, a webhook's URL checks) cost
# more than the rest of a ticket creation (bench/api_load.py). Keyed by the saved
# values, so an edit is a new key: nothing to invalidate.
_LOADED: dict[tuple[str, str], dict] = {}
_LOADED_MAX = 256


def load_settings(name: str, stored: dict | None = None) -> dict:
    """The saved settings of plugin ``name`` through its schema (a copy of its own for
    the caller); ``stored``: the saved values already read (``servicedesk.plugins``
    hands plugin threads a snapshot)."""
    if stored is None:
        state = db.session.get(PluginState, name)
        stored = dict(state.settings or {}) if state is not None else {}
    key = (name, json.dumps(stored, sort_keys=True, default=str))
    loaded = _LOADED.get(key)
    if loaded is None:
        loaded = _load_settings(name, stored)
        if len(_LOADED) >= _LOADED_MAX:
            _LOADED.clear()
        _LOADED[key] = loaded
    return copy.deepcopy(loaded)


def _load_settings(name: str, stored: dict) -> dict:
    schema = settings_schema(name)
    if schema is None:
        return stored
    try:
        return schema.load(stored, partial=False)
    except SchemaError as exc:
        # Saved under an older schema; give the plugin what still validates.
        log.error("stored settings of plugin %r no longer validate: %s", name, exc.messages)
        return {key: value for key, value in stored.items() if key not in exc.messages}


# --- the plugin manager's view ------------------------------------------------------------


def _pm():
    from servicedesk.plugins import plugin_manager

    return plugin_manager()


def _loaded() -> dict[str, object]:
    return {name: plugin for name, plugin in _pm().list_name_plugin()
            if plugin is not None and not name.startswith("_")}


def _versions() -> dict[int, str]:
    return {id(plugin): dist.version for plugin, dist in _pm().list_plugin_distinfo()}


def settings_schema(name: str) -> Schema | None:
    """The plugin's settings schema (an instance), or None when it declares none."""
    impls = [impl for impl in _pm().hook.servicedesk_settings_schema.get_hookimpls()
             if impl.plugin_name == name]
    if not impls:
        return None
    try:
        schema = impls[0].function()
    except Exception:
        log.exception("plugin %r failed in servicedesk_settings_schema", name)
        return None
    if isinstance(schema, type) and issubclass(schema, Schema):
        schema = schema()
    return schema if isinstance(schema, Schema) else None


def _is_secret(schema_field) -> bool:
    return bool((schema_field.metadata or {}).get("secret"))


def _shown_settings(schema: Schema | None, stored: dict) -> tuple[dict, list[dict]]:
    """Settings as admins see them: secrets reduced to "set" / "not set"."""
    if schema is None:
        return {}, []
    shown, fields = {}, []
    for key, schema_field in schema.fields.items():
        name = schema_field.data_key or key
        secret = _is_secret(schema_field)
        if secret:
            shown[name] = "set" if stored.get(name) not in (None, "") else "not set"
        else:
            value = stored.get(name)
            default = schema_field.load_default
            if value is None and default is not missing and not callable(default):
                value = default
            shown[name] = value
        fields.append({"name": name, "type": type(schema_field).__name__.lower(),
                       "required": schema_field.required, "secret": secret,
                       "description": (schema_field.metadata or {}).get("description", "")})
    return shown, fields


def _info(name: str, plugin, state: PluginState | None, versions: dict[int, str]) -> PluginInfo:
    from servicedesk.plugins import plugin_health

    pm = _pm()
    hooks = sorted(caller.name for caller in (pm.get_hookcallers(plugin) or [])) \
        if plugin is not None else []
    stored = dict(state.settings or {}) if state is not None else {}
    settings, fields = _shown_settings(settings_schema(name), stored)
    failures, last_error = plugin_health(name)
    return PluginInfo(
        name=name, version=versions.get(id(plugin)) if plugin is not None else None,
        hooks=hooks, enabled=state.enabled if state is not None else True,
        loaded=plugin is not None, failures=failures, last_error=last_error,
        settings=settings, settings_fields=fields,
        package=state.package if state else None,
        installed_by=state.installed_by if state else None,
        installed_at=state.installed_at if state else None)


def _require_admin(actor: User | None) -> None:
    # ``None`` is the operator at the CLI.
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins may manage plugins."))


# --- services -----------------------------------------------------------------------------


def list_plugins(actor: User | None) -> list[PluginInfo]:
    _require_admin(actor)
    loaded = _loaded()
    states = {s.name: s for s in db.session.scalars(select(PluginState))}
    versions = _versions()
    names = sorted(set(loaded) | set(states))
    return [_info(name, loaded.get(name), states.get(name), versions) for name in names]


def get_plugin(actor: User | None, name: str) -> PluginInfo:
    _require_admin(actor)
    loaded = _loaded()
    state = db.session.get(PluginState, name)
    if name not in loaded and state is None:
        raise NotFound(_("No plugin named %(name)s.", name=name))
    return _info(name, loaded.get(name), state, _versions())


def _state_for(name: str) -> PluginState:
    state = db.session.get(PluginState, name)
    if state is None:
        if name not in _loaded():
            raise NotFound(_("No plugin named %(name)s.", name=name))
        state = PluginState(name=name, enabled=True, settings={})
        db.session.add(state)
    return state


def set_enabled(actor: User | None, name: str, enabled: bool) -> PluginInfo:
    from servicedesk.plugins import forget_enabled_state

    _require_admin(actor)
    state = _state_for(name)
    state.enabled = enabled
    state.updated_at = utcnow()
    db.session.commit()
    forget_enabled_state()
    log.info("plugin %r %s by %s", name, "enabled" if enabled else "disabled",
             actor.username if actor else "the CLI")
    return get_plugin(actor, name)


def update_settings(actor: User | None, name: str, values) -> PluginInfo:
    """Validate ``values`` (merged over the stored settings) with the plugin's schema.

    A secret left out, or sent empty, keeps its stored value: admins never see it, so
    they cannot send it back.
    """
    _require_admin(actor)
    if not isinstance(values, dict):
        raise ValidationError(_("Settings must be an object."),
                              fields={"settings": [_("Must be an object.")]})
    for key, value in values.items():
        try:
            json.dumps(value, allow_nan=False)
        except (ValueError, TypeError):
            raise ValidationError(_("The settings of plugin %(name)s are invalid.", name=name),
                                  fields={str(key): [_("Must be plain JSON (no NaN or "
                                                       "Infinity).")]}) from None
    state = _state_for(name)
    schema = settings_schema(name)
    if schema is None:
        raise ValidationError(_("Plugin %(name)s has no settings.", name=name),
                              fields={"settings": [_("This plugin has no settings.")]})
    secrets = {(f.data_key or k) for k, f in schema.fields.items() if _is_secret(f)}
    stored = dict(state.settings or {})
    merged = dict(stored)
    for key, value in values.items():
        if key in secrets and value in (None, ""):
            continue
        merged[key] = value
    try:
        schema.load(merged)
    except SchemaError as exc:
        db.session.rollback()
        messages = exc.messages if isinstance(exc.messages, dict) else {"settings": exc.messages}
        raise ValidationError(
            _("The settings of plugin %(name)s are invalid.", name=name),
            fields={str(k): [str(m) for m in (v if isinstance(v, list) else [v])]
                    for k, v in messages.items()}) from None
    state.settings = merged
    state.updated_at = utcnow()
    db.session.commit()
    from servicedesk.plugins import forget_enabled_state

    forget_enabled_state()  # this context's next hook call reads the new settings
    return get_plugin(actor, name)


# --- installing (CLI only) ----------------------------------------------------------------


def _entry_point_names() -> set[str]:
    importlib.invalidate_caches()
    return {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def install(package: str, by: str | None = None) -> list[str]:
    """``pip install PACKAGE`` into this environment and record the plugins it added,
    disabled, with who and when. Returns their names. Never called from the web."""
    if not package or package.startswith("-"):
        raise ValidationError(_("Name a package to install."),
                              fields={"package": [_("Must be a package name, path or URL.")]})
    by = by or getpass.getuser()
    before = _entry_point_names()
    try:
        done = subprocess.run([sys.executable, "-m", "pip", "install", package],
                              capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise ServiceError(_("pip did not finish in time."),
                           fields={"package": [_("Installation timed out.")]}) from None
    if done.returncode != 0:
        raise ServiceError(_("pip could not install %(package)s.", package=package),
                           fields={"package": [(done.stderr or done.stdout).strip()[-500:]]})
    added = sorted(_entry_point_names() - before)
    for name in added:
        state = db.session.get(PluginState, name)
        if state is None:
            state = PluginState(name=name, settings={})
            db.session.add(state)
        state.enabled = False
        state.package = package
        state.installed_by = by
        state.installed_at = utcnow()
        state.updated_at = utcnow()
    db.session.commit()
    log.info("installed %r for plugins %s by %s", package, added, by)
    current_app.logger.info("restart web processes and workers to load %s", added)
    return added
