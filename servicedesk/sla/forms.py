"""The SLA admin pages' forms: what a person types <-> what the API's schemas take.

Only the *notation* lives here. A calendar's week is typed as one line per weekday
("09:00-12:00, 13:00-17:00"), its holidays one per line ("2026-12-25" or
"2026-12-24..2026-12-31"), lists of ids as "1, 2"; these are turned into the JSON an
API client would send. Whether the result makes sense (times of day, overlaps, time
zones, statuses, references, targets) is decided by the same marshmallow schemas and
``servicedesk.sla.admin`` / ``servicedesk.sla.ola`` service functions as for the API,
so both refuse the same input with the same reasons. A line this module cannot even
read is reported under its own field, and nothing reaches the service then.
"""

from __future__ import annotations

import json
import re

from flask_babel import gettext

WEEKDAYS = range(7)  # 0 = Monday .. 6 = Sunday, as stored
_INTERVAL = re.compile(r"^\s*([^\s\-–]+)\s*[-–]\s*([^\s\-–]+)\s*$")
_INTEGER = re.compile(r"^-?\d{1,18}$")


class FormError(Exception):
    """The form's notation could not be read: {field: [reasons]}."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__(fields)
        self.fields = fields


# --- reading a submitted form ----------------------------------------------------------


def _integer(value: str):
    """Digits become an int; anything else stays a string, for the schema to refuse
    with its own reason (as it would refuse a JSON client's string)."""
    value = value.strip()
    return int(value) if _INTEGER.match(value) else value


def _optional_integer(form, key: str):
    """An empty field means "none" (null)."""
    value = form.get(key, "")
    return None if value.strip() == "" else _integer(value)


def _integer_list(text: str, field: str, errors: dict) -> list:
    items = [part.strip() for part in re.split(r"[,\s]+", text or "") if part.strip()]
    bad = [item for item in items if not _INTEGER.match(item)]
    if bad:
        errors[field] = [gettext("Not whole numbers: %(values)s.", values=", ".join(bad))]
    return [int(item) for item in items if _INTEGER.match(item)]


def parse_week(form) -> tuple[dict, dict]:
    """(week as stored JSON, errors) from the fields ``day_0`` .. ``day_6``."""
    week, errors = {}, {}
    for day in WEEKDAYS:
        text = form.get(f"day_{day}", "")
        intervals = []
        for part in re.split(r"[,;]", text):
            if not part.strip():
                continue
            match = _INTERVAL.match(part)
            if match is None:
                errors[f"day_{day}"] = [gettext(
                    "%(part)s is not an interval: write them as 09:00-12:00, 13:00-17:00.",
                    part=repr(part.strip()))]
                break
            intervals.append([match[1], match[2]])
        if intervals:
            week[str(day)] = intervals
    return week, errors


def parse_holidays(text: str) -> list:
    """One holiday per line: a date, or an inclusive range "first..last"."""
    holidays = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        if ".." in line:
            first, _sep, last = line.partition("..")
            holidays.append([first.strip(), last.strip()])
        else:
            holidays.append(line)
    return holidays


def calendar_payload(form, *, update: bool) -> dict:
    week, errors = parse_week(form)
    if errors:
        raise FormError(errors)
    data = {"name": form.get("name", ""), "timezone": form.get("timezone", "").strip(),
            "week": week, "holidays": parse_holidays(form.get("holidays", ""))}
    if update:
        data["version"] = _integer(form.get("version", ""))
    return data


def policy_payload(form, *, update: bool, steps: bool) -> dict:
    """``steps``: whether the schema takes steps (then the JSON textarea is read)."""
    errors: dict = {}
    data = {
        "name": form.get("name", ""),
        "active": "active" in form,
        "kinds": form.getlist("kinds"),
        "priorities": [_integer(p) for p in form.getlist("priorities")],
        "service_ids": _integer_list(form.get("service_ids", ""), "service_ids", errors),
        "category_ids": [_integer(c) for c in form.getlist("category_ids")],
        "response_minutes": _optional_integer(form, "response_minutes"),
        "resolution_minutes": _optional_integer(form, "resolution_minutes"),
        "calendar_id": _optional_integer(form, "calendar_id"),
        "pause_statuses": form.getlist("pause_statuses"),
        "warning_percent": _optional_integer(form, "warning_percent"),
        "position": _optional_integer(form, "position"),
    }
    if steps:
        text = form.get("steps", "").strip()
        try:
            data["steps"] = json.loads(text) if text else []
        except ValueError as exc:
            errors["steps"] = [gettext("Not valid JSON: %(reason)s.", reason=str(exc))]
    if errors:
        raise FormError(errors)
    if not update:
        # Left empty on a new policy: the defaults (first free position, 75 %).
        data = {k: v for k, v in data.items()
                if not (k in ("position", "warning_percent", "calendar_id") and v is None)}
    else:
        data["version"] = _integer(form.get("version", ""))
    return data


def ola_payload(form, *, update: bool) -> dict:
    data = {
        "group_id": _optional_integer(form, "group_id"),
        "target_minutes": _optional_integer(form, "target_minutes"),
        "response_minutes": _optional_integer(form, "response_minutes"),
        "calendar_id": _optional_integer(form, "calendar_id"),
        "pause_statuses": form.getlist("pause_statuses"),
        "warning_percent": _optional_integer(form, "warning_percent"),
        "active": "active" in form,
    }
    if not update:
        data = {k: v for k, v in data.items()
                if not (k in ("group_id", "target_minutes", "calendar_id", "warning_percent")
                        and v is None)}
    else:
        data["version"] = _integer(form.get("version", ""))
    return data


# --- showing a stored row in a form ----------------------------------------------------


def week_lines(week: dict) -> dict[str, str]:
    """{"day_0": "09:00-12:00, 13:00-17:00", ...} from the stored week."""
    return {f"day_{day}": ", ".join(f"{a}-{b}" for a, b in week.get(str(day), []))
            for day in WEEKDAYS}


def holiday_lines(holidays: list) -> str:
    return "\n".join(h if isinstance(h, str) else f"{h[0]}..{h[1]}" for h in holidays or [])


def calendar_values(row) -> dict:
    return {"name": row.name, "timezone": row.timezone, **week_lines(row.week),
            "holidays": holiday_lines(row.holidays), "version": row.version}


def _text(value) -> str:
    return "" if value is None else str(value)


def policy_values(row) -> dict:
    return {
        "name": row.name, "active": row.active, "kinds": list(row.kinds),
        "priorities": [str(p) for p in row.priorities],
        "service_ids": ", ".join(str(s) for s in row.service_ids),
        "category_ids": [str(c) for c in row.category_ids],
        "response_minutes": _text(row.response_minutes),
        "resolution_minutes": _text(row.resolution_minutes),
        "calendar_id": _text(row.calendar_id), "pause_statuses": list(row.pause_statuses),
        "warning_percent": _text(row.warning_percent), "position": _text(row.position),
        "steps": json.dumps(row.steps or [], indent=2, ensure_ascii=False),
        "version": row.version,
    }


def ola_values(row) -> dict:
    return {
        "group_id": _text(row.group_id), "target_minutes": _text(row.target_minutes),
        "response_minutes": _text(row.response_minutes),
        "calendar_id": _text(row.calendar_id), "pause_statuses": list(row.pause_statuses),
        "warning_percent": _text(row.warning_percent), "active": row.active,
        "version": row.version,
    }


LIST_FIELDS = ("kinds", "priorities", "category_ids", "pause_statuses")


def submitted(form) -> dict:
    """What the user typed, to show again next to the reasons it was refused."""
    values = {key: form.get(key, "") for key in form}
    for key in LIST_FIELDS:
        values[key] = form.getlist(key)
    values["active"] = "active" in form
    return values


# --- labels ----------------------------------------------------------------------------


def N_(message: str) -> str:
    """Mark ``message`` for extraction; translated where it is shown (``label``)."""
    return message


FIELD_LABELS = {
    "name": N_("Name"),
    "timezone": N_("Time zone"),
    "week": N_("Working hours"),
    "holidays": N_("Holidays"),
    "position": N_("Position"),
    "active": N_("Active"),
    "kinds": N_("Ticket kinds"),
    "priorities": N_("Priorities"),
    "service_ids": N_("Services"),
    "category_ids": N_("Categories"),
    "response_minutes": N_("Response target (minutes)"),
    "resolution_minutes": N_("Resolution target (minutes)"),
    "target_minutes": N_("Resolution target (minutes)"),
    "calendar_id": N_("Calendar"),
    "group_id": N_("Group"),
    "pause_statuses": N_("Pause statuses"),
    "warning_percent": N_("Warning at (percent of the target)"),
    "steps": N_("Escalation steps"),
    "version": N_("Version"),
    "_schema": N_("Form"),
}


def label(key: str, day_names: dict | None = None) -> str:
    """The translated label of a field; weekday fields by the locale's day name."""
    if key.startswith("day_") and day_names is not None and key[4:].isdigit():
        return day_names.get(int(key[4:]), key)
    if key.startswith("steps."):
        return f"{gettext(FIELD_LABELS['steps'])} {key[6:]}"
    return gettext(FIELD_LABELS[key]) if key in FIELD_LABELS else key


def flatten(messages) -> dict[str, list[str]]:
    """marshmallow's messages ({field: [..] | {index: [..]}}) as {field: [reasons]}."""

    def reasons(value):
        if isinstance(value, dict):
            return [r for v in value.values() for r in reasons(v)]
        if isinstance(value, (list, tuple)):
            return [r for v in value for r in reasons(v)]
        return [str(value)]

    if not isinstance(messages, dict):
        return {"_schema": reasons(messages)}
    return {str(name): reasons(value) for name, value in messages.items()}
