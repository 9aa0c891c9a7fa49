"""Notification rules, users' preferences, watchers and failed deliveries: REST
(``/api/v1/admin/notification-rules``, ``/api/v1/me/notification-preferences``,
``/api/v1/incidents/<number>/watchers``) and pages (``/admin/notification-rules``,
``/me/notifications``, ``/admin/notifications``). Thin: parse, call one service
function, show. Admin pages answer 404 to others, as the other admin pages do.
"""

from __future__ import annotations

import marshmallow as ma
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_babel import gettext
from flask_login import current_user, login_required
from marshmallow import EXCLUDE, RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.errors import ServiceError
from servicedesk.ldap.views import admin_only, me
from servicedesk.notify import preferences, rules, service
from servicedesk.notify.models import STATUSES
from servicedesk.tickets.schemas import MAX_ID

blp = api_blueprint("api_notify_rules", __name__,
                    "Notification rules (admins), your notification preferences, watchers.")
bp = Blueprint("notify_pages", __name__)


# --- schemas ------------------------------------------------------------------------------


class RuleSchema(ma.Schema):
    id = ma.fields.Integer(dump_only=True)
    event = ma.fields.String(required=True)
    recipient_kind = ma.fields.String(required=True)
    backend = ma.fields.String(load_default="email")
    enabled = ma.fields.Boolean(load_default=True)
    mutable = ma.fields.Boolean(load_default=True,
                                metadata={"description": "Whether users may mute it"})
    include_actor = ma.fields.Boolean(
        load_default=False,
        metadata={"description": "Tell the person who made the change too"})
    version = ma.fields.Integer(dump_only=True)


class RulePatchSchema(ma.Schema):
    version = ma.fields.Integer(metadata={"description": "The version you last read"})
    enabled = ma.fields.Boolean()
    mutable = ma.fields.Boolean()
    include_actor = ma.fields.Boolean()


class RuleListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RuleSchema))


class MuteSchema(ma.Schema):
    event = ma.fields.String(required=True)
    backend = ma.fields.String(load_default="email")
    muted = ma.fields.Boolean(required=True)
    label = ma.fields.String(dump_only=True)
    mutable = ma.fields.Boolean(dump_only=True)


class ChannelSchema(ma.Schema):
    backend = ma.fields.String(required=True)
    enabled = ma.fields.Boolean(required=True)
    available = ma.fields.Boolean(dump_only=True)
    locked = ma.fields.Boolean(dump_only=True)


class PreferencesSchema(ma.Schema):
    # Items ignore unknown keys, so what GET answers can be PUT back as it is (a typo
    # in a required key is still refused: the key is then missing).
    events = ma.fields.List(ma.fields.Nested(MuteSchema, unknown=EXCLUDE), load_default=list)
    channels = ma.fields.List(ma.fields.Nested(ChannelSchema, unknown=EXCLUDE),
                              load_default=list)


class WatchersSchema(ma.Schema):
    watchers = ma.fields.List(ma.fields.String())
    watching = ma.fields.Boolean()


# --- API ----------------------------------------------------------------------------------


def _id(value: int) -> int:
    return value if value <= MAX_ID else 0  # beyond the column: matches nothing


@blp.route("/admin/notification-rules")
class Rules(MethodView):
    @blp.response(200, RuleListSchema)
    def get(self):
        """Every notification rule (admins)."""
        return {"items": rules.list_rules(actor())}

    @blp.arguments(RuleSchema, unknown=RAISE)
    @blp.response(201, RuleSchema)
    def post(self, data):
        """Add a rule: ``event`` tells ``recipient_kind`` through ``backend`` (admins)."""
        return rules.create_rule(actor(), data)


@blp.route("/admin/notification-rules/<int:rule_id>")
class RuleOne(MethodView):
    @blp.response(200, RuleSchema)
    def get(self, rule_id):
        """One rule (admins)."""
        return rules.get_rule(actor(), _id(rule_id))

    @blp.arguments(RulePatchSchema, unknown=RAISE)
    @blp.response(200, RuleSchema)
    def patch(self, data, rule_id):
        """Switch a rule on or off, make it (non-)mutable; needs the ``version`` you
        read (409 if someone changed it since)."""
        return rules.update_rule(actor(), _id(rule_id), data)

    @blp.response(204)
    def delete(self, rule_id):
        """Remove a rule (admins)."""
        rules.delete_rule(actor(), _id(rule_id))


@blp.route("/me/notification-preferences")
class MyPreferences(MethodView):
    @blp.response(200, PreferencesSchema)
    def get(self):
        """What you are told about, per event and backend, and your channels. Lines an
        admin made mandatory have ``mutable: false``."""
        return preferences.preferences_of(actor())

    @blp.arguments(PreferencesSchema, unknown=RAISE)
    @blp.response(200, PreferencesSchema)
    def put(self, data):
        """Replace your mutes and channel choices (anything not listed is not muted).
        Muting a mandatory line is a 422 naming ``mute.<event>.<backend>``."""
        return preferences.set_preferences(actor(), data)


def _watchers_body(ticket, user) -> dict:
    names = [u.username for u in preferences.watchers_of(ticket)]
    return {"watchers": names, "watching": user.username in names}


def _incident(number: str):
    from servicedesk.incidents.service import get_incident

    return get_incident(actor(), number)


@blp.route("/incidents/<string:number>/watchers")
class Watchers(MethodView):
    @blp.response(200, WatchersSchema)
    def get(self, number):
        """Who watches the incident (anyone who may see it)."""
        return _watchers_body(_incident(number), actor())

    @blp.response(200, WatchersSchema)
    def post(self, number):
        """Watch the incident yourself: you are told about its replies and resolution."""
        incident = _incident(number)
        preferences.watch(actor(), incident)
        return _watchers_body(incident, actor())

    @blp.response(200, WatchersSchema)
    def delete(self, number):
        """Stop watching the incident."""
        incident = _incident(number)
        preferences.unwatch(actor(), incident)
        return _watchers_body(incident, actor())


# --- pages: rules -------------------------------------------------------------------------


def _rules_page(problem=None, status=200):
    return render_template(
        "notify/rules.html", rules=rules.list_rules(me()), problem=problem,
        events=rules.EVENTS, kinds=rules.KINDS, backends=rules.known_backends()), status


@bp.get("/admin/notification-rules")
@admin_only
def rules_page():
    return _rules_page()


@bp.post("/admin/notification-rules")
@admin_only
def add_rule():
    data = {key: request.form.get(key, "") for key in ("event", "recipient_kind", "backend")}
    data.update(enabled=True, mutable=request.form.get("mutable") == "1")
    try:
        rules.create_rule(me(), data)
    except ServiceError as exc:
        return _rules_page(exc, exc.status)
    flash(gettext("Rule added."), "success")
    return redirect(url_for("notify_pages.rules_page"))


@bp.post("/admin/notification-rules/<int:rule_id>")
@admin_only
def change_rule(rule_id):
    field = request.form.get("field")
    try:
        version = int(request.form.get("version", ""))
    except ValueError:
        version = None
    data = {"version": version}
    if field in ("enabled", "mutable", "include_actor"):
        data[field] = request.form.get("value") == "1"
    try:
        rules.update_rule(me(), _id(rule_id), data)
    except ServiceError as exc:
        return _rules_page(exc, exc.status)
    flash(gettext("Rule saved."), "success")
    return redirect(url_for("notify_pages.rules_page"))


@bp.post("/admin/notification-rules/<int:rule_id>/delete")
@admin_only
def remove_rule(rule_id):
    try:
        rules.delete_rule(me(), _id(rule_id))
    except ServiceError as exc:
        return _rules_page(exc, exc.status)
    flash(gettext("Rule removed."), "success")
    return redirect(url_for("notify_pages.rules_page"))


# --- pages: my preferences ----------------------------------------------------------------


@bp.route("/me/notifications", methods=["GET", "POST"])
@login_required
def my_notifications():
    g.no_store = True
    user = current_user._get_current_object()
    problem = None
    if request.method == "POST":
        current = preferences.preferences_of(user)
        data = {
            "events": [{"event": line["event"], "backend": line["backend"],
                        "muted": request.form.get(f"mute.{line['event']}.{line['backend']}")
                        == "1"}
                       for line in current["events"]],
            "channels": [{"backend": c["backend"],
                          "enabled": request.form.get(f"channel.{c['backend']}") == "1"}
                         for c in current["channels"] if c["available"] and not c["locked"]],
        }
        try:
            preferences.set_preferences(user, data)
        except ServiceError as exc:
            problem = exc
        else:
            flash(gettext("Your notification settings were saved."), "success")
            return redirect(url_for("notify_pages.my_notifications"))
    return render_template("notify/preferences.html", problem=problem,
                           settings=preferences.preferences_of(user)), (
        problem.status if problem else 200)


# --- pages: failed deliveries -------------------------------------------------------------


@bp.get("/admin/notifications")
@admin_only
def deliveries():
    status = request.args.get("status") or None
    after = request.args.get("after", type=int)
    items = service.list_notifications(
        me(), status, after_id=_id(after) if after and after > 0 else None, limit=50)
    return render_template("notify/deliveries.html", items=items, status=status,
                           statuses=STATUSES,
                           next_after=items[-1].id if len(items) == 50 else None)


@bp.post("/admin/notifications/<int:notification_id>/retry")
@admin_only
def retry(notification_id):
    service.retry_notification(me(), _id(notification_id))
    flash(gettext("Notification %(id)s queued again.", id=notification_id), "success")
    return redirect(url_for("notify_pages.deliveries", status=request.form.get("status") or None))
