"""Problem operations. Each takes the acting user, checks, changes, audits, commits, hooks.

Who: only IT staff (agents, managers, admins) see or touch problems; every staff member
sees every problem (a problem spans the queues of the incidents it explains). For
anyone else a problem does not exist (404). The incidents linked to a problem are
listed to an actor only as far as ``visible_tickets_clause`` lets them see incidents.

Impact grows with the linked incidents: a problem's ``impact`` is the higher of the
impact staff set (``base_impact``) and the one its number of linked incidents implies
(none: low, 1-2: medium, 3 or more: high); priority follows from impact x urgency.
"""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from sqlalchemy.orm import joinedload

from servicedesk import cmdb_links
from servicedesk.errors import Conflict, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.i18n import N_
from servicedesk.identity.models import User
from servicedesk.incidents.models import Incident
from servicedesk.problems.models import PREFIX, Problem, ProblemIncident
from servicedesk.problems.workflow import PROBLEM_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import LEVELS, Ticket
from servicedesk.tickets.paging import (
    after_cursor,
    cut_page,
    decode_cursor,
    keyset_columns,
    order_by,
)
from servicedesk.types import utcnow

WORKFLOW = PROBLEM_WORKFLOW

# Audit actions written on an incident when it is linked to / unlinked from a problem:
# IT staff only (a requester never learns of problems through their incident's history).
core.STAFF_ONLY_ACTIONS.update({"problem_linked", "problem_unlinked"})

# Impact implied by the number of linked incidents: (at least n linked, impact).
IMPACT_BY_COUNT = ((3, "high"), (1, "medium"), (0, "low"))
_RANK = {level: i for i, level in enumerate(reversed(LEVELS))}  # low 0, medium 1, high 2

_FIELDS = {"title", "description", "impact", "urgency", "category_id", "subcategory_id",
           "service_id", "ci_id", "affected_cis", "group", "assignee", "root_cause",
           "workaround"}
CREATE_FIELDS = {role: _FIELDS | {"incidents"} for role in ("agent", "manager", "admin")}
UPDATE_FIELDS = {role: set(_FIELDS) for role in ("agent", "manager", "admin")}


WHY_NOT = {
    "priority": N_("Priority follows from impact, urgency and the linked incidents."),
    "status": N_("Change the status with a transition."),
    "requester": N_("The problem is raised by whoever raises it."),
}


# --- reading -------------------------------------------------------------------------


def check_staff(actor: User | None) -> None:
    """Problems do not exist for anyone but active IT staff (404, like a hidden ticket)."""
    if actor is None or not actor.active or not actor.is_staff:
        raise NotFound(_("No such page."))


def get_problem(actor: User, number: str) -> Problem:
    check_staff(actor)
    problem = db.session.scalars(select(Problem).where(Problem.number == number)).one_or_none()
    if problem is None:
        raise NotFound(_("No problem %(number)s.", number=number))
    return problem


SORTS = {
    "-created_at": ((Problem.created_at, True),),
    "created_at": ((Problem.created_at, False),),
    "priority": ((Problem.priority, False), (Problem.created_at, False)),
    "-incident_count": ((Problem.incident_count, True), (Problem.created_at, False)),
}
DEFAULT_SORT = "-created_at"


def list_problems(actor: User, filters: dict, sort: str = DEFAULT_SORT,
                  cursor: str | None = None, limit: int = 50):
    """Problems, filtered, in ``sort`` order; returns (items, next_cursor).

    ``filters``: status (list), open (bool), known_error (bool), category_id, ci_id,
    assignee (username, "me" or "none"), group (name), q (words in the title).
    """
    check_staff(actor)
    columns = keyset_columns(SORTS, sort)
    where = core.list_filters(Problem, actor, filters)
    if "known_error" in filters:
        where.append(Problem.known_error_at.is_not(None) if filters["known_error"]
                     else Problem.known_error_at.is_(None))
    if filters.get("category_id"):
        where.append(Problem.category_id == filters["category_id"])
    if filters.get("ci_id"):
        where.append(Problem.id.in_(select(cmdb_links.ticket_cis.c.ticket_id).where(
            cmdb_links.ticket_cis.c.ci_id == filters["ci_id"])))
    for word in (filters.get("q") or "").split()[:10]:
        where.append(func.lower(Problem.title).like(like_pattern(word), escape="\\"))
    if cursor:
        where.append(after_cursor(columns, decode_cursor(cursor, columns)))
    # The affected CIs come as a JSON column of the same statement (cached on each
    # problem, where cmdb_links.affected_cis reads them): one statement per page.
    rows = db.session.execute(
        select(Problem, cmdb_links.affected_cis_column(Ticket.id)).where(*where)
        .options(joinedload(Problem.assignee), joinedload(Problem.group),
                 joinedload(Problem.category))
        .order_by(*order_by(columns)).limit(limit + 1)).all()
    return cut_page(cmdb_links.with_affected_cis(rows), columns, limit)


def like_pattern(word: str) -> str:
    """``%word%`` for a case-insensitive LIKE, with LIKE's wildcards escaped."""
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def linked_incidents(actor: User, problem: Problem) -> tuple[list, int]:
    """(links whose incident ``actor`` may see, oldest first; how many are hidden)."""
    links = list(db.session.scalars(
        select(ProblemIncident)
        .join(Incident, Incident.id == ProblemIncident.incident_id)
        .where(ProblemIncident.problem_id == problem.id,
               visible_tickets_clause(actor, Incident))
        .options(joinedload(ProblemIncident.incident), joinedload(ProblemIncident.linked_by))
        .order_by(ProblemIncident.id)))
    return links, max(0, problem.incident_count - len(links))


def problems_of_incident(actor: User, incident: Incident) -> list[Problem]:
    """The problems an incident is linked to (staff only; [] for anyone else)."""
    if actor is None or not actor.is_staff:
        return []
    return list(db.session.scalars(
        select(Problem).join(ProblemIncident, ProblemIncident.problem_id == Problem.id)
        .where(ProblemIncident.incident_id == incident.id).order_by(Problem.id)))


# --- impact --------------------------------------------------------------------------


def derived_impact(base_impact: str, incident_count: int) -> str:
    """The higher of ``base_impact`` and the impact ``incident_count`` links imply."""
    implied = next(level for n, level in IMPACT_BY_COUNT if incident_count >= n)
    return max(base_impact, implied, key=_RANK.__getitem__)


def _impact_changes(problem: Problem, base_impact: str, urgency: str, count: int) -> dict:
    impact = derived_impact(base_impact, count)
    return {"impact": impact, "urgency": urgency,
            "priority": core.compute_priority(impact, urgency)}


# --- writing -------------------------------------------------------------------------


def _assignment(problem: Problem, data: dict) -> dict:
    changes = {}
    group = core.requested_group(problem, data, changes)
    assignee = core.requested_assignee(problem, data)
    if "assignee" in data:
        changes["assignee"] = assignee
    core.check_member(assignee, group)
    return changes


def _text_changes(problem: Problem, data: dict) -> dict:
    """Title, description, references, root cause and workaround asked for in ``data``."""
    changes = {k: data[k] for k in ("title", "description", "service_id", "ci_id", "root_cause")
               if k in data}
    if "workaround" in data:
        workaround = data["workaround"] or None
        if workaround != problem.workaround:
            changes["workaround"] = workaround
            changes["workaround_version"] = (problem.workaround_version or 0) + 1
    return changes


def _resolve_incidents(actor: User, numbers) -> list[Incident]:
    """The incidents ``numbers`` names, each one ``actor`` may see; else a 422."""
    numbers = list(dict.fromkeys(numbers or []))
    found = {i.number: i for i in db.session.scalars(
        select(Incident).where(Incident.number.in_(numbers),
                               visible_tickets_clause(actor, Incident)))} if numbers else {}
    missing = [n for n in numbers if n not in found]
    if missing:
        raise ValidationError(
            _("No incident %(numbers)s.", numbers=", ".join(missing)),
            fields={"incidents": [_("Unknown incident: %(numbers)s.", numbers=", ".join(missing))]})
    return [found[n] for n in numbers]


def create_problem(actor: User, data: dict) -> Problem:
    check_staff(actor)
    core.check_writable(actor, data.keys(), CREATE_FIELDS, WHY_NOT)
    incidents = _resolve_incidents(actor, data.get("incidents"))
    category, subcategory = core.resolve_categories(data)
    cis = cmdb_links.resolve(data["affected_cis"]) if data.get("affected_cis") else []
    base_impact = data.get("impact") or "low"
    urgency = data.get("urgency") or "medium"
    now = utcnow()
    problem = Problem(
        title=data["title"], description=data.get("description") or "",
        base_impact=base_impact, category=category, subcategory=subcategory,
        service_id=data.get("service_id"), ci_id=data.get("ci_id"),
        requester=actor, channel="web", status=WORKFLOW.initial, is_open=True,
        root_cause=data.get("root_cause") or None, workaround=data.get("workaround") or None,
        workaround_version=1 if data.get("workaround") else 0,
        incident_count=len(incidents), created_at=now, updated_at=now,
    )
    for attr, value in _impact_changes(problem, base_impact, urgency, len(incidents)).items():
        setattr(problem, attr, value)
    for attr, value in _assignment(problem, data).items():
        setattr(problem, attr, value)
    core.add_numbered(problem, actor, PREFIX, now)
    cmdb_links.set_created_cis(problem, actor, cis, now)
    for incident in incidents:
        _link(problem, incident, actor, now)
    core.commit_and_notify([("servicedesk_ticket_created", {"ticket": problem, "actor": actor})])
    return problem


def update_problem(actor: User, number: str, data: dict) -> Problem:
    data = dict(data)
    version = data.pop("version", None)
    problem = get_problem(actor, number)
    core.check_writable(actor, data.keys(), UPDATE_FIELDS, WHY_NOT)
    _refuse_final(problem)
    core.check_version(problem, version)
    changes = _text_changes(problem, data)
    if problem.status == "known_error":
        emptied = [f for f in ("root_cause", "workaround") if f in data and not data[f]]
        if emptied:
            raise ValidationError(
                _("A known error keeps its root cause and workaround; move it back to "
                  "investigating first."),
                fields={f: [_("Required while the problem is a known error.")] for f in emptied})
    if "impact" in data or "urgency" in data:
        base = data.get("impact") or problem.base_impact
        changes["base_impact"] = base
        changes.update(_impact_changes(problem, base, data.get("urgency") or problem.urgency,
                                       problem.incident_count))
    if "category_id" in data or "subcategory_id" in data:
        category, subcategory = core.resolve_categories(data, problem.category, problem.subcategory)
        changes.update(category=category, subcategory=subcategory)
    if "group" in data or "assignee" in data:
        changes.update(_assignment(problem, data))
    cis = cmdb_links.resolve(data["affected_cis"]) if "affected_cis" in data else None
    now = utcnow()
    entries = core.apply_changes(problem, actor, changes, at=now)
    if cis is not None:
        entry = cmdb_links.set_affected_cis(problem, actor, cis, "updated", at=now)
        entries += [entry] if entry is not None else []
    hooks = []
    if entries:
        hooks.append(("servicedesk_ticket_updated",
                      {"ticket": problem, "actor": actor, "changes": entries}))
    core.commit_and_notify(hooks)
    return problem


def _refuse_final(problem: Problem) -> None:
    if WORKFLOW.is_final(problem.status):
        raise Conflict(_("%(number)s is %(status)s; it can no longer be changed.",
                         number=problem.number, status=problem.status),
                       code="ticket_closed")


def transition_problem(actor: User, number: str, data: dict) -> Problem:
    """Move a problem along its workflow; resolving also tells (or resolves) the linked
    open incidents, in the same transaction."""
    problem = get_problem(actor, number)
    if data.get("version") is not None:
        core.check_version(problem, data["version"])
    target = data["to"]
    step = WORKFLOW.check(problem.status, target, core.role_of(actor))
    now = utcnow()
    # The fields a known error needs may be saved already or come with this request.
    given = {k: data.get(k) for k in ("root_cause", "workaround", "resolution_notes")}
    present = {"root_cause": problem.root_cause, "workaround": problem.workaround,
               **{k: v for k, v in given.items() if v}}
    extra = _text_changes(problem, {k: v for k, v in given.items()
                                    if v and k != "resolution_notes"})
    if target == "known_error":
        extra["known_error_at"] = problem.known_error_at or now
    elif target == "investigating":
        extra["known_error_at"] = None  # out of the known-error database until it is again
    if target == "resolved":
        extra.update(resolution_code="fixed", resolution_notes=data.get("resolution_notes"),
                     resolved_at=now)
    if target in WORKFLOW.final_states:
        extra["closed_at"] = now
    if step.reopen:
        extra.update(reopen_count=problem.reopen_count + 1, resolved_at=None,
                     resolution_code=None, resolution_notes=None)
    source = problem.status
    core.transition(problem, actor, WORKFLOW, target, present, extra, at=now)
    hooks = [("servicedesk_ticket_transitioned",
              {"ticket": problem, "actor": actor, "from_status": source, "to_status": target})]
    if target == "resolved":
        from servicedesk.problems.known_errors import resolve_linked_incidents

        hooks += resolve_linked_incidents(problem, actor, data, now)
    core.commit_and_notify(hooks)
    return problem


def comment_problem(actor: User, number: str, body: str, public: bool = True):
    problem = get_problem(actor, number)
    comment = core.add_comment(problem, actor, body, public, WORKFLOW)
    core.commit_and_notify([("servicedesk_ticket_commented",
                             {"ticket": problem, "comment": comment, "actor": actor})])
    return comment


# --- links to incidents --------------------------------------------------------------


def _link(problem: Problem, incident: Incident, actor: User, at) -> None:
    """Link and audit it on both sides (no commit, no count)."""
    db.session.add(ProblemIncident(problem_id=problem.id, incident_id=incident.id,
                                   linked_by_id=actor.id, linked_at=at))
    core.record(problem, actor, "incident_linked", "incidents", None, incident.number, at)
    core.record(incident, actor, "problem_linked", "problem", None, problem.number, at)


def _recount(problem: Problem, actor: User, count: int, at) -> list:
    changes = {"incident_count": count,
               **_impact_changes(problem, problem.base_impact, problem.urgency, count)}
    problem.updated_at = at  # a change of the problem: its version moves
    return core.apply_changes(problem, actor, changes, at=at)


def link_incidents(actor: User, number: str, numbers: list[str], version=None) -> Problem:
    problem = get_problem(actor, number)
    _refuse_final(problem)
    if version is not None:
        core.check_version(problem, version)
    incidents = _resolve_incidents(actor, numbers)
    already = set(db.session.scalars(select(ProblemIncident.incident_id).where(
        ProblemIncident.problem_id == problem.id,
        ProblemIncident.incident_id.in_([i.id for i in incidents]))))
    if already:
        linked = [i.number for i in incidents if i.id in already]
        raise Conflict(_("Already linked to %(number)s: %(numbers)s.",
                         number=problem.number, numbers=", ".join(linked)),
                       fields={"incidents": [_("Already linked: %(numbers)s.",
                                               numbers=", ".join(linked))]},
                       code="already_linked")
    now = utcnow()
    for incident in incidents:
        _link(problem, incident, actor, now)
    entries = _recount(problem, actor, problem.incident_count + len(incidents), now)
    core.commit_and_notify([("servicedesk_ticket_updated",
                             {"ticket": problem, "actor": actor, "changes": entries})])
    return problem


def unlink_incident(actor: User, number: str, incident_number: str, version=None) -> Problem:
    problem = get_problem(actor, number)
    _refuse_final(problem)
    if version is not None:
        core.check_version(problem, version)
    incident = _resolve_incidents(actor, [incident_number])[0]
    removed = db.session.execute(delete(ProblemIncident).where(
        ProblemIncident.problem_id == problem.id,
        ProblemIncident.incident_id == incident.id)).rowcount
    if not removed:
        raise Conflict(_("%(incident)s is not linked to %(number)s.",
                         incident=incident.number, number=problem.number),
                       fields={"incident": [_("Not linked.")]}, code="not_linked")
    now = utcnow()
    core.record(problem, actor, "incident_unlinked", "incidents", incident.number, None, now)
    core.record(incident, actor, "problem_unlinked", "problem", problem.number, None, now)
    entries = _recount(problem, actor, max(0, problem.incident_count - 1), now)
    core.commit_and_notify([("servicedesk_ticket_updated",
                             {"ticket": problem, "actor": actor, "changes": entries})])
    return problem

