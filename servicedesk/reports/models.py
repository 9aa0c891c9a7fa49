"""The indexes reports read from (their tables belong to the work-item core).

Declared here, on the core's tables, so ``servicedesk db check`` sees the same schema
as migration 0018. Each answers one report question with a range scan:

- ``ix_tickets_kind_created``: tickets opened in a period, per kind (and the
  monthly category report's month);
- ``ix_tickets_resolved_at``: tickets resolved in a period (the cohort every duration,
  rate and compliance figure is measured over);
- ``ix_tickets_closed_at``: tickets closed in a period;
- ``ix_ticket_audit_escalated``: escalation entries only (partial), per ticket;
- ``ix_sla_clocks_report``: a resolved ticket's clock by (ticket, metric) with the
  figures the report reads (INCLUDE on PostgreSQL), so the cohort's one lookup per
  ticket and metric is an index-only scan, never a visit to the table.
"""

from __future__ import annotations

from sqlalchemy import Index, text

from servicedesk.sla.models import SlaClock
from servicedesk.tickets.models import AuditEntry, Ticket

_tickets = Ticket.__table__
_audit = AuditEntry.__table__

Index("ix_tickets_kind_created", _tickets.c.kind, _tickets.c.created_at)
Index("ix_tickets_resolved_at", _tickets.c.resolved_at)
Index("ix_tickets_closed_at", _tickets.c.closed_at)
Index("ix_ticket_audit_escalated", _audit.c.ticket_id, _audit.c.old_value,
      sqlite_where=text("action = 'escalated' AND field = 'support_line'"),
      postgresql_where=text("action = 'escalated' AND field = 'support_line'"))

_clocks = SlaClock.__table__
Index("ix_sla_clocks_report", _clocks.c.ticket_id, _clocks.c.metric,
      postgresql_include=["met_at", "breached_at", "elapsed_seconds"])
