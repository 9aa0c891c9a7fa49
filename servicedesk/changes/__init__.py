"""Change management (CHG): the change kind of ticket, its risk, calendar and approvals."""
