"""servicedesk's built-in e-mail plugin: outbound SMTP notifier and the inbound e-mail channel."""
