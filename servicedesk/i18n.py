"""Translation markers shared by every module (imports nothing of the ticket kinds)."""

from __future__ import annotations


def N_(message: str) -> str:
    """Mark ``message`` for extraction (pybabel's default keywords include N_); it is
    translated where it is shown, in the reader's locale."""
    return message
