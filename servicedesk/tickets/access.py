"""Who may see which tickets: the one place that decides it.

Every list, search, detail, export and report builds its query on
``visible_tickets_clause``; code never filters by role on its own. What an actor may
not see does not exist for them (404, not 403).
"""

from __future__ import annotations

from sqlalchemy import false, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from servicedesk.identity.models import Group, User, group_members
from servicedesk.tickets.models import Ticket


class _broad(FunctionElement):
    """A planner hint, not a filter: the term is true for many rows (SQLite ``likely``).

    A staff member's visibility is an OR of indexable terms (own, assigned, my groups,
    the untriaged pool). Without statistics SQLite takes each term for a selective one
    and answers from four index lookups merged and then sorted, i.e. it reads and sorts
    every visible row (thousands, for the queue). Marked ``likely`` it drives the query
    from the index on the ORDER BY instead (the queue: ix_tickets_open_queue) and stops
    after one page. ``likely(x)`` returns x: the rows selected are the same. Other
    databases get the bare term.
    """

    name = "likely"
    inherit_cache = True


@compiles(_broad)
def _broad_plain(element, compiler, **kw):
    return "(%s)" % compiler.process(element.clauses, **kw)


@compiles(_broad, "sqlite")
def _broad_sqlite(element, compiler, **kw):
    return "likely(%s)" % compiler.process(element.clauses, **kw)


def _my_group_ids(actor: User):
    return select(group_members.c.group_id).where(group_members.c.user_id == actor.id)


def visible_tickets_clause(actor: User | None, model=Ticket):
    """A WHERE clause selecting the tickets of ``model`` that ``actor`` may see.

    - requester: the tickets they raised;
    - agent: their groups' tickets, tickets assigned to them or raised by them, and the
      untriaged pool (no group yet);
    - manager: as an agent, plus every group of the support lines they belong to;
    - admin: everything.
    """
    if actor is None or not actor.active:
        return false()
    if actor.role == "admin":
        return true()
    own = model.requester_id == actor.id
    if actor.role == "requester":
        return own
    clauses = [
        own,
        model.assignee_id == actor.id,
        model.group_id.in_(_my_group_ids(actor)),
        model.group_id.is_(None),
    ]
    if actor.role == "manager":
        my_lines = select(Group.support_line).where(Group.id.in_(_my_group_ids(actor)))
        clauses.append(
            model.group_id.in_(select(Group.id).where(Group.support_line.in_(my_lines)))
        )
    return or_(*(_broad(clause) for clause in clauses))
