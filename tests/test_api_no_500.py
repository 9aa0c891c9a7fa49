"""Every operation of the OpenAPI document, fed hostile input, answers < 500.

The walk reads ``GET /api/v1/openapi.json`` and sends each operation a fixed, bounded set
of bad inputs, as an admin and as a plain requester: path parameters that do not exist,
are huge, negative, not numbers, unicode or ``../``; query strings with unknown keys,
wrong types, empty values, huge numbers and repeated keys; bodies that are not JSON, a
JSON list, ``null``, ``{}`` and objects whose every declared field is of the wrong type,
at its extreme, or carries a NUL character. Every answer must be < 500 and every 4xx
must carry the project's error shape ``{"error": {"code", "message", "fields"}}``.

A little data is seeded first (incident, service + offering, request, problem, change) so
that paths naming an existing record get the hostile bodies too; the admin also gets one
field at a time hostile, the required others plausible, to get past the schema to the
service and the database. No operation is skipped: the LDAP test/sync endpoints answer
from the (absent) stored configuration, notifications only go to the outbox, and the
plugin enable/disable endpoints only change a database row. The full matrix runs on
SQLite; PostgreSQL gets every path and body, the per-field modes where its types bite
(extreme, minimal, NaN, NUL, just past int4) and the query values it stores differently,
but not the schema-only ones (wrong type, unpaired surrogate) nor the requester's query
walk: both walks together stay well under 30 s.
Plugin settings (their schemas are not in the OpenAPI document) and the chat plugin's
``POST /chat/command`` get a hostile set of their own; every path gets the methods it
does not have (405 in the error shape).
"""

from __future__ import annotations

import base64
import json
import re
import traceback

import pytest

from servicedesk.extensions import db
from test_catalogue import make_offering, make_service


def _cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


BAD_PATH_VALUES = ["999999", str(2**63), "-1", "abc", "\u00fc\U0001F4A5", "..%2F..%2Fetc", "0",
                   "INC" + str(2**63), "CHG" + "9" * 30, "PRB-1", "REQ000000", "%00"]
BAD_QUERY_VALUES = ["", "abc", str(2**63), "-1", "\x00", "\U0001F4A5" * 300,
                    "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "2026-13-45",
                    "0001-01-01", "9999-12-31", "0001-01", "9999-12",
                    "INC" + str(2**63),
                    # cursors shaped like the server's (base64 JSON lists), with bad values
                    _cursor(["0001-01-01T00:00:00+14:00", 2**63]), _cursor([{}, None, "x"])]
# PostgreSQL's share of the per-parameter walk: what its integer and text types refuse.
PG_QUERY_VALUES = [str(2**63), "-1", "\x00", "0001-01-01T00:00:00+14:00", "INC" + str(2**63)]
NOT_JSON = "{not json"
# One field hostile at a time: every mode on SQLite, the ones PostgreSQL's types bite on there.
FIELD_MODES = {True: ("wrong", "extreme", "nul", "minimal", "nan", "surrogate", "ref"),
               False: ("extreme", "minimal", "nan", "nul", "ref")}


def _assert_clean(failures: list, label: str, response) -> None:
    status = response.status_code
    if status >= 500:
        failures.append(f"{label} -> {status} {response.get_data(as_text=True)[:200]}")
    elif status >= 400:
        body = response.get_json(silent=True)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict) or set(error) != {"code", "message", "fields"}:
            failures.append(f"{label} -> {status} without the error shape: "
                            f"{response.get_data(as_text=True)[:200]}")


def _where(exc: Exception) -> str:
    """The exception and the last frame of our own code that raised it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/servicedesk/" in f.filename and "site-packages" not in f.filename]
    place = "?"
    if frames:
        place = f"{frames[-1].filename.split('/servicedesk/')[-1]}:{frames[-1].lineno}"
    return f"{type(exc).__name__}: {str(exc)[:120]} at {place}"


# --- the bodies -------------------------------------------------------------------------


def _schema(spec: dict, schema: dict | None) -> dict:
    seen = 0
    while schema and "$ref" in schema and seen < 10:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        seen += 1
    if schema and "allOf" in schema:
        merged = {"type": "object", "properties": {}}
        for part in schema["allOf"]:
            merged["properties"].update(_schema(spec, part).get("properties", {}))
        return merged
    return schema or {}


def _value(spec: dict, schema: dict, mode: str, depth: int = 0):
    """One value for a declared field: ``wrong`` type, ``extreme``, ``nul``, ``minimal`` or
    ``plausible`` (what a well-meaning client would send)."""
    schema = _schema(spec, schema)
    kind = schema.get("type") or ("object" if "properties" in schema else None)
    if mode == "surrogate":  # JSON can carry an unpaired surrogate; no database stores it
        return ["\ud800"] if kind == "array" else {"k": "\udfff"} if kind == "object" \
            else "a\ud800"
    if mode == "ref":  # just past PostgreSQL's integer; a ticket number past any id
        return {"integer": 2**31, "number": 2**31, "string": "INC" + "9" * 20,
                "boolean": 2, "array": [2**31, "INC" + "9" * 20], "object": {"k": 2**31}}.get(
            kind, 2**31)
    if mode == "nan":  # Python's JSON parser reads NaN; JSON columns do not
        return [float("nan")] if kind == "array" else \
            {"k": float("nan")} if kind == "object" else float("nan")
    if mode == "plausible":
        if schema.get("enum"):
            return schema["enum"][0]
        if kind == "string":
            return {"date-time": "2026-12-01T10:00:00+00:00", "date": "2026-12-01"}.get(
                schema.get("format"), "x")
        if kind == "object" and schema.get("properties"):
            return {n: _value(spec, sub, mode, depth + 1)
                    for n, sub in schema["properties"].items()
                    if n in schema.get("required", [])}
        return {"integer": 1, "number": 1, "boolean": True, "array": [],
                "object": {}}.get(kind, "x")
    if mode == "wrong":
        return {"integer": "abc", "number": "abc", "string": {"a": 1}, "boolean": [True],
                "array": "x", "object": [1]}.get(kind, [[]])
    if kind == "integer":
        if mode == "extreme":
            return schema.get("maximum", 2**63)
        return schema.get("minimum", -(2**63) - 1) if mode == "minimal" else -1
    if kind == "number":
        return 1e308 if mode == "extreme" else -1e308 if mode == "minimal" else -1
    if kind == "boolean":
        return mode != "minimal"
    if kind == "string":
        if mode == "nul":
            return "a\x00b"
        if schema.get("enum"):
            return schema["enum"][0]
        if schema.get("format") == "date-time":
            # Both overflow the years 1-9999 once converted to UTC.
            return "9999-12-31T23:59:59-14:00" if mode == "extreme" \
                else "0001-01-01T00:00:00+14:00"
        if schema.get("format") == "date":
            return "9999-12-31" if mode == "extreme" else "0001-01-01"
        if mode == "extreme":
            return "x" * min(schema.get("maxLength", 10000), 10000)
        return " "
    if kind == "array":
        if mode == "minimal" or depth > 2:
            return []
        item = _value(spec, schema.get("items") or {"type": "string"}, mode, depth + 1)
        return [item] * min(schema.get("maxItems", 3), 3)
    if kind == "object":
        if mode == "minimal" or depth > 2:
            return {}
        props = schema.get("properties")
        if props:
            return {name: _value(spec, sub, mode, depth + 1) for name, sub in props.items()}
        extra = schema.get("additionalProperties")
        sub = extra if isinstance(extra, dict) else {"type": "string"}
        return {"a\x00" if mode == "nul" else "k": _value(spec, sub, mode, depth + 1)}
    # Untyped (fields.Raw and friends).
    return {"extreme": 2**63, "nul": "\x00", "minimal": None}.get(mode, [[]])


def _bodies(spec: dict, method: str, operation: dict) -> list[tuple[str, dict]]:
    """(label, request kwargs) for each hostile body of an operation (an undeclared body
    of a POST/PUT/PATCH gets the shapeless ones: it may be read as raw JSON)."""
    if "requestBody" not in operation and method not in ("POST", "PUT", "PATCH"):
        return []
    content = (operation.get("requestBody") or {}).get("content", {})
    schema = _schema(spec, (content.get("application/json") or {}).get("schema"))
    props = schema.get("properties", {})
    bodies = [("not-json", {"data": NOT_JSON, "content_type": "application/json"}),
              ("list", {"json": [1, "a"]}),
              ("null", {"data": "null", "content_type": "application/json"}),
              ("string", {"json": "x"}),
              ("empty", {"json": {}})]
    for mode in ("wrong", "extreme", "nul", "minimal") if props else ():
        bodies.append((mode, {"json": {name: _value(spec, sub, mode)
                                       for name, sub in props.items()}}))
    # Every writable field at once at its extreme / minimum (fields interact: spans,
    # windows, dates that overflow once shifted).
    writable = {n: sub for n, sub in props.items() if not _schema(spec, sub).get("readOnly")
                and "not writable" not in _schema(spec, sub).get("description", "").lower()}
    for mode in ("extreme", "minimal") if writable != props else ():
        bodies.append((f"writable {mode}", {"json": {name: _value(spec, sub, mode)
                                                     for name, sub in writable.items()}}))
    return bodies


def _field_bodies(spec: dict, operation: dict, modes) -> list[tuple[str, dict]]:
    """One field at a time hostile, the required others plausible: gets past the schema's
    checks of the other fields, to where the service and the database look at it."""
    if "requestBody" not in operation:
        return []
    content = operation["requestBody"].get("content", {})
    schema = _schema(spec, (content.get("application/json") or {}).get("schema"))
    props = schema.get("properties", {})
    base = {n: _value(spec, props[n], "plausible") for n in schema.get("required", [])
            if n in props}
    bodies = []
    for name, sub in props.items():
        for mode in modes:
            body = json.dumps({**base, name: _value(spec, sub, mode)})
            bodies.append((f"field {name} {mode}",
                           {"data": body, "content_type": "application/json"}))
    return bodies


# --- the operations ---------------------------------------------------------------------


def _operations(spec: dict) -> list[tuple[str, str, dict, list]]:
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            params = item.get("parameters", []) + operation.get("parameters", [])
            found.append((method.upper(), path, operation, params))
    # Deletions last, so that every other operation still finds the seeded records.
    return sorted(found, key=lambda op: op[0] == "DELETE")


def _existing(path: str, name: str, seeded: dict) -> str:
    if name == "number":
        for prefix, key in (("/changes", "change"), ("/problems", "problem"),
                            ("/requests", "request")):
            if path.startswith("/api/v1" + prefix):
                return seeded[key]
        return seeded["incident"]
    return str(seeded.get(name, "1"))


def _fill(path: str, values: dict) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


@pytest.fixture
def seeded(world, desk):
    service = make_service(world, desk.admin, owner_group="Service Desk")
    offering = make_offering(world, desk.admin, service["id"], fulfilment_group="Service Desk")
    request = world.api(desk.employee).post("/requests", json={
        "offering_id": offering["id"],
        "answers": {"model": "15-inch", "reason": "Mine broke"}})
    assert request.status_code == 201, request.get_json()
    admin = world.api(desk.admin)
    problem = admin.post("/problems", json={"title": "VPN drops"})
    assert problem.status_code == 201, problem.get_json()
    change = admin.post("/changes", json={"title": "Patch the mail server"})
    assert change.status_code == 201, change.get_json()
    plugins = admin.get("/admin/plugins").get_json()["items"]
    return {
        "incident": world.incident(desk.employee)["number"],
        "request": request.get_json()["number"],
        "problem": problem.get_json()["number"],
        "change": change.get_json()["number"],
        "service_id": service["id"], "offering_id": offering["id"],
        # PATCH /users/{username} deactivates and demotes: not the requester walking.
        "username": world.user("requester", "victim").username,
        "name": plugins[0]["name"],
        "kind": "incident", "flavour": "openldap",
    }


def test_no_hostile_input_makes_any_operation_fail(app, backend, world, desk, seeded):
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    seeded = {**seeded, "other": seeded["incident"]}
    apis = {"admin": world.api(desk.admin), "requester": world.api(desk.employee)}
    full = backend == "sqlite"
    failures: list[str] = []
    operations = _operations(spec)
    assert len(operations) > 100  # the walk really covers the document

    for method, path, operation, params in operations:
        path_names = [p["name"] for p in params if p["in"] == "path"]
        query_names = [p["name"] for p in params if p["in"] == "query"]
        bodies = _bodies(spec, method, operation) or [("no-body", {})]
        existing = _fill(path, {n: _existing(path, n, seeded) for n in path_names})
        for who, api in apis.items():
            def send(url, label, **kwargs):
                try:
                    response = api.client.open(url, method=method, headers=api._headers(),
                                               **kwargs)
                except Exception as exc:  # noqa: BLE001  (an error no handler turned into a 500)
                    db.session.rollback()
                    failures.append(f"{who} {method} {url} {label} -> 500 {_where(exc)}")
                    return
                _assert_clean(failures, f"{who} {method} {url} {label}", response)

            # Hostile path parameters, one at a time, the others existing.
            for name in path_names:
                for bad in BAD_PATH_VALUES:
                    values = {n: _existing(path, n, seeded) for n in path_names}
                    values[name] = bad
                    send(_fill(path, values), f"path {name}={bad!r}", **bodies[-1][1])
            # Hostile bodies at the existing record (and at a missing one for the admin).
            targets = [existing]
            if path_names and who == "admin":
                targets.append(_fill(path, {n: "999999" for n in path_names}))
            for url in targets:
                for label, kwargs in bodies:
                    send(url, f"body {label}", **kwargs)
            if who == "admin":  # (the requester too found nothing more, for 3 s)
                for label, kwargs in _field_bodies(spec, operation, FIELD_MODES[full]):
                    send(existing, label, **kwargs)
            if not full and who != "admin":
                continue
            # Hostile query strings.
            extra = {} if "requestBody" not in operation else {"json": {}}
            send(existing, "unknown query key", query_string={"zzz_unknown": "1"}, **extra)
            if query_names:
                send(existing, "repeated keys",
                     query_string=[(n, v) for n in query_names for v in ("1", "2")], **extra)
                for bad in BAD_QUERY_VALUES:
                    send(existing, f"all query = {bad[:10]!r}",
                         query_string={n: bad for n in query_names}, **extra)
                if who == "admin":
                    for name in query_names:
                        for bad in BAD_QUERY_VALUES if full else PG_QUERY_VALUES:
                            send(existing, f"query {name}={bad[:10]!r}",
                                 query_string={name: bad}, **extra)

    # Methods a path does not have: 405 in the error shape (SQLite: routing is the same).
    for path, item in spec["paths"].items() if full else ():
        url = re.sub(r"\{[a-z_]+\}", "1", path)
        for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - {m.upper() for m in item}:
            response = world.client.open(url, method=method, headers=apis["admin"]._headers())
            _assert_clean(failures, f"admin {method} {url} (not an operation)", response)

    assert not failures, "\n".join(failures)


# --- plugin settings and the chat command (not in the OpenAPI document's schemas) ---------

SETTING_VALUES = {
    "wrong": {"string": {"a": 1}, "list": "x", "integer": "abc", "dict": [1], "boolean": [1]},
    "extreme": {"string": "x" * 10000, "list": ["x" * 10000] * 3, "integer": 2**63,
                "dict": {"x" * 200: "y" * 10000}, "boolean": True},
    "nul": {"string": "a\x00b", "list": ["a\x00b"], "integer": -1, "dict": {"a\x00": "b\x00"},
            "boolean": False},
    "nan": {"string": float("nan"), "list": [float("inf")], "integer": float("nan"),
            "dict": {"k": float("nan")}, "boolean": float("nan")},
}


def test_no_hostile_plugin_setting_or_chat_command_fails(world, desk, client):
    failures: list[str] = []
    admin = world.api(desk.admin)
    for plugin in admin.get("/admin/plugins").get_json()["items"]:
        url = f"/api/v1/admin/plugins/{plugin['name']}/settings"
        for field in plugin["settings_fields"]:
            for mode, values in SETTING_VALUES.items():
                body = json.dumps({field["name"]: values.get(field["type"], [[]])})
                response = client.put(url, data=body, content_type="application/json",
                                      headers=admin._headers())
                _assert_clean(failures, f"PUT {url} {field['name']} {mode}", response)
    configured = admin.put("/admin/plugins/chat/settings",
                           json={"command_token": "t" * 20, "signing_secret": "s" * 20})
    assert configured.status_code == 200, configured.get_json()
    forms = [{}, {"token": "t" * 20}, {"token": "\x00", "user_name": "\x00"},
             {"token": "t" * 20, "user_name": "emma", "command": "/incident", "text": "\x00"},
             {"token": "t" * 20, "user_name": "emma", "command": "/incident", "text": "x" * 5000},
             {"token": "t" * 20, "user_name": "x" * 5000, "command": "\U0001F4A5"}]
    headers = [{}, {"X-Slack-Signature": "v0=\U0001F4A5", "X-Slack-Request-Timestamp": "9" * 40},
               {"X-Slack-Signature": "", "X-Slack-Request-Timestamp": "-1"}]
    for form in forms:
        for extra in headers:
            response = client.post("/chat/command", data=form, headers=extra)
            _assert_clean(failures, f"POST /chat/command {form} {extra}", response)
    for raw in ("{not json", "null", "[1]"):
        response = client.post("/chat/command", data=raw, content_type="application/json")
        _assert_clean(failures, f"POST /chat/command {raw}", response)
    assert not failures, "\n".join(failures)


# --- the 500s this walk found, pinned -------------------------------------------------------


@pytest.mark.parametrize("path, body, field", [
    ("/changes", {"title": "x", "planned_start": "0001-01-01T00:00:00+14:00"}, "planned_start"),
    ("/changes", {"title": "x", "planned_end": "9999-12-31T23:59:59-14:00"}, "planned_end"),
    ("/changes/freeze-windows", {"name": "x", "starts_at": "0001-01-01T00:00:00+14:00",
                                 "ends_at": "2026-01-01T00:00:00+00:00"}, "starts_at"),
])
def test_change_dates_outside_the_years_1_to_9999_in_utc_are_refused_naming_the_field(
        world, desk, path, body, field):
    admin = world.api(desk.admin)
    response = admin.post(path, json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    listed = admin.get(path).get_json()  # nothing was created
    assert (listed["items"] if isinstance(listed, dict) else listed) == []


def test_change_admin_ids_beyond_the_database_range_are_not_found(world, desk):
    admin = world.api(desk.admin)
    for path in ("/changes/templates/", "/changes/freeze-windows/"):
        assert admin.get(path + str(2**63)).status_code == 404
    assert admin.request("DELETE", f"/changes/freeze-windows/{2**63}").status_code == 404


def test_the_change_calendar_page_at_the_edges_of_the_calendar_shows_this_month(app, world):
    from test_web_pages import PASSWORD, signed_in

    agent = world.user("agent", "cal-agent", password=PASSWORD)
    browser = signed_in(app, agent)
    for query in ("date=0001-01-01", "date=9999-12-31&view=week", "date=0001-01-03&view=week"):
        assert browser.get("/changes/calendar?" + query).status_code == 200, query


def test_a_chat_command_with_a_nul_character_is_refused_in_json(world, desk, client):
    admin = world.api(desk.admin)
    assert admin.put("/admin/plugins/chat/settings",
                     json={"command_token": "t" * 20}).status_code == 200
    response = client.post("/chat/command", data={
        "token": "t" * 20, "user_name": "emma", "command": "/incident", "text": "a\x00b"})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"]["code"] == "nul_character" and set(body["error"]["fields"]) == {"text"}
    assert body["response_type"] == "ephemeral" and body["text"]
