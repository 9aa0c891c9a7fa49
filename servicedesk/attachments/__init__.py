"""Files kept with tickets (e-mail attachments, ...), and the log of inbound messages."""
