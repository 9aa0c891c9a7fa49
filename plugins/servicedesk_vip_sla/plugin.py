"""Hook implementations of the VIP SLA plugin (registered by the ``vip_sla`` entry point)."""

from __future__ import annotations

from servicedesk.plugins import hookimpl  # noqa: F401
