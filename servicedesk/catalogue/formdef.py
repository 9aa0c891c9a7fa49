"""Request forms as data: checking a definition, and the marshmallow schema it builds.

A definition is ``{"fields": [field, ...]}``; each field is a dict::

    {"key": "model", "label": "Model", "type": "choice", "required": true,
     "help": "Which size", "options": ["13-inch", "15-inch"]}

``type`` is one of FIELD_TYPES; ``options`` (a list of distinct strings) is required
for ``choice`` and ``multichoice`` and refused for the others. A bad definition is a
422 naming the place (``form.fields.2.type``); bad answers a 422 naming
``answers.<key>``. Answers are stored as JSON values: text, number, true/false, an
ISO date string, an option, or a list of options.
"""

from __future__ import annotations

import re
from datetime import date

import marshmallow as ma
from flask_babel import gettext as _
from marshmallow import RAISE, fields, validate

from servicedesk.errors import ValidationError

FIELD_TYPES = ("text", "textarea", "number", "boolean", "date", "choice", "multichoice")
CHOICE_TYPES = frozenset({"choice", "multichoice"})
FIELD_KEYS = frozenset({"key", "label", "type", "required", "help", "options"})
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_FIELDS = 50
MAX_OPTIONS = 100
TEXT_MAX = {"text": 500, "textarea": 20_000}


def check_definition(definition, prefix: str = "form") -> dict:
    """The definition normalised (defaults filled in), or ValidationError naming each
    bad place. Accepts None / {} as an empty form."""
    if definition is None:
        return {"fields": []}
    errors: dict[str, list[str]] = {}
    if not isinstance(definition, dict) or set(definition) - {"fields"}:
        raise ValidationError(_("The form must be an object with a list of fields."),
                              fields={prefix: [_("Expected {\"fields\": [...]}.")]})
    items = definition.get("fields", [])
    if not isinstance(items, list):
        raise ValidationError(_("The form must be an object with a list of fields."),
                              fields={f"{prefix}.fields": [_("Must be a list.")]})
    if len(items) > MAX_FIELDS:
        raise ValidationError(_("A form has at most %(n)s fields.", n=MAX_FIELDS),
                              fields={f"{prefix}.fields": [_("Too many fields.")]})
    seen: set[str] = set()
    result = []
    for index, item in enumerate(items):
        here = f"{prefix}.fields.{index}"
        if not isinstance(item, dict):
            errors[here] = [_("Each field must be an object.")]
            continue
        for extra in sorted(set(item) - FIELD_KEYS):
            errors[f"{here}.{extra}"] = [_("Unknown property.")]
        key = item.get("key")
        if not isinstance(key, str) or not KEY.match(key):
            errors[f"{here}.key"] = [_("A lower-case name of letters, digits and _, "
                                       "starting with a letter (at most 40).")]
        elif key in seen:
            errors[f"{here}.key"] = [_("Duplicate key %(key)s.", key=key)]
        else:
            seen.add(key)
        label = item.get("label")
        if not isinstance(label, str) or not label.strip() or len(label) > 200:
            errors[f"{here}.label"] = [_("A label of 1 to 200 characters is required.")]
        kind = item.get("type")
        if not isinstance(kind, str) or kind not in FIELD_TYPES:
            kind = None if not isinstance(kind, str) else kind
            errors[f"{here}.type"] = [_("Unknown field type; one of: %(types)s.",
                                        types=", ".join(FIELD_TYPES))]
        required = item.get("required", False)
        if not isinstance(required, bool):
            errors[f"{here}.required"] = [_("Must be true or false.")]
        help_text = item.get("help", "")
        if not isinstance(help_text, str) or len(help_text) > 500:
            errors[f"{here}.help"] = [_("Help text is at most 500 characters.")]
        options = item.get("options")
        if kind in CHOICE_TYPES:
            if (not isinstance(options, list) or not options or len(options) > MAX_OPTIONS
                    or not all(isinstance(o, str) and o.strip() and len(o) <= 200
                               for o in options)):
                errors[f"{here}.options"] = [_("A choice needs a list of 1 to %(n)s options "
                                               "(texts of at most 200 characters).",
                                               n=MAX_OPTIONS)]
            elif len(set(options)) != len(options):
                errors[f"{here}.options"] = [_("Options must be distinct.")]
        elif options is not None and kind in FIELD_TYPES:
            errors[f"{here}.options"] = [_("Only choice fields have options.")]
        field = {"key": key, "label": label.strip() if isinstance(label, str) else label,
                 "type": kind, "required": required, "help": help_text}
        if kind in CHOICE_TYPES:
            field["options"] = options
        result.append(field)
    if errors:
        raise ValidationError(_("The form definition is invalid."), fields=errors)
    return {"fields": result}


class _Text(fields.String):
    """Text with surrounding space removed; empty counts as not given."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _field(spec: dict) -> fields.Field:
    kind, required = spec["type"], spec["required"]
    common = {"required": required, "allow_none": not required}
    if kind in TEXT_MAX:
        minimum = 1 if required else 0
        return _Text(validate=validate.Length(min=minimum, max=TEXT_MAX[kind]), **common)
    if kind == "number":
        return fields.Float(allow_nan=False, validate=validate.Range(-1e15, 1e15), **common)
    if kind == "boolean":
        if required:  # "I accept": a required checkbox must be ticked
            return fields.Boolean(validate=validate.Equal(True, error=_("Must be ticked.")),
                                  **common)
        return fields.Boolean(**common)
    if kind == "date":
        return fields.Date(**common)
    if kind == "choice":
        return fields.String(validate=validate.OneOf(spec["options"]), **common)
    return fields.List(fields.String(validate=validate.OneOf(spec["options"])),
                       validate=validate.Length(min=1 if required else 0,
                                                max=len(spec["options"])), **common)


def answers_schema(definition: dict) -> ma.Schema:
    """A marshmallow schema that validates answers to ``definition`` (unknown keys refused)."""
    spec = {f["key"]: _field(f) for f in definition.get("fields", [])}
    return ma.Schema.from_dict(spec, name="Answers")(unknown=RAISE)


def validate_answers(definition: dict, answers) -> dict:
    """The answers as stored (JSON values; empty optional answers left out), or a 422
    naming ``answers.<key>`` for each bad one."""
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        raise ValidationError(_("The answers must be an object keyed by field."),
                              fields={"answers": [_("Must be an object.")]})
    try:
        loaded = answers_schema(definition).load(answers)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_": exc.messages}
        raise ValidationError(
            _("Some answers are missing or invalid."),
            fields={f"answers.{key}": _reasons(value) for key, value in messages.items()},
        ) from None
    stored = {}
    for key, value in loaded.items():
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, float) and value.is_integer():
            value = int(value)
        stored[key] = value
    return stored


def _reasons(value) -> list[str]:
    if isinstance(value, dict):
        return [r for v in value.values() for r in _reasons(v)]
    if isinstance(value, (list, tuple)):
        return [r for v in value for r in _reasons(v)]
    return [str(value)]


def answers_from_form(definition: dict, form) -> dict:
    """What a browser's form submission stands for, as a JSON client would send it.

    Unticked checkboxes are absent from a submission: they mean false. Empty inputs
    are not given. Multi-choices arrive as repeated keys.
    """
    answers = {}
    for spec in definition.get("fields", []):
        name = f"answers.{spec['key']}"
        if spec["type"] == "multichoice":
            values = [v for v in form.getlist(name) if v != ""]
            if values:
                answers[spec["key"]] = values
        elif spec["type"] == "boolean":
            answers[spec["key"]] = form.get(name) in ("true", "on", "1", "yes")
        else:
            value = form.get(name, "")
            if value.strip() != "":
                answers[spec["key"]] = value
    return answers


def labelled_answers(definition: dict, answers: dict) -> list[tuple[str, object, str]]:
    """(label, value, type) for display, in the form's order; answers to fields since
    removed from the form come last, under their key."""
    rows, known = [], set()
    for spec in (definition or {}).get("fields", []):
        known.add(spec["key"])
        if spec["key"] in answers:
            rows.append((spec["label"], answers[spec["key"]], spec["type"]))
    rows += [(key, value, "text") for key, value in answers.items() if key not in known]
    return rows
