"""servicedesk's built-in e-mail plugin: outbound SMTP notifier (and, later, inbound mail)."""
