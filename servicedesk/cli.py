"""The ``servicedesk`` command (click, through Flask's CLI).

    servicedesk db upgrade                      migrate the schema (Flask-Migrate)
    servicedesk run [--host H] [--port N]       serve (and, without Redis, run jobs)
    servicedesk demo                            seed demo data (idempotent)
    servicedesk groups create NAME --line {1,2,3}
    servicedesk groups add-member NAME USERNAME / remove-member NAME USERNAME
    servicedesk users create USERNAME --email E --role R [--group G] [--password P]
    servicedesk users token USERNAME            print a new API token, alone
    servicedesk users deactivate USERNAME       end every session and token at once
    servicedesk categories create NAME [--parent P] [--group G]
    servicedesk jobs run NAME                   run a periodic job now
    servicedesk sla repair                      recompute open tickets' SLA clocks from history
    servicedesk sla sweep [--batch N]           fire the SLA escalation steps due now
    servicedesk sla fill-elapsed                business time of clocks stopped before 0018
    servicedesk notify deliver [--limit N]      deliver the notifications due now, once
    servicedesk notify list [--failed]          list notifications (failed deliveries)
    servicedesk notify retry ID                 queue a failed notification again
    servicedesk cmdb import FILE [--dry-run]    import CIs and relations (.json or .csv)
    servicedesk cmdb sync-classes               write the plugins' CI classes to the table
    servicedesk ldap config [--file F]           show or save the directory settings
    servicedesk ldap test                       test the directory connection
    servicedesk ldap sync [--dry-run] [--full]  sync users and groups from the directory
    servicedesk plugins list                    plugins: version, hooks, enabled, health
    servicedesk plugins enable NAME / disable NAME
    servicedesk plugins settings NAME [--set key=value ...]   show or change settings
    servicedesk plugins install PACKAGE [--by WHO]   pip install; new plugins start disabled
    servicedesk worker [--burst]                an RQ worker (needs SERVICEDESK_REDIS_URL)
    servicedesk scheduler                       enqueue periodic jobs (needs Redis)
"""

from __future__ import annotations

import functools

import click
from flask import current_app
from flask.cli import FlaskGroup, routes_command, shell_command, with_appcontext

from servicedesk.errors import ServiceError


def _create_app(*_args, **_kwargs):
    from servicedesk.app import create_app

    return create_app()


def service_errors(f):
    """Show domain errors as a clean CLI error (exit 1) naming the bad fields."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except ServiceError as exc:
            details = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.fields.items())
            raise click.ClickException(exc.message + (f" ({details})" if details else "")) from None

    return wrapper


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main():
    """servicedesk: an ITIL service desk."""


main.add_command(shell_command)
main.add_command(routes_command)


@main.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run_command(host, port):
    """Serve the web UI and API (the embedded default also runs jobs in-process)."""
    from werkzeug.serving import run_simple

    from servicedesk.jobs import InProcessJobs

    app = current_app._get_current_object()
    if not app.config["SERVICEDESK_REDIS_URL"]:
        InProcessJobs(app).start()
    click.echo(f"servicedesk on http://{host}:{port}/")
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


@main.command("demo")
@with_appcontext
@service_errors
def demo_command():
    """Seed demo groups, users, categories and incidents (safe to run again)."""
    from servicedesk.demo import DEMO_PASSWORD, seed_demo

    users = seed_demo()
    click.echo("Demo logins (password for all: %s):" % DEMO_PASSWORD)
    for username, role in users:
        click.echo(f"  {username:<10} {role}")


@main.group("groups")
def groups():
    """Manage groups."""


@groups.command("create")
@click.argument("name")
@click.option("--line", type=click.Choice(["1", "2", "3"]), required=True,
              help="Support line: 1 general, 2 technical, 3 engineering.")
@click.option("--description", default="")
@with_appcontext
@service_errors
def groups_create(name, line, description):
    """Create a group in a support line."""
    from servicedesk.identity.service import create_group

    group = create_group(None, name, int(line), description)
    click.echo(f"created group {group.name} (L{group.support_line})")


@groups.command("add-member")
@click.argument("name")
@click.argument("username")
@with_appcontext
@service_errors
def groups_add_member(name, username):
    """Make USERNAME a member of group NAME (e.g. the VIP group of the vip_sla plugin)."""
    from servicedesk.identity.service import add_member, require_group, require_user

    add_member(None, require_user(username), require_group(name))
    click.echo(f"{username} is a member of {name}")


@groups.command("remove-member")
@click.argument("name")
@click.argument("username")
@with_appcontext
@service_errors
def groups_remove_member(name, username):
    """Take USERNAME out of group NAME."""
    from servicedesk.identity.service import remove_member, require_group, require_user

    remove_member(None, require_user(username), require_group(name))
    click.echo(f"{username} is not a member of {name}")


@main.group("users")
def users():
    """Manage users and API tokens."""


@users.command("create")
@click.argument("username")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["requester", "agent", "manager", "admin"]),
              required=True)
@click.option("--group", "groups_", multiple=True, help="A group to join (repeatable).")
@click.option("--password", default=None, help="Omit for token-only or directory users.")
@click.option("--display-name", default="")
@with_appcontext
@service_errors
def users_create(username, email, role, groups_, password, display_name):
    """Create a local user."""
    from servicedesk.identity.service import create_user

    user = create_user(None, username, email, role, groups=list(groups_), password=password,
                       display_name=display_name)
    click.echo(f"created user {user.username} ({user.role})")


@users.command("token")
@click.argument("username")
@click.option("--name", default="cli", help="A label to recognise the token by.")
@with_appcontext
@service_errors
def users_token(username, name):
    """Print a new API token for USERNAME, alone on stdout."""
    from servicedesk.identity.service import issue_token, require_user

    click.echo(issue_token(require_user(username), name))


@users.command("deactivate")
@click.argument("username")
@with_appcontext
@service_errors
def users_deactivate(username):
    """Deactivate USERNAME: their sessions and API tokens stop working at once."""
    from servicedesk.identity.service import deactivate_user, require_user

    deactivate_user(None, require_user(username))
    click.echo(f"deactivated {username}")


@main.group("categories")
def categories():
    """Manage ticket categories."""


@categories.command("create")
@click.argument("name")
@click.option("--parent", default=None, help="Parent category name: makes a subcategory.")
@click.option("--group", default=None, help="Default group for tickets in this category.")
@with_appcontext
@service_errors
def categories_create(name, parent, group):
    """Create a category or subcategory."""
    from sqlalchemy import select

    from servicedesk.extensions import db
    from servicedesk.tickets.admin import create_category
    from servicedesk.tickets.models import Category

    parent_id = None
    if parent:
        parent_row = db.session.scalars(select(Category).where(
            Category.name == parent, Category.parent_id.is_(None))).first()
        if parent_row is None:
            raise click.ClickException(f"No top-level category {parent!r}.")
        parent_id = parent_row.id
    category = create_category(None, name, parent_id, group)
    click.echo(f"created category {category.path} (id {category.id})")


@main.group("jobs")
def jobs():
    """Run background jobs by hand."""


@jobs.command("run")
@click.argument("name")
@with_appcontext
def jobs_run(name):
    """Run periodic job NAME now, in this process."""
    from servicedesk.jobs import PERIODIC_JOBS, resolve

    if name not in PERIODIC_JOBS:
        raise click.ClickException(f"Unknown job {name!r}; known: {', '.join(PERIODIC_JOBS)}.")
    result = resolve(PERIODIC_JOBS[name][0])()
    click.echo(f"{name}: {result}")


@main.group("sla")
def sla():
    """SLA clocks."""


@sla.command("repair")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Tickets per transaction.")
@with_appcontext
def sla_repair(batch):
    """Recompute every open ticket's SLA clocks from its history (idempotent).

    Run it after editing a calendar or policy, or whenever clocks look wrong: the
    clocks are derived from each ticket's audit trail, so this loses nothing.
    """
    from servicedesk.sla.service import repair_clocks

    changed, checked = repair_clocks(batch=batch)
    click.echo(f"sla repair: {changed} of {checked} open tickets changed")


@sla.command("fill-elapsed")
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 10_000),
              help="Clocks per transaction.")
@with_appcontext
def sla_fill_elapsed(batch):
    """Give stopped clocks from before revision 0018 their business time (reports)."""
    from servicedesk.reports.backfill import fill_elapsed

    click.echo(f"sla fill-elapsed: {fill_elapsed(batch=batch)} clocks filled")


@sla.command("sweep")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Clocks read per indexed query.")
@click.option("--time-limit", default=300.0, show_default=True,
              type=click.FloatRange(1, 86_400), help="Stop after this many seconds.")
@with_appcontext
def sla_sweep(batch, time_limit):
    """Fire every SLA escalation step (and OLA warning/breach) due now, once (idempotent).

    What the periodic sweep does every minute; run it by hand after Redis lost its
    scheduled jobs, or to catch up at once.
    """
    from servicedesk.sla.escalation import run_sweep
    from servicedesk.sla.ola import sweep_olas

    fired, complete = run_sweep(batch=batch, time_limit=time_limit)
    told = sweep_olas(batch=batch)
    click.echo(f"sla sweep: {fired} fired, {told} OLA events" + (
        "" if complete else " (time limit reached: run it again)"))


@main.group("notify")
def notify():
    """The notification outbox."""


@notify.command("deliver")
@click.option("--limit", default=None, type=click.IntRange(1, 100_000),
              help="At most this many notifications (default SERVICEDESK_NOTIFY_BATCH).")
@with_appcontext
def notify_deliver(limit):
    """Deliver the notifications that are due now, once, in this process."""
    from servicedesk.notify.delivery import deliver_due

    counts = deliver_due(limit=limit, seconds=3600)
    click.echo("notify deliver: {sent} sent, {retry} to retry, {failed} failed".format(**counts))


@notify.command("list")
@click.option("--failed", is_flag=True, help="Only failed deliveries.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@with_appcontext
@service_errors
def notify_list(failed, limit):
    """List notifications, newest first: id, status, attempts, address, subject, error."""
    from servicedesk.notify.service import list_notifications

    for n in list_notifications(None, "failed" if failed else None, limit=limit):
        error = f"  [{n.last_error}]" if n.last_error else ""
        click.echo(f"{n.id}\t{n.status}\t{n.attempts}\t{n.address}\t{n.subject}{error}")


@notify.command("retry")
@click.argument("notification_id", type=click.IntRange(1, 2**31 - 1))
@with_appcontext
@service_errors
def notify_retry(notification_id):
    """Queue a failed notification again (fresh attempts)."""
    from servicedesk.notify.service import retry_notification

    retry_notification(None, notification_id)
    click.echo(f"notification {notification_id} queued again")


@main.group("cmdb")
def cmdb():
    """The configuration management database."""


@cmdb.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row and report; write nothing.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default=None,
              help="Default: from the file name's extension.")
@with_appcontext
def cmdb_import(file, dry_run, fmt):
    """Import CIs and relations from FILE (JSON or CSV), idempotent by external key.

    All rows or none: if any row has an error, each is listed (row and field) and
    nothing is written (exit 1). See docs/operations.md for the formats.
    """
    from cmdb.importer import import_file, report_lines
    from servicedesk.errors import ValidationError

    try:
        report = import_file(file, dry_run=dry_run, fmt=fmt)
    except ValidationError as exc:
        click.echo(exc.message, err=True)
        for name, reasons in exc.fields.items():
            click.echo(f"  {name}: {' '.join(reasons)}", err=True)
        raise SystemExit(1) from None
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    for line in report_lines(report):
        click.echo(line)


@cmdb.command("sync-classes")
@with_appcontext
@service_errors
def cmdb_sync_classes():
    """Write the CI classes that plugins define (servicedesk_ci_classes) to the table."""
    from cmdb.classes import sync_plugin_classes_now

    created, updated = sync_plugin_classes_now(None)
    click.echo(f"cmdb sync-classes: {created} created, {updated} updated")


@main.group("ldap")
def ldap():
    """The directory (LDAP / Active Directory): settings, connection test, sync."""


@ldap.command("config")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A JSON object of settings to save (the API's PUT body; the version "
                   "is taken care of). Without it: print the settings.")
@with_appcontext
@service_errors
def ldap_config(path):
    """Print the directory settings (never the bind password), or save them from a file."""
    import json

    from servicedesk.ldap.schemas import LdapConfigSchema, LdapConfigUpdateSchema
    from servicedesk.ldap.service import get_config, update_config

    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                data = LdapConfigUpdateSchema().load(json.load(handle))
        except ValueError as exc:  # bad JSON, or marshmallow's ValidationError
            raise click.ClickException(f"{path}: {getattr(exc, 'messages', exc)}") from None
        data["version"] = get_config(None).version or None
        update_config(None, data)
        click.echo("directory settings saved")
    click.echo(json.dumps(LdapConfigSchema().dump(get_config(None)), indent=2,
                          ensure_ascii=False, default=str))


@ldap.command("test")
@with_appcontext
@service_errors
def ldap_test():
    """Connect, bind and look at the user and group bases (exit 1 if anything fails)."""
    from servicedesk.ldap.service import test_connection

    result = test_connection(None)
    for step in result["steps"]:
        click.echo(f"{'ok  ' if step['ok'] else 'FAIL'} {step['step']}: {step['detail']}")
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}")
    if not result["ok"]:
        raise click.ClickException("the directory test failed")


@ldap.command("sync")
@click.option("--dry-run", is_flag=True, help="Report what would change; change nothing.")
@click.option("--full", is_flag=True, help="Read every user even where incremental would do.")
@click.option("--allow-mass-deactivation", is_flag=True,
              help="Run even if it deactivates more users than the configured share.")
@with_appcontext
@service_errors
def ldap_sync(dry_run, full, allow_mass_deactivation):
    """Sync users and groups from the directory now, here (exit 1 unless ok or skipped)."""
    from servicedesk.ldap.service import report_items, start_sync

    report = start_sync(None, "cli", dry_run=dry_run, full=full,
                        allow_mass_deactivation=allow_mass_deactivation, run_here=True)
    click.echo(f"ldap sync #{report.id}: {report.status}" + (" (dry run)" if dry_run else "")
               + (f", {report.mode}" if report.mode else "")
               + (f" from {report.server}" if report.server else ""))
    click.echo(f"  created {report.created}, updated {report.updated}, deactivated "
               f"{report.deactivated}, reactivated {report.reactivated}, unchanged "
               f"{report.unchanged}, errors {report.errors}")
    if report.message:
        click.echo(f"  {report.message}")
    items, _more = report_items(None, report, "error", limit=20)
    for item in items:
        click.echo(f"  error: {item.dn or '-'}: {item.detail}")
    if report.status not in ("ok", "skipped"):
        raise click.ClickException(f"the sync {report.status}")


# --- plugins (servicedesk.plugin_admin) ----------------------------------------------------


@main.group("plugins")
def plugins_group():
    """List, enable, disable, configure and install plugins."""


def _echo_plugin(p) -> None:
    health = "healthy" if p.healthy else f"{p.failures} failures (last: {p.last_error})"
    click.echo(f"{p.name}\t{p.version or '-'}\t{'enabled' if p.enabled else 'disabled'}"
               f"{'' if p.loaded else ' (not loaded: restart)'}\t{health}\t"
               f"{','.join(p.hooks) or '-'}")


@plugins_group.command("list")
@with_appcontext
@service_errors
def plugins_list():
    """Every plugin: name, version, enabled, health, hooks."""
    from servicedesk.plugin_admin import list_plugins

    for plugin in list_plugins(None):
        _echo_plugin(plugin)


@plugins_group.command("enable")
@click.argument("name")
@with_appcontext
@service_errors
def plugins_enable(name):
    """Enable plugin NAME (every process follows within seconds)."""
    from servicedesk.plugin_admin import set_enabled

    _echo_plugin(set_enabled(None, name, True))


@plugins_group.command("disable")
@click.argument("name")
@with_appcontext
@service_errors
def plugins_disable(name):
    """Disable plugin NAME: its hooks stop firing."""
    from servicedesk.plugin_admin import set_enabled

    _echo_plugin(set_enabled(None, name, False))


@plugins_group.command("settings")
@click.argument("name")
@click.option("--set", "pairs", multiple=True, metavar="KEY=VALUE",
              help="A setting to change (repeatable); secrets are never shown.")
@with_appcontext
@service_errors
def plugins_settings(name, pairs):
    """Show plugin NAME's settings, or change them with --set."""
    from servicedesk.errors import ValidationError
    from servicedesk.plugin_admin import get_plugin, update_settings

    if pairs:
        values = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValidationError("Each --set must be KEY=VALUE.",
                                      fields={"set": [f"not KEY=VALUE: {pair!r}"]})
            values[key] = value
        plugin = update_settings(None, name, values)
    else:
        plugin = get_plugin(None, name)
    for key, value in plugin.settings.items():
        click.echo(f"{key}={'' if value is None else value}")


@plugins_group.command("install")
@click.argument("package")
@click.option("--by", default=None, help="Who installs it (default: the OS user).")
@with_appcontext
@service_errors
def plugins_install(package, by):
    """pip install PACKAGE into this environment; its plugins are recorded disabled."""
    from servicedesk.plugin_admin import install

    added = install(package, by)
    if added:
        click.echo(f"installed {package}: {', '.join(added)} (disabled; restart the web "
                   "processes and workers, then enable)")
    else:
        click.echo(f"installed {package}: no new plugins")


@main.command("worker")
@click.option("--burst", is_flag=True, help="Exit when the queue is empty.")
@with_appcontext
def worker_command(burst):
    """Start an RQ worker (JSON jobs only) with the app context and RQ's scheduler."""
    from servicedesk.jobs import QUEUE_NAME, redis_connection
    from servicedesk.worker import AppWorker

    app = current_app._get_current_object()
    connection = redis_connection(app)
    if connection is None:
        raise click.ClickException("Set SERVICEDESK_REDIS_URL: without Redis, jobs run "
                                   "inside `servicedesk run`.")
    AppWorker([QUEUE_NAME], connection=connection, app=app).work(burst=burst,
                                                                 with_scheduler=True)


@main.command("scheduler")
@with_appcontext
def scheduler_command():
    """Enqueue periodic jobs on Redis; run one or more beside the workers."""
    from servicedesk.jobs import redis_connection, run_scheduler

    app = current_app._get_current_object()
    if redis_connection(app) is None:
        raise click.ClickException("Set SERVICEDESK_REDIS_URL.")
    run_scheduler(app)
