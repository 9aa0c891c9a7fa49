"""servicedesk's built-in webhook plugin: signed outbound JSON per ticket and SLA event."""
