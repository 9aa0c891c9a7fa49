"""Incident pages: the employee portal and the agent console (placeholder shell)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("incidents", __name__)


@bp.route("/portal")
@login_required
def portal():
    return render_template("error.html", status=200, message="portal")


@bp.route("/portal/new")
@login_required
def new_incident():
    return render_template("error.html", status=200, message="new")


@bp.route("/console")
@login_required
def console():
    return render_template("error.html", status=200, message="console")
