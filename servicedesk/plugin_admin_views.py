"""Plugin administration over the API (``/api/v1/admin/plugins``) and the web
(``/admin/plugins``). Thin: each handler parses, calls one ``plugin_admin`` service
function and shows the result. Admins only (the API answers 403 to others, the pages
404 as the other admin pages). Nothing is installed from here: that is the CLI's job.
"""

from __future__ import annotations

import json

import marshmallow as ma
from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.views import MethodView
from flask_babel import gettext

from servicedesk import plugin_admin
from servicedesk.api import actor, api_blueprint
from servicedesk.errors import ServiceError, ValidationError
from servicedesk.ldap.views import admin_only, me

blp = api_blueprint("api_plugins", __name__,
                    "Plugins: list, enable, disable, settings (admins).")
bp = Blueprint("plugin_pages", __name__, url_prefix="/admin/plugins")


class PluginSchema(ma.Schema):
    name = ma.fields.String()
    version = ma.fields.String(allow_none=True)
    hooks = ma.fields.List(ma.fields.String())
    enabled = ma.fields.Boolean()
    loaded = ma.fields.Boolean(metadata={"description": "Its code is loaded in this process"})
    healthy = ma.fields.Boolean()
    failures = ma.fields.Integer(metadata={"description": "Failures counted by this process"})
    last_error = ma.fields.String(allow_none=True)
    settings = ma.fields.Dict(metadata={"description": 'Secrets appear as "set" / "not set"'})
    settings_fields = ma.fields.List(ma.fields.Dict())
    package = ma.fields.String(allow_none=True)
    installed_by = ma.fields.String(allow_none=True)
    installed_at = ma.fields.DateTime(allow_none=True)


class PluginListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(PluginSchema))


# --- API ----------------------------------------------------------------------------------


@blp.route("/admin/plugins")
class Plugins(MethodView):
    @blp.response(200, PluginListSchema)
    def get(self):
        """Every plugin: loaded ones and those recorded by ``plugins install`` (admins)."""
        return {"items": plugin_admin.list_plugins(actor())}


@blp.route("/admin/plugins/<string:name>")
class PluginOne(MethodView):
    @blp.response(200, PluginSchema)
    def get(self, name):
        """One plugin (admins)."""
        return plugin_admin.get_plugin(actor(), name)


@blp.route("/admin/plugins/<string:name>/enable")
class PluginEnable(MethodView):
    @blp.response(200, PluginSchema)
    def post(self, name):
        """Enable a plugin: its hooks fire again, in every process within seconds."""
        return plugin_admin.set_enabled(actor(), name, True)


@blp.route("/admin/plugins/<string:name>/disable")
class PluginDisable(MethodView):
    @blp.response(200, PluginSchema)
    def post(self, name):
        """Disable a plugin: its hooks stop firing, in every process within seconds."""
        return plugin_admin.set_enabled(actor(), name, False)


@blp.route("/admin/plugins/<string:name>/settings")
class PluginSettings(MethodView):
    @blp.response(200, PluginSchema)
    def put(self, name):
        """Save settings (a JSON object), validated by the plugin's schema. Secrets
        left out or empty keep their stored value."""
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ValidationError(gettext("The body must be a JSON object."),
                                  fields={"json": [gettext("Must be an object.")]})
        return plugin_admin.update_settings(actor(), name, body)


# --- pages --------------------------------------------------------------------------------


@bp.get("")
@admin_only
def index():
    return render_template("plugins/index.html", plugins=plugin_admin.list_plugins(me()))


@bp.post("/<string:name>/toggle")
@admin_only
def toggle(name):
    enable = request.form.get("enabled") == "1"
    plugin_admin.set_enabled(me(), name, enable)
    flash(gettext("Plugin %(name)s enabled.", name=name) if enable
          else gettext("Plugin %(name)s disabled.", name=name), "success")
    return redirect(url_for("plugin_pages.index"))


@bp.route("/<string:name>/settings", methods=["GET", "POST"])
@admin_only
def settings(name):
    plugin = plugin_admin.get_plugin(me(), name)
    problem, values = None, dict(plugin.settings)
    if request.method == "POST":
        values = dict(request.form)
        try:
            values = _form_values(plugin)
            plugin_admin.update_settings(me(), name, values)
        except ServiceError as exc:
            problem = exc
        else:
            flash(gettext("Settings of %(name)s saved.", name=name), "success")
            return redirect(url_for("plugin_pages.settings", name=name))
    status = problem.status if problem else 200
    return render_template("plugins/settings.html", plugin=plugin, values=values,
                           json_types=JSON_TYPES,
                           problem=problem), status


# Settings fields edited as JSON text on the page (a list of endpoints, a map...).
JSON_TYPES = frozenset({"list", "dict", "nested", "tuple"})


def _form_values(plugin) -> dict:
    """The form's text as JSON values the schema can load (checkboxes are booleans,
    lists and maps are JSON text, empty optional fields are left out so defaults apply).
    Text that is not JSON where JSON is expected is a 422 naming the field."""
    values, errors = {}, {}
    for spec in plugin.settings_fields:
        name = spec["name"]
        if spec["type"] == "boolean":
            values[name] = request.form.get(name) == "1"
            continue
        text = request.form.get(name, "")
        if text.strip() == "" and not spec["required"]:
            continue
        if spec["type"] in JSON_TYPES:
            try:
                values[name] = json.loads(text)
            except ValueError as exc:
                errors[name] = [gettext("Not valid JSON: %(error)s", error=str(exc))]
            continue
        values[name] = text
    if errors:
        raise ValidationError(gettext("Some settings are not valid JSON."), fields=errors)
    return values


@bp.app_template_filter("settings_json")
def settings_json(value) -> str:
    """A list or map setting as the page's JSON text."""
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


@bp.before_request
def _no_store():
    g.no_store = True
