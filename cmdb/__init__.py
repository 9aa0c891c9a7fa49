"""Configuration management database.

The core depends on this package, never the other way round: nothing here imports
the ITIL process packages (``servicedesk.incidents`` and friends). Tickets refer to
configuration items by id (``tickets.ci_id``) until the CI tables land here.
"""
