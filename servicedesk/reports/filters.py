"""Report filters: parsed from query strings (API and pages alike), mapped to columns.

Every key comes from an explicit allow-list and maps to one column of ``tickets`` (or,
for ``ci``, to ``tickets.ci_id`` and the ``ticket_cis`` links): nothing is built from a
request string. An unknown key or a bad value is a ``ValidationError`` (422) naming it.

The period is ``from`` … ``to``: whole UTC days, both inclusive (``to`` defaults to
today, ``from`` to 29 days before ``to``). Reports are for managers and admins; what
they count is always narrowed to the tickets the actor may see
(``visible_tickets_clause``), like every list and export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from flask_babel import gettext as _
from sqlalchemy import and_, or_, select

from servicedesk.cmdb_links import ticket_cis
from servicedesk.errors import Forbidden, ValidationError
from servicedesk.identity.models import User
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import Ticket
from servicedesk.tickets.workflow import WORKFLOWS
from servicedesk.types import utcnow

REPORT_ROLES = frozenset({"manager", "admin"})
DEFAULT_DAYS = 30
MAX_DAYS = 1100
# Filter key -> the column it narrows (``ci`` is special: see ``Filters.clauses``).
ID_FILTERS = {
    "service": Ticket.service_id,
    "category": Ticket.category_id,
    "subcategory": Ticket.subcategory_id,
    "ci": Ticket.ci_id,
    "group": Ticket.group_id,
    "agent": Ticket.assignee_id,
}
SMALL_FILTERS = {"line": (Ticket.support_line, 1, 3), "priority": (Ticket.priority, 1, 5)}
PERIOD_KEYS = ("from", "to")
MONTH_KEYS = ("month",)
FORMAT_KEYS = ("format",)
FILTER_KEYS = ("kind", *ID_FILTERS, *SMALL_FILTERS)
MONTH = re.compile(r"^(\d{4})-(\d{2})$")
MIN_YEAR, MAX_YEAR = 1900, 9000  # far from date arithmetic's limits (year 1 and 9999)


def require_reader(actor: User | None) -> None:
    """Reports are read by managers and admins; everyone else gets a 403."""
    if actor is None or not actor.active or actor.role not in REPORT_ROLES:
        raise Forbidden(_("Only managers and admins read reports."))


def kinds() -> list[str]:
    """Every ticket kind the application knows (each registers its workflow)."""
    return sorted(WORKFLOWS)


def _bad(name: str, reason: str) -> ValidationError:
    return ValidationError(_("Invalid report filter %(name)s.", name=name),
                           fields={name: [reason]})


def _day(args, name: str) -> date | None:
    value = (args.get(name) or "").strip()
    if not value:
        return None
    try:
        found = date.fromisoformat(value) if len(value) == 10 else None
        if found is None or not MIN_YEAR <= found.year <= MAX_YEAR:
            raise ValueError(value)
        return found
    except ValueError:
        raise _bad(name, _("Must be a date: YYYY-MM-DD.")) from None


def _instant(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=timezone.utc)


@dataclass
class Filters:
    """What a report counts: a period [start, end) and column filters."""

    start: datetime
    end: datetime
    values: dict = field(default_factory=dict)

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()

    def clauses(self, actor: User, model=Ticket) -> list:
        """WHERE terms on ``tickets`` (no period): visibility plus every filter set."""
        terms = [visible_tickets_clause(actor, model)]
        for key, value in self.values.items():
            if key == "kind":
                terms.append(model.kind == value)
            elif key == "ci":  # the ticket's CI or one of its affected CIs
                terms.append(or_(model.ci_id == value, model.id.in_(
                    select(ticket_cis.c.ticket_id).where(ticket_cis.c.ci_id == value))))
            elif key in ID_FILTERS:
                terms.append(getattr(model, ID_FILTERS[key].key) == value)
            else:
                terms.append(getattr(model, SMALL_FILTERS[key][0].key) == value)
        return terms

    def within(self, column) -> object:
        return and_(column >= self.start, column < self.end)

    def query_args(self, **extra) -> dict:
        """The filters as query-string arguments (for links: CSV, charts)."""
        args = {"from": self.first_day.isoformat(), "to": self.last_day.isoformat()}
        args.update({k: v for k, v in self.values.items()})
        args.update(extra)
        return args


def _values(args, allowed: tuple[str, ...]) -> dict:
    unknown = sorted(set(args) - set(allowed) - set(FILTER_KEYS))
    if unknown:
        raise _bad(unknown[0], _("Unknown filter. Known: %(keys)s.",
                                 keys=", ".join(allowed + FILTER_KEYS)))
    values: dict = {}
    kind = (args.get("kind") or "").strip()
    if kind:
        if kind not in WORKFLOWS:
            raise _bad("kind", _("Must be one of: %(kinds)s.", kinds=", ".join(kinds())))
        values["kind"] = kind
    for key in (*ID_FILTERS, *SMALL_FILTERS):
        raw = (args.get(key) or "").strip()
        if not raw:
            continue
        low, high = (SMALL_FILTERS[key][1:] if key in SMALL_FILTERS else (1, 2**31 - 1))
        if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
            raise _bad(key, _("Must be a whole number from %(low)s to %(high)s.",
                              low=low, high=high))
        values[key] = int(raw)
    return values


def parse_period(args, today: date | None = None) -> Filters:
    """Filters of the KPI report from query-string ``args`` (a mapping)."""
    values = _values(args, PERIOD_KEYS + FORMAT_KEYS)
    today = today or utcnow().date()
    last = _day(args, "to") or today
    first = _day(args, "from") or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise _bad("to", _("Must not be before from."))
    if (last - first).days + 1 > MAX_DAYS:
        raise _bad("from", _("A period spans at most %(n)s days.", n=MAX_DAYS))
    return Filters(_instant(first), _instant(last + timedelta(days=1)), values)


def parse_month(args, today: date | None = None) -> Filters:
    """Filters of the monthly category report: ``month`` (YYYY-MM, default this one)."""
    values = _values(args, MONTH_KEYS + FORMAT_KEYS)
    raw = (args.get("month") or "").strip()
    if raw:
        found = MONTH.match(raw)
        if not found or not 1 <= int(found.group(2)) <= 12 \
                or not MIN_YEAR <= int(found.group(1)) <= MAX_YEAR:
            raise _bad("month", _("Must be a month: YYYY-MM."))
        year, month = int(found.group(1)), int(found.group(2))
    else:
        today = today or utcnow().date()
        year, month = today.year, today.month
    start = date(year, month, 1)
    end = date(year + month // 12, month % 12 + 1, 1)
    return Filters(_instant(start), _instant(end), values)


def previous_month(filters: Filters) -> Filters:
    end = filters.start.date()
    start = (end - timedelta(days=1)).replace(day=1)
    return Filters(_instant(start), _instant(end), dict(filters.values))


def wants_csv(args) -> bool:
    value = (args.get("format") or "json").strip().lower()
    if value not in ("json", "csv"):
        raise _bad("format", _("Must be json or csv."))
    return value == "csv"
