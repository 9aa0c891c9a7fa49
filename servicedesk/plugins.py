"""The plugin manager: hook specs, entry-point discovery, isolated hook calls.

Plugins are found through the entry-point group ``servicedesk`` only, never by
scanning folders; servicedesk's built-in plugins in ``plugins/`` use the same route.

Which plugins are enabled lives in the database (``servicedesk.plugin_admin``), so every
web process and worker agrees without a restart. Reading it on every hook call would
add a query per call; it is read once per application context (one request, one job)
and kept for ``ENABLED_STATE_TTL`` seconds, so a long-lived context (a worker, a shell)
also notices a change within seconds. Hook calls run in-process: a plugin that hangs is
limited only by the RQ job timeout of the worker running it (or the web server's
request timeout); there are no threads to time-box it.
"""

from __future__ import annotations

import logging
import reprlib
import time

import pluggy
from flask import current_app, g

from servicedesk import hookspecs

PROJECT = "servicedesk"
hookimpl = pluggy.HookimplMarker(PROJECT)
log = logging.getLogger(__name__)

ENABLED_STATE_TTL = 5.0  # seconds a context trusts the disabled set it read


def create_plugin_manager(load_entry_points: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    if load_entry_points:
        pm.load_setuptools_entrypoints(PROJECT)
    # A misspelt hook implementation is an error at start-up, not silence.
    pm.check_pending()
    return pm


def plugin_manager() -> pluggy.PluginManager:
    return current_app.extensions[PROJECT]["plugins"]


def disabled_plugins() -> frozenset[str]:
    """Names of the plugins an admin disabled, read at most once per context and TTL."""
    cached = g.get("_sd_disabled_plugins")
    now = time.monotonic()
    if cached is not None and now - cached[0] < ENABLED_STATE_TTL:
        return cached[1]
    from servicedesk.plugin_admin import read_disabled

    disabled = read_disabled()
    g._sd_disabled_plugins = (now, disabled)
    return disabled


def forget_enabled_state() -> None:
    """Drop this context's cached disabled set (after an admin changed it)."""
    g.pop("_sd_disabled_plugins", None)


def _active_impls(caller) -> list:
    impls = list(reversed(caller.get_hookimpls()))
    if not impls:
        return impls
    disabled = disabled_plugins()
    return [impl for impl in impls if impl.plugin_name not in disabled]


def plugin_settings(name: str) -> dict:
    """The settings an admin saved for plugin ``name``, loaded through its schema
    (defaults filled in); ``{}`` when it has none."""
    from servicedesk.plugin_admin import load_settings

    return load_settings(name)


def call_hook(name: str, **kwargs) -> list:
    """Call every implementation of hook ``name``, each isolated from the others.

    pluggy stops at the first implementation that raises; a service desk must not:
    one broken plugin may neither break the request nor silence the other plugins.
    Implementations run in pluggy's order (last registered first).
    """
    pm = plugin_manager()
    caller = getattr(pm.hook, name)
    results = []
    for impl in _active_impls(caller):
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            log.exception("plugin %r failed in %s", impl.plugin_name, name)
            _count_failure(impl.plugin_name, f"{name}: {exc!r}")
            continue
        if result is not None:
            results.append(result)
    return results


def _count_failure(plugin_name: str, error: str) -> None:
    """Count a failure of this process (shown as the plugin's health) and keep the last."""
    state = current_app.extensions[PROJECT]
    failures = state["failures"]
    failures[plugin_name] = failures.get(plugin_name, 0) + 1
    state.setdefault("last_errors", {})[plugin_name] = error[:500]


def plugin_health(plugin_name: str) -> tuple[int, str | None]:
    """(failures counted in this process, the last error or None)."""
    state = current_app.extensions[PROJECT]
    failures = state["failures"].get(plugin_name, 0)
    return failures, state.get("last_errors", {}).get(plugin_name) if failures else None


def call_first_hook(name: str, accept, **kwargs) -> tuple[object, str | None]:
    """A ``firstresult`` hook, isolated: ``(result, plugin name)`` of the first valid answer.

    Implementations run in pluggy's order. One that raises, or whose answer
    ``accept(result)`` refuses (it returns a reason, or None when the answer is
    valid), is logged, counted and skipped, so the next one still gets its say: a
    broken plugin can never break the change that called the hook. ``None`` answers
    pass the turn, as in pluggy. ``(None, None)`` when no implementation answered.
    """
    caller = getattr(plugin_manager().hook, name)
    for impl in _active_impls(caller):
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            log.exception("plugin %r failed in %s", impl.plugin_name, name)
            _count_failure(impl.plugin_name, f"{name}: {exc!r}")
            continue
        if result is None:
            continue
        reason = accept(result)
        if reason is not None:
            log.error("plugin %r returned an invalid answer from %s (%s): %s",
                      impl.plugin_name, name, reason, reprlib.repr(result))
            _count_failure(impl.plugin_name, f"{name}: invalid answer ({reason})")
            continue
        return result, impl.plugin_name
    return None, None
