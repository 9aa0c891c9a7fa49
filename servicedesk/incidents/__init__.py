"""Incident management: restore normal service as quickly as possible."""
