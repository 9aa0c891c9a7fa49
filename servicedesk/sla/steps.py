"""The escalation step format: validation, and when each step of a clock is due.

A policy's ``steps`` are JSON (docs/architecture.md, "Escalation steps")::

    {"key": "resolution-breach", "metric": "resolution", "trigger": "breach",
     "delay_minutes": 0, "actions": ["notify_group_manager", "raise_level"],
     "level": 3, "working_hours": true}

Pure apart from one look-up (a step's ``group_id``); firing them is
``servicedesk.sla.escalation``'s business. Besides its steps, every clock has two
events of its own, its warning and its breach, planned like steps under the reserved
keys ``_warning`` / ``_breach`` (a step key cannot contain "_").
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from flask_babel import gettext as _

from servicedesk.errors import ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import Group
from servicedesk.sla.models import METRICS, SlaPolicy
from servicedesk.tickets.schemas import MAX_ID


# --- the step format ----------------------------------------------------------------

TRIGGERS = ("warning", "breach")
ACTIONS = ("notify_assignee", "notify_group_manager", "notify_requester", "raise_level",
           "next_line", "raise_priority")
NOTIFY_ACTIONS = ("notify_assignee", "notify_group_manager", "notify_requester")
STEP_FIELDS = ("key", "metric", "trigger", "delay_minutes", "actions", "level", "group_id",
               "working_hours")
KEY_PATTERN = re.compile(r"[a-z0-9-]{1,40}")
MAX_STEPS = 20
MAX_DELAY_MINUTES = 1_000_000
# Escalation levels a step may raise to (0: not escalated); the console shows each as
# a colour (docs/architecture.md, "Surfaces").
LEVELS = (1, 2, 3)

# The clock's own events, fired like steps under keys no step can have.
WARNING_EVENT = "_warning"
BREACH_EVENT = "_breach"
EVENT_OF = {WARNING_EVENT: "warning", BREACH_EVENT: "breach"}


# --- validation ---------------------------------------------------------------------


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_steps(steps, response_minutes: int | None,
                resolution_minutes: int | None) -> tuple[list[dict], dict]:
    """(normalised steps, errors): errors map "steps.<n>.<field>" to reasons.

    Normalised: every field present that applies (``delay_minutes`` for breach steps,
    ``level`` with raise_level, ``group_id`` when given), in one order, defaults
    filled in (``working_hours`` true, ``delay_minutes`` 0).
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(steps, list):
        return [], {"steps": [_("A list of escalation steps is required.")]}
    if len(steps) > MAX_STEPS:
        return [], {"steps": [_("At most %(count)s steps per policy.", count=MAX_STEPS)]}
    targets = {"response": response_minutes, "resolution": resolution_minutes}
    normalised, keys = [], set()
    for n, step in enumerate(steps):
        def bad(field: str | None, reason: str, n=n) -> None:
            errors.setdefault(f"steps.{n}.{field}" if field else f"steps.{n}", []).append(reason)

        if not isinstance(step, dict):
            bad(None, _("A step is an object with key, metric, trigger and actions."))
            continue
        for field in sorted(set(step) - set(STEP_FIELDS)):
            bad(field, _("Unknown field; a step has: %(fields)s.", fields=", ".join(STEP_FIELDS)))
        key, metric, trigger = step.get("key"), step.get("metric"), step.get("trigger")
        if key is None:
            bad("key", _("Missing data for required field."))
        elif not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            bad("key", _("1 to 40 characters: lower-case letters, digits and '-'."))
        elif key in keys:
            bad("key", _("Another step has the key %(key)s; keys are unique in a policy.",
                         key=repr(key)))
        else:
            keys.add(key)
        if metric is None:
            bad("metric", _("Missing data for required field."))
        elif metric not in METRICS:
            bad("metric", _("Must be one of: %(choices)s.", choices=", ".join(METRICS)))
        elif not targets[metric]:
            bad("metric", _("The policy has no %(metric)s target: this step would never fire.",
                            metric=metric))
        if trigger is None:
            bad("trigger", _("Missing data for required field."))
        elif trigger not in TRIGGERS:
            bad("trigger", _("Must be one of: %(choices)s.", choices=", ".join(TRIGGERS)))
        delay = step.get("delay_minutes", 0)
        if "delay_minutes" in step and trigger == "warning":
            bad("delay_minutes", _("Only a breach step has a delay (minutes after the due "
                                   "instant)."))
        elif not _is_int(delay) or not 0 <= delay <= MAX_DELAY_MINUTES:
            bad("delay_minutes", _("A whole number of minutes from 0 to %(max)s.",
                                   max=MAX_DELAY_MINUTES))
        actions = step.get("actions")
        if actions is None:
            bad("actions", _("Missing data for required field."))
            actions = []
        elif not isinstance(actions, list) or not actions:
            bad("actions", _("A non-empty list of: %(choices)s.", choices=", ".join(ACTIONS)))
            actions = []
        else:
            unknown = [a for a in actions if not isinstance(a, str) or a not in ACTIONS]
            if unknown:
                bad("actions", _("Unknown action(s) %(unknown)s; use: %(choices)s.",
                                 unknown=", ".join(map(repr, unknown)),
                                 choices=", ".join(ACTIONS)))
            elif len(set(actions)) != len(actions):
                bad("actions", _("Each action may be listed once."))
        level = step.get("level")
        if "raise_level" in actions:
            if level is None:
                bad("level", _("raise_level needs the level to raise to (1, 2 or 3)."))
            elif not _is_int(level) or level not in LEVELS:
                bad("level", _("Must be 1, 2 or 3."))
        elif "level" in step:
            bad("level", _("Only a step with the raise_level action has a level."))
        group_id = step.get("group_id")
        if "group_id" in step:
            if "next_line" not in actions:
                bad("group_id", _("Only a step with the next_line action names a group."))
            elif not _is_int(group_id) or not 1 <= group_id <= MAX_ID:
                bad("group_id", _("A group id."))
            else:
                group = db.session.get(Group, group_id)
                if group is None:
                    bad("group_id", _("Unknown group."))
                elif group.support_line < 2:
                    bad("group_id", _("%(group)s is a first-line group; next_line moves to "
                                      "line 2 or 3.", group=group.name))
        working_hours = step.get("working_hours", True)
        if not isinstance(working_hours, bool):
            bad("working_hours", _("Must be true or false."))
        if any(k.startswith(f"steps.{n}") for k in errors):
            continue
        clean = {"key": key, "metric": metric, "trigger": trigger}
        if trigger == "breach":
            clean["delay_minutes"] = delay
        clean["actions"] = list(actions)
        if "raise_level" in actions:
            clean["level"] = level
        if "group_id" in step:
            clean["group_id"] = group_id
        clean["working_hours"] = working_hours
        normalised.append(clean)
    return normalised, errors


def validate_steps(steps, response_minutes: int | None = None,
                   resolution_minutes: int | None = None) -> list[dict]:
    """The normalised steps, or a ValidationError naming each bad "steps.<n>.<field>"."""
    normalised, errors = check_steps(steps, response_minutes, resolution_minutes)
    if errors:
        raise ValidationError(_("The escalation steps are not valid."), fields=errors)
    return normalised


# --- what is due when -----------------------------------------------------------------


def step_instant(step: dict, clock) -> datetime | None:
    """When ``step`` is due on ``clock``: its warning instant, or due + delay (None while
    unknown: a paused clock has no due instant until it runs again)."""
    if step.get("trigger") == "warning":
        return clock.warning_at
    if clock.due_at is None:
        return None
    return clock.due_at + timedelta(minutes=step.get("delay_minutes") or 0)


def clock_plan(policy: SlaPolicy | None, clock) -> list[tuple[str, dict | None, datetime | None]]:
    """[(step_key, step | None, instant)] of ``clock``: its two events, then its steps."""
    plan = [(WARNING_EVENT, None, clock.warning_at), (BREACH_EVENT, None, clock.due_at)]
    for step in (policy.steps if policy is not None else None) or ():
        if isinstance(step, dict) and step.get("metric") == clock.metric and step.get("key"):
            plan.append((step["key"], step, step_instant(step, clock)))
    return plan


def next_step(policy: SlaPolicy | None, clock, fired: set[tuple[str, str]]
              ) -> tuple[datetime, str] | None:
    """(instant, step_key) of the earliest unfired thing of ``clock``; None if none is
    pending (a met clock fires nothing more). ``fired``: {(metric, step_key)}."""
    if clock.met_at is not None:
        return None
    pending = [(instant, key) for key, _step, instant in clock_plan(policy, clock)
               if instant is not None and (clock.metric, key) not in fired]
    return min(pending, default=None)
