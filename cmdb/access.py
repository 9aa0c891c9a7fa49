"""Who may read and change the CMDB: the one place that decides it.

IT staff (agents, managers, admins) read everything in the CMDB; managers and admins
change CIs and relations (managers are the "CMDB editors"); only admins change the
class model. Requesters get a 403 from the API (the CMDB is an IT tool; services they
may see come through the service catalogue) and a 404 from the pages, like every
console page. ``actor=None`` is the system (CLI, demo, jobs) and may do everything.
"""

from __future__ import annotations

from flask_babel import gettext as _

from servicedesk.errors import Forbidden
from servicedesk.identity.models import User

EDITOR_ROLES = frozenset({"manager", "admin"})


def may_read(actor: User | None) -> bool:
    return actor is None or (actor.active and actor.is_staff)


def may_edit(actor: User | None) -> bool:
    return actor is None or (actor.active and actor.role in EDITOR_ROLES)


def check_read(actor: User | None) -> None:
    if not may_read(actor):
        raise Forbidden(_("Only IT staff use the CMDB."))


def check_edit(actor: User | None) -> None:
    check_read(actor)
    if not may_edit(actor):
        raise Forbidden(_("Only managers and admins change configuration items and "
                          "their relations."))


def check_model(actor: User | None) -> None:
    check_read(actor)
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins change CI classes."))
