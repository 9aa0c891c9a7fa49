"""The plugin manager: hook specs, entry-point discovery, isolated hook calls.

Plugins are found through the entry-point group ``servicedesk`` only, never by
scanning folders; servicedesk's built-in plugins in ``plugins/`` use the same route.

Which plugins are enabled lives in the database (``servicedesk.plugin_admin``), so every
web process and worker agrees without a restart. Reading it on every hook call would
add a query per call; it is read once per application context (one request, one job)
and kept for ``ENABLED_STATE_TTL`` seconds, so a long-lived context (a worker, a shell)
also notices a change within seconds.

Hook calls are time-boxed (``call_hook``): each implementation runs in a small shared
thread pool, in an application context of its own (so a database session of its own),
and the caller waits at most ``SERVICEDESK_PLUGIN_TIMEOUT`` seconds for it. A call that
overruns is logged and counted as a failure; Python cannot kill a thread, so it keeps
running in the background, and until it returns that plugin's further calls are skipped
(counted too), so one hung plugin holds at most one thread. Hooks called inside the
caller's transaction (``call_first_hook``, or ``call_hook`` while a transaction is open)
run inline: another thread could neither see the uncommitted change nor wait for the
caller's locks.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import reprlib
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import click
import pluggy
from flask import Blueprint, abort, current_app, g, request, url_for
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import InstanceState
from werkzeug.routing import BuildError

from servicedesk import hookspecs

PROJECT = "servicedesk"
hookimpl = pluggy.HookimplMarker(PROJECT)
log = logging.getLogger(__name__)

ENABLED_STATE_TTL = 5.0  # seconds a context trusts the disabled set it read
# Seconds a caller waits for one plugin's hook implementation (0: no time box, inline).
DEFAULT_TIMEOUT = float(os.environ.get("SERVICEDESK_PLUGIN_TIMEOUT") or 5)
# Threads shared by every hook call of this process. One hung plugin holds at most one.
POOL_SIZE = int(os.environ.get("SERVICEDESK_PLUGIN_THREADS") or 8)

_pool = None
_pool_pid = None
_pool_lock = threading.Lock()
_in_worker = threading.local()


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
    return _plugin_state()[0]


def _plugin_state() -> tuple[frozenset[str], dict[str, dict]]:
    """(disabled plugins, saved settings by plugin): one query per context and TTL.

    The settings come with the enabled state so that plugin threads, handed this
    snapshot, read their settings without a query of their own (hooks run after the
    writes of a request, which must not gain statements)."""
    cached = g.get("_sd_plugin_state")
    now = time.monotonic()
    if cached is not None and now - cached[0] < ENABLED_STATE_TTL:
        return cached[1], cached[2]
    from sqlalchemy import select

    from servicedesk.extensions import db
    from servicedesk.plugin_admin import PluginState

    # No autoflush: hooks may run mid-transaction with pending objects.
    with db.session.no_autoflush:
        rows = db.session.execute(
            select(PluginState.name, PluginState.enabled, PluginState.settings)).all()
    disabled = frozenset(name for name, enabled, _settings in rows if not enabled)
    settings = {name: dict(stored or {}) for name, _enabled, stored in rows}
    g._sd_plugin_state = (now, disabled, settings)
    return disabled, settings


def forget_enabled_state() -> None:
    """Drop this context's cached disabled set (after an admin changed it)."""
    g.pop("_sd_plugin_state", None)


def _active_impls(caller) -> list:
    impls = list(reversed(caller.get_hookimpls()))
    if not impls:
        return impls
    disabled = disabled_plugins()
    return [impl for impl in impls if impl.plugin_name not in disabled]


def plugin_settings(name: str) -> dict:
    """The settings an admin saved for plugin ``name``, loaded through its schema
    (defaults filled in); ``{}`` when it has none. Read with the enabled state (one
    query per context and ``ENABLED_STATE_TTL``; a plugin thread gets the caller's
    snapshot), so a setting saved in another process is seen within seconds."""
    from servicedesk.plugin_admin import load_settings

    snapshot = g.get("_sd_settings_snapshot")
    if snapshot is None:  # the caller's thread: what it read with the enabled state
        snapshot = _plugin_state()[1]
    return load_settings(name, stored=dict(snapshot.get(name) or {}))


def call_hook(name: str, **kwargs) -> list:
    """Call every implementation of hook ``name``, each isolated and time-boxed; the
    answers that are not None, in order (see ``call_hook_by_plugin``)."""
    return [result for _plugin, result in call_hook_by_plugin(name, **kwargs)]


def call_hooks_in_transaction(name: str, **kwargs) -> None:
    """Before a commit: the implementations of plugins that only write rows
    (``SERVICEDESK_INLINE_HOOKS``) run now, in the caller's thread and transaction, so
    their rows (a webhook's or chat message's outbox row) commit with the change that
    caused them or not at all. Isolated like any call; nothing is committed here.
    ``commit_and_notify`` then calls the hook for every other plugin after the commit
    (``call_hook(..., _after_rows=True)``)."""
    impls = [impl for impl in _active_impls(getattr(plugin_manager().hook, name))
             if _runs_inline(impl)]
    if impls:
        _call_inline(name, impls, kwargs)


def call_hook_by_plugin(name: str, _after_rows: bool = False,
                        **kwargs) -> list[tuple[str, object]]:
    """Call every implementation of hook ``name``, each isolated and time-boxed;
    ``(plugin name, answer)`` for each answer that is not None.

    pluggy stops at the first implementation that raises; a service desk must not:
    one broken plugin may neither break the request nor silence the other plugins.
    Implementations start in pluggy's order (last registered first) and run side by
    side in the plugin threads; results come back in that order. Each may take
    ``SERVICEDESK_PLUGIN_TIMEOUT`` seconds; one that raises or overruns is logged,
    counted and left out. ``_after_rows``: the row-writing plugins were told inside
    the transaction already (``call_hooks_in_transaction``); skip them. Rows that
    row-writing plugins add here are committed when the call started outside a
    transaction, and left to the caller's commit otherwise.
    """
    from servicedesk.extensions import db

    pm = plugin_manager()
    caller = getattr(pm.hook, name)
    session = db.session()
    idle = not (session.in_transaction() or session.new or session.dirty or session.deleted)
    impls = _active_impls(caller)
    if _after_rows:
        impls = [impl for impl in impls if not _runs_inline(impl)]
    if not impls:
        return []
    timeout = hook_timeout()
    if not timeout or not idle or getattr(_in_worker, "active", False):
        results = _call_inline(name, impls, kwargs)
        if idle:
            _commit_rows(name)
        return results
    if session.in_transaction():
        # Only the read of the disabled set: end it, so the caller holds no lock (on
        # SQLite, the write lock) that the plugins' own sessions would wait for.
        session.commit()
    inline = [impl for impl in impls if _runs_inline(impl)]
    if len(inline) == len(impls):
        results = _call_inline(name, impls, kwargs)
        _commit_rows(name)
        return results
    app = current_app._get_current_object()
    state = app.extensions[PROJECT]
    cached = g.get("_sd_plugin_state")  # read by _active_impls just now
    submitted = []
    for impl in impls:
        if impl in inline:
            continue
        if _is_hung(state, impl.plugin_name):
            log.error("plugin %r skipped in %s: an earlier call is still running past its "
                      "time limit", impl.plugin_name, name)
            _count_failure(impl.plugin_name, f"{name}: skipped, an earlier call still hangs")
            continue
        submitted.append((impl, time.monotonic() + timeout,
                          _executor().submit(_run_in_worker, app, impl, kwargs, cached)))
    # The trusted ones run here while the others run in their threads; answers come
    # back in pluggy's order all the same.
    answered = dict(_call_inline(name, inline, kwargs)) if inline else {}
    if inline:
        _commit_rows(name)
    for impl, deadline, future in submitted:
        try:
            result = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            _timed_out(state, impl.plugin_name, name, timeout, future)
            continue
        except BaseException as exc:  # raised in the plugin's thread: the plugin's failure
            log.error("plugin %r failed in %s", impl.plugin_name, name, exc_info=exc)
            _count_failure(impl.plugin_name, f"{name}: {exc!r}")
            continue
        if result is not None:
            answered[impl.plugin_name] = result
    return [(impl.plugin_name, answered[impl.plugin_name]) for impl in impls
            if impl.plugin_name in answered]


def _runs_inline(impl) -> bool:
    """Whether ``impl``'s plugin asked for its hooks to run in the caller's thread.

    A plugin module that sets ``SERVICEDESK_INLINE_HOOKS = True`` promises its hook
    implementations never wait (no network, no sleeping: they only write rows, e.g.
    outbox rows delivered later by workers). Such calls are still isolated (an
    exception is logged and counted) but not time-boxed, and save the thread hop and
    the second database session a time-boxed call costs (bench/api_load.py). servicedesk's
    built-in webhook and chat plugins do this; third-party plugins get the time box
    unless they opt out the same way.
    """
    return getattr(impl.plugin, "SERVICEDESK_INLINE_HOOKS", False) is True


def hook_timeout() -> float:
    """Seconds one hook implementation may take (``SERVICEDESK_PLUGIN_TIMEOUT``)."""
    try:
        return float(current_app.config.get("SERVICEDESK_PLUGIN_TIMEOUT", DEFAULT_TIMEOUT))
    except (TypeError, ValueError):
        return DEFAULT_TIMEOUT


def _commit_rows(name: str) -> None:
    """Commit what plugins running in the caller's thread added (their outbox rows)."""
    from servicedesk.extensions import db

    session = db.session()
    if not (session.new or session.dirty or session.deleted):
        if session.in_transaction():
            session.commit()  # end the read: hold no lock (SQLite: the write lock)
        return
    try:
        session.commit()
    except Exception:
        session.rollback()
        log.exception("the rows plugins wrote in %s could not be saved", name)


def _call_inline(name: str, impls: list, kwargs: dict) -> list[tuple[str, object]]:
    results = []
    for impl in impls:
        try:
            result = impl.function(*[kwargs[arg] for arg in impl.argnames])
        except Exception as exc:
            log.exception("plugin %r failed in %s", impl.plugin_name, name)
            _count_failure(impl.plugin_name, f"{name}: {exc!r}")
            continue
        if result is not None:
            results.append((impl.plugin_name, result))
    return results


class _PluginThreads:
    """A fixed pool of daemon threads running submitted calls, returning futures.

    Not ``ThreadPoolExecutor``: its threads are joined at interpreter exit, so one hung
    plugin call would keep a finished CLI command or web worker from exiting."""

    def __init__(self, size: int):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        for number in range(size):
            threading.Thread(target=self._work, name=f"servicedesk-plugin-{number}",
                             daemon=True).start()

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self._calls.put((future, fn, args))
        return future

    def _work(self) -> None:
        while True:
            future, fn, args = self._calls.get()
            if not future.set_running_or_notify_cancel():
                continue  # cancelled before it started
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller, never lost
                future.set_exception(exc)
            # Keep nothing of the call alive while idle: the caller's objects would stay
            # in its session's identity map (which only holds objects weakly).
            del future, fn, args


def _executor() -> _PluginThreads:
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():  # threads do not survive a fork
            _pool, _pool_pid = _PluginThreads(POOL_SIZE), os.getpid()
        return _pool


def _run_in_worker(app, impl, kwargs: dict, plugin_state=None):
    """Run one implementation in a plugin thread: an app context (and db session) of
    its own, the caller's ORM objects merged into it without a query, and the caller's
    snapshot of the plugins' state and settings."""
    from servicedesk.extensions import db

    _in_worker.active = True
    try:
        with app.app_context():
            if plugin_state is not None:
                g._sd_plugin_state = plugin_state
                g._sd_settings_snapshot = plugin_state[2]
            session = db.session()
            local = {arg: _rebind(session, kwargs[arg]) for arg in impl.argnames}
            return impl.function(*[local[arg] for arg in impl.argnames])
    finally:
        _in_worker.active = False


def _rebind(session, value):
    """``value`` with ORM instances copied into ``session`` (their loaded state kept)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_rebind(session, item) for item in value)
    state = sa_inspect(value, raiseerr=False)
    if not isinstance(state, InstanceState) or state.key is None:
        return value
    try:
        return session.merge(value, load=False)
    except InvalidRequestError:  # changed and not flushed: only the caller may touch it
        return value


def _is_hung(state: dict, plugin_name: str) -> bool:
    with _pool_lock:
        return state.setdefault("hung", {}).get(plugin_name, 0) > 0


def _timed_out(state: dict, plugin_name: str, name: str, timeout: float, future) -> None:
    if future.cancel():  # never started: every plugin thread was busy
        error = f"{name}: not started within {timeout:g} s (all plugin threads busy)"
    else:
        error = f"{name}: timed out after {timeout:g} s (still running in the background)"
        hung = state.setdefault("hung", {})
        with _pool_lock:
            hung[plugin_name] = hung.get(plugin_name, 0) + 1

        def _returned(_future, plugin_name=plugin_name):
            with _pool_lock:
                hung[plugin_name] = max(0, hung.get(plugin_name, 0) - 1)

        future.add_done_callback(_returned)
    log.error("plugin %r %s", plugin_name, error)
    _count_failure(plugin_name, error)


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
    Runs inline, not time-boxed: its callers are inside their transaction (the SLA
    policy hook reads the uncommitted ticket and answers with objects of that session).
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


# --- plugins' blueprints, CLI commands and admin pages -------------------------------------


def register_plugin_extensions(app) -> None:
    """Add the plugins' blueprints and CLI commands to ``app`` (at its creation).

    Every loaded plugin's, enabled or not: routes cannot be added to a running app. A
    request to a disabled plugin's route answers 404 and its commands refuse to run, so
    enabling and disabling still take effect within seconds, in every process.
    """
    state = app.extensions[PROJECT]
    pm = state["plugins"]
    owners: dict[str, str] = {}
    for plugin_name, blueprint in _provided(app, pm.hook.servicedesk_blueprints, "blueprints"):
        if not isinstance(blueprint, Blueprint):
            log.error("plugin %r: %r is not a Flask blueprint", plugin_name, blueprint)
            continue
        try:
            app.register_blueprint(blueprint)
        except (ValueError, AssertionError) as exc:  # a name or URL already taken
            log.error("plugin %r: blueprint %r not registered: %s", plugin_name,
                      blueprint.name, exc)
            continue
        owners[blueprint.name] = plugin_name
    state["blueprint_owners"] = owners
    if owners:
        app.before_request(_refuse_disabled_plugin_routes)
    for plugin_name, command in _provided(app, pm.hook.servicedesk_cli_commands, "commands"):
        if not isinstance(command, click.Command) or not command.name:
            log.error("plugin %r: %r is not a named click command", plugin_name, command)
            continue
        if command.name in app.cli.commands:
            log.error("plugin %r: the command %r exists already", plugin_name, command.name)
            continue
        _guard_command(command, plugin_name)
        app.cli.add_command(command)
    app.jinja_env.globals["plugin_admin_pages"] = admin_pages


def _provided(app, caller, what: str):
    """(plugin name, item) for each item the plugins' implementations return; called
    directly (there is no request to time-box yet), each isolated."""
    for impl in reversed(caller.get_hookimpls()):
        try:
            items = impl.function() or []
        except Exception as exc:
            log.exception("plugin %r failed to provide %s", impl.plugin_name, what)
            with app.app_context():
                _count_failure(impl.plugin_name, f"{caller.name}: {exc!r}")
            continue
        for item in items:
            yield impl.plugin_name, item


def _refuse_disabled_plugin_routes():
    blueprint = request.blueprint
    if not blueprint:
        return None
    owner = current_app.extensions[PROJECT]["blueprint_owners"].get(blueprint.split(".")[0])
    if owner is None:
        return None
    if owner in disabled_plugins():
        abort(404)
    # Keep the raw body before anything parses a form from it: plugin endpoints often
    # check a signature of the exact bytes (request.get_data()).
    request.get_data(cache=True, parse_form_data=False)
    return None


def _guard_command(command, plugin_name: str) -> None:
    """Make ``command`` refuse to run while its plugin is disabled (once per object)."""
    if getattr(command, "_servicedesk_plugin", None) is not None:
        return
    command._servicedesk_plugin = plugin_name
    original = command.callback

    def callback(*args, **kwargs):
        if plugin_name in disabled_plugins():
            raise click.ClickException(
                f"plugin {plugin_name!r} is disabled; enable it with "
                f"'servicedesk plugins enable {plugin_name}'")
        return original(*args, **kwargs) if original is not None else None

    if original is not None:
        callback = functools.wraps(original)(callback)
    command.callback = callback


def admin_pages() -> list[dict]:
    """The enabled plugins' admin pages: ``{"plugin", "title", "url"}``, for the admin's
    plugin page. A page whose endpoint does not exist is logged and left out."""
    pages = []
    for plugin_name, answer in call_hook_by_plugin("servicedesk_admin_pages"):
        for entry in answer or ():
            try:
                title, endpoint = entry
                pages.append({"plugin": plugin_name, "title": str(title),
                              "url": url_for(endpoint)})
            except (TypeError, ValueError, BuildError) as exc:
                log.error("plugin %r: admin page %r refused: %s", plugin_name, entry, exc)
                _count_failure(plugin_name, f"servicedesk_admin_pages: {entry!r}: {exc}")
    return pages
