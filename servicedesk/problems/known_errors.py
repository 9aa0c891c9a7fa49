"""The known-error database: search, suggestions for an incident, publishing a workaround,
and what a problem's resolution does to its linked incidents.

A known error is a problem that reached ``known_error`` (``known_error_at`` is set), has
a workaround and was not cancelled; it stays searchable once resolved (shown with its
status). Search is a case-insensitive LIKE over title, workaround and root cause (every
word must occur in one of them), plus filters by category and CI.
"""

from __future__ import annotations

import re
from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from servicedesk import cmdb_links
from servicedesk.errors import Conflict
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.incidents.models import Incident
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW
from servicedesk.problems.models import Problem, ProblemIncident
from servicedesk.problems.service import check_staff, get_problem, like_pattern
from servicedesk.problems.workflow import INCIDENT_RESOLUTION_CODES, PROBLEM_WORKFLOW
from servicedesk.tickets import service as core
from servicedesk.types import utcnow

MAX_WORDS = 10
SUGGESTIONS = 5
_WORD = re.compile(r"\w{3,}", re.UNICODE)
# Words too common in incident titles to say anything about a match.
_STOP = {"the", "and", "for", "not", "can", "but", "all", "any", "was", "has", "are",
         "its", "our", "you", "get", "got", "with", "from", "that", "this", "does",
         "cannot", "when", "after", "every", "have", "there", "they", "will", "into",
         "about", "some"}


def _known_error_clause():
    return and_(Problem.known_error_at.is_not(None), Problem.workaround.is_not(None),
                Problem.workaround != "", Problem.status != "cancelled")


def _text_clause(words):
    clauses = []
    for word in words:
        pattern = like_pattern(word)
        clauses.append(or_(*(func.lower(func.coalesce(column, "")).like(pattern, escape="\\")
                             for column in (Problem.title, Problem.workaround,
                                            Problem.root_cause))))
    return clauses


def search_known_errors(actor: User, q: str = "", category_id: int | None = None,
                        ci_id: int | None = None, limit: int = 20) -> list[Problem]:
    """Known errors matching every word of ``q`` (and the filters), most recent first."""
    check_staff(actor)
    where = [_known_error_clause(), *_text_clause((q or "").split()[:MAX_WORDS])]
    if category_id:
        where.append(or_(Problem.category_id == category_id,
                         Problem.subcategory_id == category_id))
    if ci_id:
        where.append(Problem.id.in_(select(cmdb_links.ticket_cis.c.ticket_id).where(
            cmdb_links.ticket_cis.c.ci_id == ci_id)))
    return list(db.session.scalars(
        select(Problem).where(*where)
        .order_by(Problem.known_error_at.desc(), Problem.id.desc()).limit(limit)))


def _words(text: str) -> set[str]:
    return {w for w in (m.lower() for m in _WORD.findall(text or "")) if w not in _STOP}


def suggest_for_incident(actor: User, incident: Incident,
                         limit: int = SUGGESTIONS) -> list[dict]:
    """Known errors that may explain ``incident``, best first: ``{problem, reasons}``.

    Ranked by shared CIs, then the same category, then words shared with the title.
    Problems already linked to the incident are left out; staff only ([] otherwise).
    """
    if actor is None or not actor.is_staff:
        return []
    ci_ids = [ci["id"] for ci in cmdb_links.affected_cis(incident)]
    words = sorted(_words(incident.title))[:MAX_WORDS]
    matches = []
    if ci_ids:
        matches.append(Problem.id.in_(select(cmdb_links.ticket_cis.c.ticket_id).where(
            cmdb_links.ticket_cis.c.ci_id.in_(ci_ids))))
    if incident.category_id:
        matches.append(Problem.category_id == incident.category_id)
    if words:
        matches.append(or_(*_text_clause(words)))
    if not matches:
        return []
    linked = select(ProblemIncident.problem_id).where(
        ProblemIncident.incident_id == incident.id)
    candidates = list(db.session.scalars(
        select(Problem).where(_known_error_clause(), or_(*matches), Problem.id.not_in(linked))
        .order_by(Problem.id.desc()).limit(50)))
    if not candidates:
        return []
    their_cis: dict[int, set[int]] = {}
    for ticket_id, ci_id in db.session.execute(
            select(cmdb_links.ticket_cis.c.ticket_id, cmdb_links.ticket_cis.c.ci_id).where(
                cmdb_links.ticket_cis.c.ticket_id.in_([p.id for p in candidates]))):
        their_cis.setdefault(ticket_id, set()).add(ci_id)
    ranked = []
    for problem in candidates:
        shared_cis = their_cis.get(problem.id, set()) & set(ci_ids)
        same_category = bool(incident.category_id) and problem.category_id == incident.category_id
        shared_words = words and _words(" ".join(
            (problem.title, problem.workaround or "", problem.root_cause or ""))) & set(words)
        reasons = []
        if shared_cis:
            reasons.append("ci")
        if same_category:
            reasons.append("category")
        if shared_words:
            reasons.append("text")
        if reasons:
            score = (len(shared_cis), same_category, len(shared_words or ()))
            ranked.append((score, problem.id, {"problem": problem, "reasons": reasons}))
    ranked.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return [item for _score, _id, item in ranked[:limit]]


# --- acting on the linked incidents --------------------------------------------------


def _open_links(problem: Problem) -> list[ProblemIncident]:
    return list(db.session.scalars(
        select(ProblemIncident).join(Incident, Incident.id == ProblemIncident.incident_id)
        .where(ProblemIncident.problem_id == problem.id, Incident.is_open)
        .order_by(ProblemIncident.id)))


def publish_workaround(actor: User, number: str, version=None) -> list[str]:
    """Add the workaround as a public reply to every linked open incident that has not
    had this version of it yet; one transaction. Returns the incident numbers."""
    problem = get_problem(actor, number)
    if version is not None:
        core.check_version(problem, version)
    if PROBLEM_WORKFLOW.is_final(problem.status):
        raise Conflict(_("%(number)s is %(status)s.", number=number, status=problem.status),
                       code="ticket_closed")
    if not (problem.workaround or "").strip():
        raise Conflict(_("%(number)s has no workaround to publish.", number=number),
                       fields={"workaround": [_("Write the workaround first.")]},
                       code="no_workaround")
    body = _("A workaround is known for this issue (%(number)s, %(title)s):\n\n%(workaround)s",
             number=problem.number, title=problem.title, workaround=problem.workaround)
    hooks, published = [], []
    for link in _open_links(problem):
        # Idempotent: a conditional UPDATE claims (link, version) once; a concurrent
        # publisher waits on the row (PostgreSQL) or the write lock (SQLite), then finds
        # it claimed and posts nothing there.
        claimed = db.session.execute(
            update(ProblemIncident)
            .where(ProblemIncident.id == link.id,
                   ProblemIncident.published_version != problem.workaround_version)
            .values(published_version=problem.workaround_version)
            .execution_options(synchronize_session=False)).rowcount
        if not claimed:
            continue
        set_committed_value(link, "published_version", problem.workaround_version)
        incident = link.incident
        comment = core.add_comment(incident, actor, body, True, INCIDENT_WORKFLOW)
        published.append(incident.number)
        hooks.append(("servicedesk_ticket_commented",
                      {"ticket": incident, "comment": comment, "actor": actor}))
    if published:
        core.record(problem, actor, "workaround_published", "incidents", None,
                    ", ".join(published))
    core.commit_and_notify(hooks)
    return published


def resolve_linked_incidents(problem: Problem, actor: User, data: dict,
                             now: datetime) -> list[tuple[str, dict]]:
    """What resolving ``problem`` does to its linked open incidents (no commit): an
    internal note on each and a notification to its assignee; with
    ``resolve_incidents`` each is also resolved (code ``incident_resolution_code``,
    'fixed' by default) with notes naming the problem. Returns the hooks to call."""
    from servicedesk.notify.service import queue_notification

    resolve = bool(data.get("resolve_incidents"))
    code = data.get("incident_resolution_code") or "fixed"
    if code not in INCIDENT_RESOLUTION_CODES:  # the schema refuses it first
        code = "fixed"
    notes = _("Resolved by problem %(number)s: %(notes)s",
              number=problem.number, notes=problem.resolution_notes)
    hooks = []
    for link in _open_links(problem):
        incident = link.incident
        comment = core.add_comment(incident, actor, notes, False, INCIDENT_WORKFLOW)
        hooks.append(("servicedesk_ticket_commented",
                      {"ticket": incident, "comment": comment, "actor": actor}))
        if resolve:
            source = incident.status
            extra = {"resolution_code": code, "resolution_notes": notes, "resolved_at": now}
            if source == "pending":
                extra["pending_reason"] = None
            core.transition(incident, actor, INCIDENT_WORKFLOW, "resolved", extra, extra, at=now)
            hooks.append(("servicedesk_ticket_transitioned",
                          {"ticket": incident, "actor": actor, "from_status": source,
                           "to_status": "resolved"}))
        if incident.assignee is not None:
            queue_notification(
                "problem.resolved", incident.assignee, ticket=incident,
                context={"problem": problem, "resolved": resolve},
                dedupe_key=f"problem-resolved-{problem.number}-{incident.number}-"
                           f"{int((problem.resolved_at or utcnow()).timestamp())}")
    return hooks
