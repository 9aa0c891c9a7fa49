"""servicedesk: an open-source ITIL service desk."""

from servicedesk.app import create_app

__all__ = ["create_app"]
__version__ = "0.1.0"
