"""SLA: business-hours calendars, policies, clocks, escalation rules and their jobs.

``calendar`` is pure Python (no Flask, no database): a
:class:`~servicedesk.sla.calendar.BusinessCalendar` answers the two questions every SLA
clock needs — "when is this much business time used up?" and "how much business time
lies between these two instants?". ``clocks`` (pure too) derives a ticket's clocks from
its history; ``models`` holds the tables, ``service`` matches policies and keeps the
clock rows (refreshed by the work-item core before every ticket commit; ``repair``),
``admin`` manages calendars and policies, ``schemas``/``api`` are the REST surface.
"""

from servicedesk.sla.calendar import BusinessCalendar

__all__ = ["BusinessCalendar"]
