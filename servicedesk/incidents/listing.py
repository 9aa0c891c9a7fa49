"""The API's incident list read without ORM objects: one statement of plain rows.

The queue page (50 incidents) through the ORM cost more than everything else in the
request together: identity-map bookkeeping for ~10 objects per row, the policy's and
calendar's JSON columns decoded again for every joined row, then a schema dump per
field. This selects exactly the columns IncidentSchema shows, with the same WHERE,
ORDER BY and keyset cursor as service.list_incidents (both build them with
service.list_criteria), and builds the response dicts directly. The dicts must equal
IncidentSchema's dump of the same incident: tests/test_incident_list_output.py
compares the list with the detail endpoint field by field. Pages that render ORM
objects (the console) keep using service.list_incidents.
"""

from __future__ import annotations

import json
from collections import namedtuple
from types import SimpleNamespace

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import aliased

from servicedesk import types
from servicedesk.cmdb_links import affected_cis_column, decode_column
from servicedesk.extensions import db
from servicedesk.identity.models import STAFF_ROLES, Group, User
from servicedesk.incidents.models import Incident
from servicedesk.incidents.service import list_criteria
from servicedesk.incidents.workflow import INCIDENT_WORKFLOW
from servicedesk.sla.models import SlaCalendar, SlaClock, SlaPolicy
from servicedesk.sla.ola import decode_ola_column, ola_clocks_column
from servicedesk.sla.service import calendar_for, clock_summary, iso, targets_summary
from servicedesk.tickets.models import SLA_NEVER, Category, Ticket
from servicedesk.tickets.paging import encode_cursor

_Requester, _Assignee = aliased(User), aliased(User)
_CategoryA, _Subcategory = aliased(Category), aliased(Category)
_Response, _Resolution = aliased(SlaClock), aliased(SlaClock)

# The incident's own columns, in IncidentSchema's field order where they are shown.
_TICKET = (
    "id", "number", "kind", "title", "description", "status", "is_open", "impact",
    "urgency", "priority", "major", "category_id", "subcategory_id", "service_id",
    "ci_id", "support_line", "channel", "pending_reason", "resolution_code",
    "resolution_notes", "reopen_count", "escalation_count", "escalation_level",
    "created_at", "updated_at", "first_response_at", "resolved_at", "closed_at",
    "version", "sla_policy_id", "sla_due_at", "sla_adjusted_by",
)
# What sla_summary reads of a clock (elapsed_percent and clock_breached included).
_CLOCK = ("id", "target_seconds", "started_at", "paused_seconds", "paused_since",
          "due_at", "warning_at", "met_at", "breached_at")
Clock = namedtuple("Clock", _CLOCK)

_COLUMNS = (
    *(getattr(Incident, name) for name in _TICKET),
    _Requester.username, _Requester.display_name,
    _Assignee.username, _Assignee.display_name,
    Group.name, _CategoryA.name, _Subcategory.name,
    SlaPolicy.name,
    # The calendar as stored text, not decoded JSON: rows of a page share one or two
    # calendars, so the text is the key of a calendar already built (see _calendar)
    # and JSON is decoded only when a calendar is seen for the first time.
    SlaCalendar.id, SlaCalendar.version, SlaCalendar.timezone,
    cast(SlaCalendar.week, Text), cast(SlaCalendar.holidays, Text),
    *(getattr(_Response, name) for name in _CLOCK),
    *(getattr(_Resolution, name) for name in _CLOCK),
    # The affected CIs as one JSON array (a correlated subquery: still one statement).
    affected_cis_column(Ticket.id),
    # The OLA clocks, likewise one JSON array (servicedesk.sla.ola).
    ola_clocks_column(Ticket.id),
)
_N = len(_TICKET)
_CLOCK_N = len(_CLOCK)
_RESPONSE_AT = _N + 13
_RESOLUTION_AT = _RESPONSE_AT + _CLOCK_N
_AFFECTED_AT = _RESOLUTION_AT + _CLOCK_N
_OLA_AT = _AFFECTED_AT + 1


def _build_statement():
    return (
        select(*_COLUMNS)
        .outerjoin(_Requester, _Requester.id == Incident.requester_id)
        .outerjoin(_Assignee, _Assignee.id == Incident.assignee_id)
        .outerjoin(Group, Group.id == Incident.group_id)
        .outerjoin(_CategoryA, _CategoryA.id == Incident.category_id)
        .outerjoin(_Subcategory, _Subcategory.id == Incident.subcategory_id)
        .outerjoin(SlaPolicy, SlaPolicy.id == Incident.sla_policy_id)
        .outerjoin(SlaCalendar, SlaCalendar.id == SlaPolicy.calendar_id)
        .outerjoin(_Response, (_Response.ticket_id == Ticket.id)
                   & (_Response.metric == "response"))
        .outerjoin(_Resolution, (_Resolution.ticket_id == Ticket.id)
                   & (_Resolution.metric == "resolution"))
    )


# Built once: composing ten joins cost ~1 ms per request (the statement is immutable;
# each request adds its WHERE, ORDER BY and LIMIT to a copy).
_STATEMENT = _build_statement()


# Built calendars by their stored text: bounded like sla.service's own cache.
_BY_TEXT: dict[tuple, object] = {}


def _calendar(key: tuple):
    """The BusinessCalendar of a calendar row read as (id, version, tz, week, holidays)
    text; through sla.service.calendar_for, so its checks and cache still apply."""
    calendar = _BY_TEXT.get(key)
    if calendar is None:
        cal_id, version, timezone, week, holidays = key
        calendar = calendar_for(SimpleNamespace(
            id=cal_id, version=version, timezone=timezone,
            week=json.loads(week), holidays=json.loads(holidays)))
        if len(_BY_TEXT) > 256:
            _BY_TEXT.clear()
        _BY_TEXT[key] = calendar
    return calendar


def _item(row, now, role: str, transitions: dict, calendars: dict) -> dict:
    """IncidentSchema's dump of one row (same keys, same order, same values)."""
    t = dict(zip(_TICKET, row[:_N]))
    (req_user, req_display, asg_user, asg_display, group, category, subcategory,
     policy, cal_id, cal_version, cal_tz, cal_week, cal_holidays) = row[_N:_RESPONSE_AT]
    if t["sla_policy_id"] is None:
        sla = {"policy": None, "targets": None, "response": None, "resolution": None}
    else:
        calendar = None
        if policy is not None and cal_id is not None:
            key = (cal_id, cal_version, cal_tz, cal_week, cal_holidays)
            calendar = calendars.get(key)
            if calendar is None:
                calendar = calendars[key] = _calendar(key)
        response = row[_RESPONSE_AT:_RESOLUTION_AT]
        resolution = row[_RESOLUTION_AT:_AFFECTED_AT]
        response = Clock(*response) if response[0] is not None else None
        resolution = Clock(*resolution) if resolution[0] is not None else None
        sla = {
            "policy": policy,
            "targets": targets_summary(response, resolution, t["sla_adjusted_by"]),
            "response": clock_summary(response, calendar, now),
            "resolution": clock_summary(resolution, calendar, now),
        }
    status = t["status"]
    allowed = transitions.get(status)
    if allowed is None:
        allowed = transitions[status] = INCIDENT_WORKFLOW.allowed(status, role)
    created, resolved, closed = t["created_at"], t["resolved_at"], t["closed_at"]
    end = resolved or closed or now
    return {
        "number": t["number"], "kind": t["kind"], "title": t["title"],
        "description": t["description"], "status": status, "is_open": t["is_open"],
        "impact": t["impact"], "urgency": t["urgency"], "priority": t["priority"],
        "major": t["major"],
        "category_id": t["category_id"], "category": category,
        "subcategory_id": t["subcategory_id"], "subcategory": subcategory,
        "service_id": t["service_id"], "ci_id": t["ci_id"],
        "affected_cis": decode_column(row[_AFFECTED_AT]),
        "requester": req_user,
        "requester_name": (req_display or req_user) if req_user is not None else None,
        "assignee": asg_user,
        "assignee_name": (asg_display or asg_user) if asg_user is not None else None,
        "group": group,
        "support_line": t["support_line"], "channel": t["channel"],
        "pending_reason": t["pending_reason"], "resolution_code": t["resolution_code"],
        "resolution_notes": t["resolution_notes"], "reopen_count": t["reopen_count"],
        "escalation_count": t["escalation_count"],
        "escalation_level": t["escalation_level"],
        "sla": sla,
        "ola": decode_ola_column(row[_OLA_AT], staff=role in STAFF_ROLES, now=now),
        "created_at": iso(created), "updated_at": iso(t["updated_at"]),
        "first_response_at": iso(t["first_response_at"]),
        "resolved_at": iso(resolved), "closed_at": iso(closed),
        # As Ticket.open_seconds.
        "open_seconds": max(0, int((end - created).total_seconds())),
        "version": t["version"],
        # A list of its own per item, as the ORM path gives.
        "allowed_transitions": list(allowed),
    }


def _key_value(row_values: dict, column):
    if column.key == "sla_due_rank":  # Ticket.sla_due_rank, computed as the ORM does
        return row_values["sla_due_at"] or SLA_NEVER
    return row_values[column.key]


def list_incident_items(actor, filters: dict, sort: str, cursor: str | None = None,
                        limit: int = 50):
    """(items as IncidentSchema dicts, next_cursor): service.list_incidents' page."""
    columns, where, order = list_criteria(actor, filters, sort, cursor)
    # Through the session (not its connection: Core's result set-up then matches the
    # ORM-annotated columns one by one, which cost more than the ORM's column rows).
    rows = db.session.execute(
        _STATEMENT.where(*where).order_by(*order).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = dict(zip(_TICKET, rows[-1][:_N]))
        next_cursor = encode_cursor([_key_value(last, c) for c, _ in columns])
    now = types.utcnow()
    transitions: dict = {}
    calendars: dict = {}
    items = [_item(row, now, actor.role, transitions, calendars) for row in rows]
    return items, next_cursor
