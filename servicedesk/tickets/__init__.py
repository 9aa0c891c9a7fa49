"""The shared work-item core: numbering, workflow, comments, audit, access.

Incidents (and later problems, changes and service requests) are kinds of ``Ticket``
(joined-table inheritance), so SLA clocks, comments, audit, notifications, search and
reports are written once and work for every kind.
"""
