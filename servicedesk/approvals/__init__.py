"""Approvals on tickets of any kind (see service.py)."""
