"""Sign-in, sign-out and the home redirect."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from servicedesk.errors import TooManyRequests, ValidationError
# Directory users' passwords are checked by the directory; everyone else's here.
from servicedesk.ldap.login import authenticate

bp = Blueprint("web", __name__)


def _safe_next(target: str | None) -> str | None:
    # Only same-site paths: never bounce a fresh login to another host.
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(user) -> str:
    return url_for("incidents.console") if user.is_staff else url_for("incidents.portal")


@bp.route("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("web.login"))
    return redirect(home_for(current_user))


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        try:
            user = authenticate(request.form.get("username", ""), request.form.get("password", ""),
                                request.remote_addr or "unknown")
        except TooManyRequests:
            error, status = _("Too many failed sign-in attempts; try again in a few minutes."), 429
        except ValidationError:
            error, status = _("Unknown username or wrong password."), 401
        else:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or home_for(user))
    return render_template("login.html", error=error), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    return redirect(url_for("web.login"))
