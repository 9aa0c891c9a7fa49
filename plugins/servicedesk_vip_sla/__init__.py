"""servicedesk's built-in VIP SLA plugin: VIP requesters get halved targets."""
