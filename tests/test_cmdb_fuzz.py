"""No input, however odd, makes the CMDB API answer 5xx or break its error shape."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cmdb_support import Estate

FIELDS = ["name", "class", "status", "owner_group", "description", "attributes",
          "external_key", "version", "source", "target", "type", "key", "parent",
          "service_type", "cis", "relations", "csv"]
ATTRIBUTES = ["hostname", "ip_address", "os", "cpu_cores", "memory_gb", "location",
              "under_warranty", "purchased_on", "cluster", "nope"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from([0, -1, 2**31 - 1, 2**31, 2**53, 1e308, "1e999", "NaN", "::1",
                     "10.0.0.256", "2024-02-30", "server", "virtual_machine", "srv-1",
                     "dc-1", "in_use", "depends_on", "part_of", "", " ", "💥", "%", "_"]),
)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
BODIES = st.one_of(
    JSON,
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6),
    st.fixed_dictionaries({"name": st.text(max_size=10), "class": st.sampled_from(
        ["server", "virtual_machine", "location", "nope"])},
        optional={"attributes": st.dictionaries(st.sampled_from(ATTRIBUTES), SCALARS,
                                                max_size=4),
                  "external_key": SCALARS, "version": SCALARS}),
)
QUERY_KEYS = ["class", "status", "owner_group", "q", "external_key", "attr", "cursor",
              "limit", "direction", "depth", "dry_run", "x"]
QUERIES = st.dictionaries(st.sampled_from(QUERY_KEYS),
                          st.one_of(st.text(max_size=20),
                                    st.sampled_from(["server", "cpu_cores:4", "location:dc-1",
                                                     "ip_address:::1", "upstream", "10"])),
                          max_size=4)
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
PATHS = [("POST", "/cmdb/cis"), ("PATCH", "/cmdb/cis/{ci}"), ("POST", "/cmdb/relations"),
         ("POST", "/cmdb/classes"), ("PUT", "/cmdb/classes/server"),
         ("POST", "/cmdb/import"), ("POST", "/cmdb/import?dry_run=true"),
         ("POST", "/incidents"), ("PATCH", "/incidents/{number}")]


def _assert_clean(response):
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert set(error) == {"code", "message", "fields"}


@pytest.fixture
def fuzz_cmdb(world, desk):
    estate = Estate()
    estate.ci("dc-1", "location")
    ci = estate.ci("srv-1", "server", location="dc-1")
    number = world.incident(desk.employee)["number"]
    return {"apis": {"agent": world.api(desk.agent), "manager": world.api(desk.manager),
                     "admin": world.api(desk.admin)},
            "ci": ci.id, "number": number}


@FUZZ
@given(body=BODIES, target=st.sampled_from(PATHS),
       who=st.sampled_from(["manager", "admin"]))
def test_no_body_makes_the_cmdb_api_fail(fuzz_cmdb, body, target, who):
    method, path = target
    if path.startswith("/incidents") and isinstance(body, dict) and "attributes" in body:
        body = {"title": "x", "affected_cis": body.get("attributes")}
    path = path.format(ci=fuzz_cmdb["ci"], number=fuzz_cmdb["number"])
    _assert_clean(fuzz_cmdb["apis"][who].request(method, path, json=body))


@FUZZ
@given(query=QUERIES, path=st.sampled_from(["/cmdb/cis", "/cmdb/cis/{ci}/impact",
                                            "/cmdb/cis/{ci}/tickets", "/cmdb/classes"]))
def test_no_query_makes_the_cmdb_reads_fail(fuzz_cmdb, query, path):
    api = fuzz_cmdb["apis"]["agent"]
    _assert_clean(api.get(path.format(ci=fuzz_cmdb["ci"]), query_string=query))


@FUZZ
@given(csv=st.text(max_size=200), header=st.sampled_from([
    "", "external_key,name,class\n", "external_key,name,class,attr.cpu_cores,rel.runs_on\n",
    "external_key,attr.location,class,name\n"]))
def test_no_csv_makes_the_import_fail(fuzz_cmdb, csv, header):
    _assert_clean(fuzz_cmdb["apis"]["admin"].post("/cmdb/import?dry_run=true",
                                                  json={"csv": header + csv}))
