"""SLA: business-hours calendars, policies, clocks, escalation rules and their jobs.

``calendar`` is pure Python (no Flask, no database): the DB side builds a
:class:`~servicedesk.sla.calendar.BusinessCalendar` from its rows and asks it the two
questions every SLA clock needs — "when is this much business time used up?" and
"how much business time lies between these two instants?".
"""

from servicedesk.sla.calendar import BusinessCalendar

__all__ = ["BusinessCalendar"]
