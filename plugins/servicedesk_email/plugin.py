"""Hook implementations of the e-mail plugin (registered by the ``email`` entry point)."""

from __future__ import annotations

from servicedesk.plugins import hookimpl  # noqa: F401
