"""Satisfaction surveys: offered on resolution, answered once through a signed link.

Surveys are for the people IT serves: only the kinds in ``SURVEYED_KINDS`` (incidents
and service requests) get them. Problems and changes are IT's own work items, raised
by staff: resolving one asks nobody anything.

A survey row is added in the same transaction as the resolution itself:
``tickets.service.commit_and_notify`` hands us its hooks right before it commits, so
a surveyed kind gets surveys without doing anything. A *resolution* is a move from an
open status into a done one (see the kind's workflow), except withdrawals
(``NOT_RESOLUTIONS``); each resolution, including one after a reopen, gets its own row
and its own e-mail (an outbox row, committed with the change).

The e-mailed link carries an itsdangerous token (signed with the app's secret, dated):
tampering or age is refused before the database is asked anything. Only the token's
SHA-256 is stored; the row makes the link single-use (``answered_at``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from datetime import datetime, timedelta

from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from servicedesk.csat.models import Survey
from servicedesk.errors import Conflict, Forbidden, NotFound, ServiceError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.workflow import WORKFLOWS
from servicedesk.types import utcnow

EVENT = "ticket.survey"
SALT = "servicedesk.csat.survey"
# Done statuses that are not a resolution: nothing was fixed, so nothing to rate.
NOT_RESOLUTIONS = frozenset({"cancelled", "rejected", "withdrawn"})
# The ticket kinds whose requesters are asked (Ticket.kind values).
SURVEYED_KINDS = frozenset({"incident", "request"})
MAX_COMMENT = 5000
DEFAULT_LINK_DAYS = 30


class InvalidLink(ServiceError):
    status = 400
    code = "invalid_link"


class ExpiredLink(ServiceError):
    status = 410
    code = "link_expired"


# --- creation (called by the commit path) --------------------------------------------


def _is_resolution(kind: str, source: str, target: str) -> bool:
    workflow = WORKFLOWS.get(kind)
    if workflow is None or target in NOT_RESOLUTIONS:
        return False
    return workflow.is_open(source) and not workflow.is_open(target)


def _is_reopen(kind: str, source: str, target: str) -> bool:
    workflow = WORKFLOWS.get(kind)
    return workflow is not None and not workflow.is_open(source) and workflow.is_open(target)


def survey_resolutions(hooks: list[tuple[str, dict]]) -> None:
    """Add a survey (and its e-mail) for each resolution among ``hooks``; mark the
    latest survey of each reopened ticket. Same transaction; no commit, and no flush:
    the caller's commit is where a conflicting change must surface (as a 409)."""
    with db.session.no_autoflush:
        for name, kwargs in hooks:
            if name != "servicedesk_ticket_transitioned":
                continue
            ticket = kwargs["ticket"]
            if ticket.kind not in SURVEYED_KINDS:
                continue
            source, target = kwargs.get("from_status"), kwargs.get("to_status")
            if _is_resolution(ticket.kind, source, target):
                _offer(ticket)
            elif _is_reopen(ticket.kind, source, target):
                _mark_reopened(ticket)


def _offer(ticket: Ticket) -> Survey:
    from servicedesk.notify.service import queue_notification

    # No flush here (we run inside commit_and_notify, whose commit turns conflicts
    # into 409s): the token names its row by a random nonce, not by the row's id.
    token = _serializer().dumps({"n": secrets.token_urlsafe(16)})
    token_hash = _hash(token)
    survey = Survey(ticket=ticket, resolved_at=ticket.resolved_at or utcnow(),
                    token_hash=token_hash, reopened=False)
    db.session.add(survey)
    queue_notification(EVENT, ticket.requester, ticket=ticket,
                       context={"url": survey_url(token), "survey": survey},
                       dedupe_key=f"csat-{token_hash[:40]}")
    return survey


def _mark_reopened(ticket: Ticket) -> None:
    survey = latest_survey(ticket)
    if survey is not None and not survey.reopened:
        survey.reopened = True


def survey_url(token: str) -> str:
    """The absolute link for the e-mail: SERVICEDESK_BASE_URL, else this request's host."""
    base = current_app.config.get("SERVICEDESK_BASE_URL")
    if not base and has_request_context():
        base = request.host_url
    # Spelled out rather than url_for: a job resolving a ticket has no request.
    return (base or "http://localhost/").rstrip("/") + f"/survey/{token}"


# --- tokens --------------------------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _link_days() -> int:
    value = (current_app.config.get("SERVICEDESK_SURVEY_LINK_DAYS")
             or os.environ.get("SERVICEDESK_SURVEY_LINK_DAYS") or "")
    return int(value) if str(value).strip().isdigit() and int(value) > 0 else DEFAULT_LINK_DAYS


def survey_for_token(token: str, *, for_update: bool = False) -> Survey:
    """The survey a link points at; a forged, altered or stale link is refused (4xx)."""
    try:
        payload = _serializer().loads(token, max_age=_link_days() * 86400)
    except SignatureExpired:
        raise ExpiredLink(_("This survey link has expired."),
                          fields={"token": [_("Expired.")]}) from None
    except (BadSignature, UnicodeError, ValueError, TypeError):
        raise InvalidLink(_("This survey link is not valid."),
                          fields={"token": [_("Invalid or altered.")]}) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("n"), str):
        raise InvalidLink(_("This survey link is not valid."),
                          fields={"token": [_("Invalid or altered.")]})
    query = select(Survey).where(Survey.token_hash == _hash(token))
    if for_update:
        query = query.with_for_update()
    survey = db.session.scalars(query).one_or_none()
    if survey is None:
        raise InvalidLink(_("This survey link is not valid."),
                          fields={"token": [_("Invalid or altered.")]})
    return survey


# --- answering -----------------------------------------------------------------------


def _clean(rating, comment) -> tuple[int, str | None]:
    if isinstance(rating, str) and rating.strip().isdigit():
        rating = int(rating.strip())
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise ServiceError(_("Choose a rating from 1 to 5."),
                           fields={"rating": [_("Must be a whole number from 1 to 5.")]},
                           code="validation_error")
    if comment is not None and not isinstance(comment, str):
        raise ServiceError(_("The comment must be text."),
                           fields={"comment": [_("Must be text.")]}, code="validation_error")
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise ServiceError(_("The comment is too long."),
                           fields={"comment": [_("At most %(n)s characters.", n=MAX_COMMENT)]},
                           code="validation_error")
    return rating, comment


def _record(survey: Survey, rating, comment) -> Survey:
    rating, comment = _clean(rating, comment)
    if survey.answered_at is not None:
        db.session.rollback()
        raise Conflict(_("This survey has already been answered. Thank you!"),
                       fields={"token": [_("Already answered.")]}, code="already_answered")
    # Conditional, so two answers racing through the same link record one (PostgreSQL
    # also locked the row above; SQLite has a single writer).
    done = db.session.execute(
        update(Survey).where(Survey.id == survey.id, Survey.answered_at.is_(None))
        .values(rating=rating, comment=comment, answered_at=utcnow())
    )
    if done.rowcount != 1:
        db.session.rollback()
        raise Conflict(_("This survey has already been answered. Thank you!"),
                       fields={"token": [_("Already answered.")]}, code="already_answered")
    db.session.commit()
    db.session.refresh(survey)
    return survey


def answer_by_token(token: str, rating, comment=None) -> Survey:
    """Record the requester's answer; no login: the link is the credential. Once only."""
    _clean(rating, comment)  # bad input is named before the link is even looked at
    return _record(survey_for_token(token, for_update=True), rating, comment)


def answer_for_ticket(actor: User, ticket: Ticket, rating, comment=None) -> Survey:
    """The portal's prompt: the signed-in requester answers the latest survey."""
    if actor.id != ticket.requester_id:
        raise Forbidden(_("Only the requester rates the resolution."))
    survey = latest_survey(ticket, for_update=True)
    if survey is None:
        raise NotFound(_("%(number)s has no satisfaction survey.", number=ticket.number))
    return _record(survey, rating, comment)


# --- reopening -----------------------------------------------------------------------


def _reopeners():
    # Kinds whose service reopens a ticket: (actor, number, data) -> ticket.
    from servicedesk.incidents.service import transition_incident

    return {"incident": transition_incident}


def reopen_window() -> timedelta:
    return timedelta(days=current_app.config["SERVICEDESK_REOPEN_WINDOW_DAYS"])


def reopen_target(survey: Survey) -> str | None:
    """The status a reopen from the survey page would move to, or None (not possible)."""
    ticket = survey.ticket
    workflow = WORKFLOWS.get(ticket.kind)
    if workflow is None or ticket.kind not in _reopeners():
        return None
    latest = latest_survey(ticket)
    if latest is None or latest.id != survey.id:
        return None  # reopened and resolved again since: this link is about the past
    for step in workflow.transitions:
        if step.reopen and step.source == ticket.status and "requester" in step.roles:
            return step.target
    return None


def can_reopen(survey: Survey, now: datetime | None = None) -> bool:
    ticket = survey.ticket
    if reopen_target(survey) is None or ticket.resolved_at is None:
        return False
    return (now or utcnow()) - ticket.resolved_at <= reopen_window()


def reopen_by_token(token: str) -> Ticket:
    """Reopen as the requester, through the kind's own service (which enforces the
    window and the workflow): a refusal comes back as its Conflict, with the reason."""
    survey = survey_for_token(token)
    target = reopen_target(survey)
    ticket = survey.ticket
    if target is None:
        raise Conflict(
            _("%(number)s is %(status)s and cannot be reopened from this page; please "
              "raise a new incident if the problem is back.",
              number=ticket.number, status=ticket.status),
            fields={"to": [_("Not reopenable.")]}, code="not_reopenable")
    return _reopeners()[ticket.kind](ticket.requester, ticket.number, {"to": target})


# --- reading -------------------------------------------------------------------------


def latest_survey(ticket: Ticket, for_update: bool = False) -> Survey | None:
    query = (select(Survey).where(Survey.ticket_id == ticket.id)
             .order_by(Survey.id.desc()).limit(1))
    if for_update:
        query = query.with_for_update()
    return db.session.scalars(query).first()


def pending_prompt(actor, ticket: Ticket) -> Survey | None:
    """The survey the portal should ask ``actor`` about on ``ticket``'s page, if any."""
    if actor is None or getattr(actor, "id", None) != ticket.requester_id:
        return None
    workflow = WORKFLOWS.get(ticket.kind)
    if workflow is None or workflow.is_open(ticket.status):
        return None
    survey = latest_survey(ticket)
    return survey if survey is not None and survey.answered_at is None else None


def survey_of(actor: User, number: str) -> Survey:
    """The latest survey of incident ``number`` for its requester or staff (API)."""
    from servicedesk.incidents.service import get_incident

    ticket = get_incident(actor, number)
    if not actor.is_staff and actor.id != ticket.requester_id:
        raise NotFound(_("No incident %(number)s.", number=number))
    survey = latest_survey(ticket)
    if survey is None:
        raise NotFound(_("%(number)s has no satisfaction survey.", number=number))
    return survey


def csat_stats(period_start: datetime, period_end: datetime, tickets=None) -> dict:
    """CSAT of the resolutions in [period_start, period_end): surveys sent, answered,
    average rating (None without answers) and response rate (None without surveys).

    ``tickets``: an optional select of ticket ids to restrict to (report filters).
    """
    query = select(func.count(Survey.id), func.count(Survey.answered_at),
                   func.avg(Survey.rating)).where(
        Survey.resolved_at >= period_start, Survey.resolved_at < period_end)
    if tickets is not None:
        query = query.where(Survey.ticket_id.in_(tickets))
    sent, responses, average = db.session.execute(query).one()
    return {
        "average": round(float(average), 2) if average is not None else None,
        "responses": responses,
        "sent": sent,
        "response_rate": round(responses / sent, 4) if sent else None,
    }
