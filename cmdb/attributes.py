"""Typed CI attributes: checking a class's attribute definitions and a CI's values.

A definition is a dict::

    {"name": "ip_address", "type": "ip_address", "label": "IP address",
     "required": true, "help": "", "choices": [...] (enum), "ci_class": "server" (reference)}

Values are stored in the CI's JSON ``attributes`` in a canonical form, so that equal
values compare equal in the database (attribute filters compare stored JSON):
strings, enum choices, ISO dates (``2026-01-31``), decimals as plain strings
(``"12.5"``), IP addresses compressed (``"2001:db8::1"``), references as the CI id.

Everything here is pure (no database); references are returned for the caller to
resolve (they may name a CI by id or by external key).
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _

ATTRIBUTE_TYPES = ("string", "integer", "decimal", "boolean", "date", "enum", "reference",
                   "ip_address")
NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_ATTRIBUTES = 100
MAX_TEXT = 2000
MAX_CHOICES = 200
MAX_ID = 2**31 - 1
# JSON numbers beyond 2**53 lose precision in most clients (and in JavaScript).
MAX_INTEGER = 2**53 - 1
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"^[+-]?\d{1,16}$")
_TRUE, _FALSE = {"true", "yes", "1", "y"}, {"false", "no", "0", "n"}
_DEF_KEYS = {"name", "type", "label", "required", "help", "choices", "ci_class"}


@dataclass(frozen=True)
class Reference:
    """A reference value still to resolve: a CI id (int) or external key (str)."""

    ref: int | str


def _text(value, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value.strip()) <= limit


def check_definitions(defs, taken: dict[str, str], field: str = "attributes") -> list[dict]:
    """The class's own attribute definitions, normalised, or a ValidationError.

    ``taken`` maps the names of inherited attributes to the class they come from: a
    class may not redefine them. Reference targets (``ci_class``) are returned as given
    for the caller to check against the classes that exist.
    """
    from servicedesk.errors import ValidationError

    errors: dict[str, list[str]] = {}
    if not isinstance(defs, list):
        raise ValidationError(_("The attribute definitions must be a list."),
                              fields={field: [_("Not a valid list.")]})
    if len(defs) > MAX_ATTRIBUTES:
        raise ValidationError(_("A class has at most %(n)s attributes.", n=MAX_ATTRIBUTES),
                              fields={field: [_("Too many attributes.")]})
    result, seen = [], set()
    for i, raw in enumerate(defs):
        where = f"{field}[{i}]"
        if not isinstance(raw, dict):
            errors[where] = [_("Not a valid attribute definition (an object).")]
            continue
        unknown = sorted(k for k in raw if k not in _DEF_KEYS)
        for key in unknown:
            errors[f"{where}.{key}"[:200]] = [_("Unknown field.")]
        name, type_ = raw.get("name"), raw.get("type")
        if not isinstance(name, str) or not NAME.match(name):
            errors[f"{where}.name"] = [_("Lower-case letters, digits and _, starting with a "
                                          "letter (at most 64).")]
        elif name in seen:
            errors[f"{where}.name"] = [_("Defined twice.")]
        elif name in taken:
            errors[f"{where}.name"] = [_("Already an attribute of %(cls)s.", cls=taken[name])]
        if type_ not in ATTRIBUTE_TYPES:
            errors[f"{where}.type"] = [_("One of: %(types)s.", types=", ".join(ATTRIBUTE_TYPES))]
        label = raw.get("label", name if isinstance(name, str) else "")
        if not _text(label, 120):
            errors[f"{where}.label"] = [_("A label of 1 to 120 characters.")]
        required = raw.get("required", False)
        if not isinstance(required, bool):
            errors[f"{where}.required"] = [_("Not a valid boolean.")]
        help_text = raw.get("help", "")
        if not isinstance(help_text, str) or len(help_text) > 500:
            errors[f"{where}.help"] = [_("Text of at most 500 characters.")]
        clean = {"name": name, "type": type_, "label": label.strip() if isinstance(label, str)
                 else label, "required": required, "help": help_text}
        choices = raw.get("choices")
        if type_ == "enum":
            if (not isinstance(choices, list) or not choices or len(choices) > MAX_CHOICES
                    or not all(_text(c, 120) for c in choices)
                    or len(set(choices)) != len(choices)):
                errors[f"{where}.choices"] = [_("An enum needs 1 to %(n)s distinct choices, "
                                                "each a text of 1 to 120 characters.",
                                                n=MAX_CHOICES)]
            else:
                clean["choices"] = list(choices)
        elif choices is not None:
            errors[f"{where}.choices"] = [_("Only enum attributes have choices.")]
        ci_class = raw.get("ci_class")
        if type_ == "reference":
            if ci_class is not None:
                if not isinstance(ci_class, str) or not NAME.match(ci_class):
                    errors[f"{where}.ci_class"] = [_("A class key.")]
                else:
                    clean["ci_class"] = ci_class
        elif ci_class is not None:
            errors[f"{where}.ci_class"] = [_("Only reference attributes name a class.")]
        if isinstance(name, str):
            seen.add(name)
        result.append(clean)
    if errors:
        raise ValidationError(_("The attribute definitions are not valid."), fields=errors)
    return result


def coerce(defn: dict, value, from_text: bool = False):
    """``value`` in its stored form for the definition ``defn``; ValueError(reason) if not.

    ``from_text``: every value came as text (a CSV cell), so "42", "true" and
    "2026-01-31" stand for what JSON would send as 42, true and "2026-01-31".
    """
    kind = defn["type"]
    if kind in ("string", "enum"):
        if not isinstance(value, str):
            raise ValueError(_("Not a valid string."))
        if len(value) > MAX_TEXT:
            raise ValueError(_("Longer than %(n)s characters.", n=MAX_TEXT))
        if kind == "enum" and value not in defn["choices"]:
            raise ValueError(_("Must be one of: %(choices)s.", choices=", ".join(defn["choices"])))
        return value
    if kind == "integer":
        if from_text and isinstance(value, str) and _INTEGER.match(value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or isinstance(value, bool) or abs(value) > MAX_INTEGER:
            raise ValueError(_("Not a valid integer (at most %(n)s either way).", n=MAX_INTEGER))
        return value
    if kind == "decimal":
        return _decimal(value)
    if kind == "boolean":
        if from_text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise ValueError(_("Not a valid boolean."))
        return value
    if kind == "date":
        if isinstance(value, str) and _DATE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                pass
        raise ValueError(_("Not a valid date (YYYY-MM-DD)."))
    if kind == "ip_address":
        if isinstance(value, str) and len(value) <= 64:
            try:
                return ipaddress.ip_address(value.strip()).compressed
            except ValueError:
                pass
        raise ValueError(_("Not a valid IP address."))
    if kind == "reference":
        if from_text and isinstance(value, str):
            value = value.strip()
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID:
            return Reference(value)
        if isinstance(value, str) and 0 < len(value) <= 200:
            return Reference(value)
        raise ValueError(_("A CI id or external key."))
    raise ValueError(_("Unknown attribute type."))


def _decimal(value) -> str:
    if isinstance(value, bool):
        raise ValueError(_("Not a valid decimal number."))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(_("Not a valid decimal number."))
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(_("Not a valid decimal number."))
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        raise ValueError(_("Not a valid decimal number.")) from None
    if not number.is_finite() or abs(number.adjusted()) > 30:
        raise ValueError(_("Not a valid decimal number."))
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def validate(defs: list[dict], values, class_name: str, from_text: bool = False,
             field: str = "attributes"):
    """(clean values, references, errors) for ``values`` against the definitions ``defs``.

    ``references`` maps attribute names to :class:`Reference` still to resolve; errors
    are keyed ``attributes.<name>``. A value of ``None`` (or, from text, ``""``) means
    "not set".
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(values, dict):
        return {}, {}, {field: [_("Not a valid object.")]}
    by_name = {d["name"]: d for d in defs}
    clean, refs = {}, {}
    for name, value in values.items():
        if value is None or (from_text and isinstance(value, str) and not value.strip()):
            continue  # not set (a change: removed)
        defn = by_name.get(name)
        if defn is None:
            errors[f"{field}.{name}"[:200]] = [
                _("Not an attribute of the class %(cls)s.", cls=class_name)]
            continue
        try:
            stored = coerce(defn, value, from_text)
        except ValueError as exc:
            errors[f"{field}.{name}"] = [str(exc)]
            continue
        if isinstance(stored, Reference):
            refs[name] = stored
        else:
            clean[name] = stored
    for defn in defs:
        if defn.get("required") and defn["name"] not in clean and defn["name"] not in refs \
                and f"{field}.{defn['name']}" not in errors:
            errors[f"{field}.{defn['name']}"] = [_("Missing data for required field.")]
    return clean, refs, errors


def display(defn: dict | None, value) -> str:
    """A stored value as people read it (history entries, pages)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
