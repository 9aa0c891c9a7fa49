"""The ``servicedesk`` command (click, through Flask's CLI).

    servicedesk db upgrade                      migrate the schema (Flask-Migrate)
    servicedesk run [--host H] [--port N]       serve (and, without Redis, run jobs)
    servicedesk demo                            seed demo data (idempotent)
    servicedesk groups create NAME --line {1,2,3}
    servicedesk users create USERNAME --email E --role R [--group G] [--password P]
    servicedesk users token USERNAME            print a new API token, alone
    servicedesk users deactivate USERNAME       end every session and token at once
    servicedesk categories create NAME [--parent P] [--group G]
    servicedesk jobs run NAME                   run a periodic job now
    servicedesk sla repair                      recompute open tickets' SLA clocks from history
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
