"""The plugin manager: hook specs, entry-point discovery, isolated hook calls.

Plugins are found through the entry-point group ``servicedesk`` only, never by
scanning folders; servicedesk's built-in plugins in ``plugins/`` use the same route.
"""

from __future__ import annotations

import logging
import reprlib

import pluggy
from flask import current_app

from servicedesk import hookspecs

PROJECT = "servicedesk"
hookimpl = pluggy.HookimplMarker(PROJECT)
log = logging.getLogger(__name__)


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


def call_hook(name: str, **kwargs) -> list:
    """Call every implementation of hook ``name``, each isolated from the others.

    pluggy stops at the first implementation that raises; a service desk must not:
    one broken plugin may neither break the request nor silence the other plugins.
    Implementations run in pluggy's order (last registered first).
    """
    pm = plugin_manager()
    caller = getattr(pm.hook, name)
    results = []
    for impl in reversed(caller.get_hookimpls()):
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception:
            log.exception("plugin %r failed in %s", impl.plugin_name, name)
            current_app.extensions[PROJECT]["failures"][impl.plugin_name] = (
                current_app.extensions[PROJECT]["failures"].get(impl.plugin_name, 0) + 1
            )
            continue
        if result is not None:
            results.append(result)
    return results


def _count_failure(plugin_name: str) -> None:
    failures = current_app.extensions[PROJECT]["failures"]
    failures[plugin_name] = failures.get(plugin_name, 0) + 1


def call_first_hook(name: str, accept, **kwargs) -> tuple[object, str | None]:
    """A ``firstresult`` hook, isolated: ``(result, plugin name)`` of the first valid answer.

    Implementations run in pluggy's order. One that raises, or whose answer
    ``accept(result)`` refuses (it returns a reason, or None when the answer is
    valid), is logged, counted and skipped, so the next one still gets its say: a
    broken plugin can never break the change that called the hook. ``None`` answers
    pass the turn, as in pluggy. ``(None, None)`` when no implementation answered.
    """
    caller = getattr(plugin_manager().hook, name)
    for impl in reversed(caller.get_hookimpls()):
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception:
            log.exception("plugin %r failed in %s", impl.plugin_name, name)
            _count_failure(impl.plugin_name)
            continue
        if result is None:
            continue
        reason = accept(result)
        if reason is not None:
            log.error("plugin %r returned an invalid answer from %s (%s): %s",
                      impl.plugin_name, name, reason, reprlib.repr(result))
            _count_failure(impl.plugin_name)
            continue
        return result, impl.plugin_name
    return None, None
