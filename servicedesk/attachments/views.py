"""Attachment downloads: only for people who may see the ticket, never rendered by us.

A file from a sender is untrusted content. It is always a download
(``Content-Disposition: attachment``), never sniffed (``nosniff``), and a sandboxing
CSP stops it running script even if a browser opened it inline; types a browser could
execute (HTML, SVG, XML, ...) are sent as ``application/octet-stream`` anyway.
"""

from __future__ import annotations

from flask import Blueprint, g, send_file
from flask_login import current_user, login_required

from servicedesk.attachments import service

bp = Blueprint("attachments", __name__)

# Sent with their own type (a browser shows a preview after download); anything else
# is application/octet-stream.
PASSIVE_TYPES = frozenset({
    "text/plain", "text/csv", "application/pdf", "image/png", "image/jpeg", "image/gif",
    "image/webp", "application/zip", "application/json",
})
SANDBOX_CSP = "sandbox; default-src 'none'"


@bp.app_template_global("ticket_attachments")
def ticket_attachments(ticket):
    """The attachments of ``ticket`` the signed-in user may see (for the incident pages)."""
    if not current_user.is_authenticated:
        return []
    return service.list_attachments(current_user._get_current_object(), ticket)


@bp.route("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id):
    row = service.get_attachment(current_user._get_current_object(), attachment_id)
    return download_response(row)


def download_response(row):
    """The one way an attachment leaves us (pages and API alike)."""
    g.no_store = True
    mimetype = row.content_type if row.content_type in PASSIVE_TYPES else \
        "application/octet-stream"
    response = send_file(service.open_file(row), mimetype=mimetype, as_attachment=True,
                         download_name=row.filename, max_age=0, etag=False)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = SANDBOX_CSP
    response.headers["Cache-Control"] = "private, no-store"
    return response
