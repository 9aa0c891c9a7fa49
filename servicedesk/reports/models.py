"""The indexes reports read from (their tables belong to the work-item core).

Declared here, on the core's tables, so ``servicedesk db check`` sees the same schema
as migrations 0018 and 0019. Each answers one report question with a range scan:

- ``ix_tickets_kind_created``: tickets opened in a period, per kind (and the
  monthly category report's month);
- ``ix_tickets_resolved_at``: tickets resolved in a period (the cohort every duration,
  rate and compliance figure is measured over). On PostgreSQL it INCLUDEs what the
  cohort's one pass reads (each ticket's SLA outcome, lines, counters) and the columns
  of the commonest filters, so that pass is an index-only scan, never a visit to the
  table;
- ``ix_tickets_closed_at``: tickets closed in a period;
- ``ix_ticket_audit_escalated``: escalation entries only (partial), per ticket.
"""

from __future__ import annotations

from sqlalchemy import Index, text

from servicedesk.tickets.models import AuditEntry, Ticket

_tickets = Ticket.__table__
_audit = AuditEntry.__table__

# Keep in step with migration 0019's COHORT_INCLUDE.
COHORT_INCLUDE = [
    "id", "kind", "group_id", "category_id", "requester_id", "assignee_id", "support_line",
    "reopen_count", "escalation_count",
    "sla_response_breached", "sla_response_business_seconds",
    "sla_resolution_breached", "sla_resolution_business_seconds",
]

Index("ix_tickets_kind_created", _tickets.c.kind, _tickets.c.created_at)
Index("ix_tickets_resolved_at", _tickets.c.resolved_at, postgresql_include=COHORT_INCLUDE)
Index("ix_tickets_closed_at", _tickets.c.closed_at)
Index("ix_ticket_audit_escalated", _audit.c.ticket_id, _audit.c.old_value,
      sqlite_where=text("action = 'escalated' AND field = 'support_line'"),
      postgresql_where=text("action = 'escalated' AND field = 'support_line'"))
