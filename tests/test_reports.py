"""Reports: every KPI and the monthly category report on hand-built tickets with known
answers (SQLite and PostgreSQL), their CSV, pages, permissions and bad filters."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

import pytest
from sqlalchemy import insert, select, text

from cmdb_support import Estate
from servicedesk.cmdb_links import ticket_cis
from servicedesk.csat.models import Survey
from servicedesk.extensions import db
from servicedesk.kb.models import Article, Deflection
from servicedesk.reports.export import cell
from servicedesk.reports.filters import parse_month, parse_period
from servicedesk.reports.kpis import kpis
from servicedesk.sla.models import SlaCalendar, SlaClock, SlaPolicy
from servicedesk.tickets.admin import create_category
from servicedesk.tickets.models import AuditEntry, Ticket
from servicedesk.tickets.workflow import WORKFLOWS

MARCH = {"from": "2026-03-01", "to": "2026-03-31"}
NOW = datetime(2026, 4, 2, tzinfo=timezone.utc)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


class Book:
    """The hand-built desk: tickets A–I and P (see ``book``), with clocks, audit,
    surveys and deflections."""


@pytest.fixture
def book(desk):
    b = Book()
    b.desk = desk
    b.hw = create_category(None, "Hardware")
    b.sw = create_category(None, "=Software")  # a formula-looking name, for the CSV
    b.printers = create_category(None, "Printers", parent_id=b.hw.id)
    estate = Estate()
    b.mail = estate.ci("mail-server")
    b.web = estate.ci("web-server")
    calendar = SlaCalendar(name="24x7", timezone="UTC", week={str(d): [["00:00", "24:00"]]
                                                               for d in range(7)})
    db.session.add(calendar)
    db.session.flush()
    policy = SlaPolicy(name="Standard", calendar_id=calendar.id, response_minutes=60,
                       resolution_minutes=480)
    db.session.add(policy)
    db.session.flush()
    other_kind = next((k for k in sorted(WORKFLOWS) if k != "incident"), "incident")
    b.other_kind = other_kind
    n = 0

    def ticket(name, created, *, kind="incident", resolved=None, closed=None, open_=True,
               line=1, escalations=0, reopens=0, category=None, sub=None, group=None,
               agent=None, priority=3, service=None, ci=None, channel="web", clocks=()):
        nonlocal n
        n += 1
        # The ticket's copy of its stopped clocks' outcome (what refresh_clocks writes).
        outcome = {f"sla_{metric}_{what}": value for metric, seconds, breached in clocks
                   for what, value in (("breached", breached), ("business_seconds", seconds))}
        ticket_id = db.session.execute(insert(Ticket.__table__).values(**outcome,
            kind=kind, number=f"T{n:04d}", title=name, description="", status="new" if open_
            else "resolved", is_open=open_, impact="medium", urgency="medium",
            priority=priority, category_id=category.id if category else None,
            subcategory_id=sub.id if sub else None, service_id=service, ci_id=ci,
            requester_id=desk.employee.id, assignee_id=agent.id if agent else None,
            group_id=group.id if group else None, support_line=line, channel=channel,
            reopen_count=reopens, escalation_count=escalations, created_at=at(created),
            updated_at=at(created), resolved_at=at(resolved) if resolved else None,
            closed_at=at(closed) if closed else None, version=1,
        ).returning(Ticket.__table__.c.id)).scalar_one()
        for metric, seconds, breached in clocks:
            db.session.add(SlaClock(
                ticket_id=ticket_id, metric=metric, policy_id=policy.id, target_seconds=3600,
                started_at=at(created), paused_seconds=0, met_at=at(resolved),
                due_at=at(created), breached_at=at(created) if breached else None,
                elapsed_seconds=seconds))
        setattr(b, name, ticket_id)
        return ticket_id

    def escalate(ticket_id, old, new, when):
        db.session.add(AuditEntry(ticket_id=ticket_id, action="escalated", field="support_line",
                                  old_value=str(old), new_value=str(new), at=at(when)))

    # Resolved in March: A–E (the cohort).
    ticket("A", "2026-03-02T09:00", resolved="2026-03-02T11:00", closed="2026-03-05T00:00",
           open_=False, category=b.hw, sub=b.printers, group=desk.l1, ci=b.mail.id,
           clocks=[("response", 1800, False), ("resolution", 7200, False)])
    ticket("B", "2026-03-03T10:00", resolved="2026-03-05T10:00", open_=False, line=2,
           escalations=1, category=b.hw, group=desk.l2, service=7,
           clocks=[("response", 3600, False), ("resolution", 14400, True)])
    escalate(b.B, 1, 2, "2026-03-03T12:00")
    ticket("C", "2026-03-10T08:00", resolved="2026-03-11T08:00", open_=False, reopens=1,
           category=b.sw, agent=desk.agent,
           clocks=[("response", 7200, True), ("resolution", 36000, False)])
    ticket("D", "2026-03-15T08:00", resolved="2026-03-20T08:00", open_=False, line=3,
           escalations=2, agent=desk.agent, priority=1, channel="email",
           clocks=[("response", 5400, False), ("resolution", 90000, False)])
    escalate(b.D, 1, 2, "2026-03-16T08:00")
    escalate(b.D, 2, 3, "2026-03-17T08:00")
    ticket("E", "2026-02-25T08:00", resolved="2026-03-01T00:00", open_=False,
           category=b.sw, channel="email")
    # Open, or outside the period.
    ticket("F", "2026-03-31T12:00", channel="api")
    escalate(b.F, 1, 2, "2026-03-31T13:00")  # not resolved: not in the cohort
    ticket("G", "2026-01-10T08:00", resolved="2026-02-27T08:00", closed="2026-03-02T08:00",
           open_=False)
    ticket("H", "2026-04-01T00:00")
    ticket("I", "2026-02-01T00:00", category=b.hw)
    ticket("P", "2026-03-05T00:00", kind=other_kind, category=b.hw)
    db.session.execute(insert(ticket_cis), [{"ticket_id": b.A, "ci_id": b.mail.id},
                                            {"ticket_id": b.A, "ci_id": b.web.id},
                                            {"ticket_id": b.C, "ci_id": b.web.id}])
    # Surveys: A 5, B 2, C unanswered in March; G's (February) is outside.
    for ticket_id, resolved, rating in ((b.A, "2026-03-02T11:00", 5), (b.B, "2026-03-05T10:00", 2),
                                        (b.C, "2026-03-11T08:00", None),
                                        (b.G, "2026-02-27T08:00", 1)):
        db.session.add(Survey(ticket_id=ticket_id, resolved_at=at(resolved), rating=rating,
                              answered_at=at(resolved) if rating else None))
    article = Article(title="Restart the printer", owner_id=desk.agent.id, state="published",
                      category_id=b.hw.id)
    db.session.add(article)
    db.session.flush()
    for when in ("2026-03-03T00:00", "2026-03-20T00:00", "2026-04-03T00:00"):
        db.session.add(Deflection(at=at(when), user_id=desk.employee.id, article_id=article.id,
                                  source="article"))
    db.session.commit()
    return b


def get_kpis(world, user, **args):
    response = world.api(user).get("/reports/kpis", query_string={**MARCH, **args})
    return response


def test_every_kpi_has_its_known_value(world, book):
    figures = kpis(book.desk.admin, parse_period(MARCH), now=NOW)
    assert figures["volume"] == {"opened": 6, "resolved": 5, "closed": 2}
    assert figures["backlog"] == {
        "open": 3, "average_age_hours": 716.0, "median_age_hours": 672.0,
        "p90_age_hours": 1286.4, "oldest_created_at": "2026-02-01T00:00:00Z",
        "age_buckets": [{"bucket": "<1d", "open": 0}, {"bucket": "1-3d", "open": 1},
                        {"bucket": "3-7d", "open": 0}, {"bucket": "7-30d", "open": 1},
                        {"bucket": ">=30d", "open": 1}]}
    response = figures["first_response"]
    assert (response["measured"], response["median_hours"], response["p90_hours"],
            response["average_hours"]) == (4, 1.25, 1.85, 1.25)
    resolution = figures["resolution"]
    assert (resolution["measured"], resolution["median_hours"], resolution["p90_hours"],
            resolution["average_hours"]) == (4, 7.0, 20.5, 10.25)
    assert [b["tickets"] for b in resolution["distribution"]] == [0, 1, 1, 1, 1, 0]
    assert figures["sla_compliance"] == {
        "response": {"measured": 4, "met": 3, "rate": 0.75},
        "resolution": {"measured": 4, "met": 3, "rate": 0.75},
        "overall": {"measured": 4, "met": 2, "rate": 0.5}}
    assert figures["reopen_rate"] == 0.2
    assert figures["first_contact_resolution_rate"] == 0.6
    assert figures["escalation_rate"] == [
        {"line": 1, "reached": 5, "escalated": 2, "rate": 0.4},
        {"line": 2, "reached": 2, "escalated": 1, "rate": 0.5},
        {"line": 3, "reached": 1, "escalated": 0, "rate": 0.0}]
    assert figures["csat"] == {"average": 3.5, "responses": 2, "sent": 3,
                               "response_rate": 0.6667}
    # Deflections 2 in March; portal (web) tickets opened in March: A, B, C, P.
    assert figures["deflection"] == {"deflections": 2, "portal_tickets": 4, "rate": 0.3333}


def test_the_api_answers_the_same_figures_with_the_volume_series(world, book):
    response = get_kpis(world, book.desk.manager)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    # The manager (L1) sees L1 groups and ungrouped tickets, not B (L2).
    assert body["volume"] == {"opened": 5, "resolved": 4, "closed": 2}
    admin = get_kpis(world, book.desk.admin).get_json()
    assert admin["volume"] == {"opened": 6, "resolved": 5, "closed": 2}
    assert admin["reopen_rate"] == 0.2
    days = {point["start"]: point for point in admin["series"]}
    assert len(days) == 31
    assert days["2026-03-02"] == {"start": "2026-03-02", "opened": 1, "resolved": 1}
    assert days["2026-03-01"]["resolved"] == 1  # E, at the first instant
    assert sum(p["opened"] for p in admin["series"]) == 6
    weekly = world.api(book.desk.admin).get(
        "/reports/kpis", query_string={"from": "2026-01-01", "to": "2026-06-30"}).get_json()
    assert weekly["series"][0]["start"] == "2025-12-29"  # the Monday of the first week
    assert sum(p["opened"] for p in weekly["series"]) == 10
    # The same clocks over a longer period: the same figures.
    assert weekly["volume"]["resolved"] == 6  # G, resolved in February, has no clocks
    for key in ("first_response", "resolution", "sla_compliance"):
        assert weekly[key] == admin[key], key


def test_each_filter_narrows_the_counts(world, book):
    incidents = 5 if book.other_kind != "incident" else 6
    for key, value, opened in [
        ("kind", "incident", incidents), ("category", book.hw.id, 3),
        ("subcategory", book.printers.id, 1), ("service", 7, 1), ("ci", book.web.id, 2),
        ("group", book.desk.l2.id, 1), ("line", 3, 1), ("agent", book.desk.agent.id, 2),
        ("priority", 1, 1),
    ]:
        body = get_kpis(world, book.desk.admin, **{key: value}).get_json()
        assert body["volume"]["opened"] == opened, (key, body["volume"])
        assert body["filters"] == {key: value}
    # The CI filter counts the ticket's own CI and its affected CIs: A, once.
    assert get_kpis(world, book.desk.admin, ci=book.mail.id).get_json()["volume"]["opened"] == 1


def test_the_category_report_shares_and_trends(world, book):
    response = world.api(book.desk.admin).get("/reports/categories",
                                              query_string={"month": "2026-03"})
    assert response.status_code == 200, response.get_json()
    report = response.get_json()
    assert (report["month"], report["previous_month"]) == ("2026-03", "2026-02")
    assert (report["tickets"], report["previous_tickets"]) == (6, 2)
    rows = {r["name"]: r for r in report["categories"]}
    assert rows["Hardware"] | {} == {
        "id": book.hw.id, "name": "Hardware", "tickets": 3, "share": 0.5, "previous_tickets": 1,
        "previous_share": 0.5, "change_points": 0.0, "trend": "flat"}
    assert (rows["=Software"]["share"], rows["=Software"]["change_points"],
            rows["=Software"]["trend"]) == (0.1667, -33.3, "down")
    assert (rows[None]["tickets"], rows[None]["trend"]) == (2, "up")
    assert [r["name"] for r in report["categories"]] == ["Hardware", None, "=Software"]
    subs = {r["name"]: r["tickets"] for r in report["subcategories"]}
    assert subs == {"Hardware / Printers": 1, "Hardware": 2, "=Software": 1, None: 2}
    cis = {r["name"]: (r["tickets"], r["share"]) for r in report["cis"]}
    assert cis == {"web-server": (2, 0.3333), "mail-server": (1, 0.1667), None: (4, 0.6667)}


def test_csv_exports_escape_formulas_and_download_as_files(world, book, client):
    response = world.api(book.desk.admin).get(
        "/reports/categories", query_string={"month": "2026-03", "format": "csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="categories-2026-03.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    software = [r for r in rows if r["section"] == "categories" and r["id"] == str(book.sw.id)]
    assert software[0]["name"] == "'=Software"
    assert software[0]["change_points"] == "-33.3"  # numbers stay numbers
    kpi = world.api(book.desk.admin).get("/reports/kpis", query_string={**MARCH, "format": "csv"})
    assert kpi.headers["Content-Disposition"] == 'attachment; filename="kpis-2026-03-01-2026-03-31.csv"'
    figures = {(r["section"], r["metric"]): r["value"]
               for r in csv.DictReader(io.StringIO(kpi.get_data(as_text=True)))}
    assert figures[("volume", "opened")] == "6"
    assert figures[("rates", "reopen_rate")] == "0.2"
    assert figures[("escalation L2", "rate")] == "0.5"
    assert figures[("opened per period", "2026-03-02")] == "1"
    assert (cell("-1+2"), cell("@x"), cell(-3), cell("ok")) == ("'-1+2", "'@x", -3, "ok")


PASSWORD = "correct horse battery"


def login(world, client, role, groups=()):
    """Sign ``client`` in as a new user of ``role`` (a browser session, CSRF and all)."""
    user = world.user(role, groups=groups, password=PASSWORD)
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"username": user.username, "password": PASSWORD,
                                           "csrf_token": token})
    assert response.status_code == 302
    return user


def test_pages_show_the_figures_charts_and_csv_links(world, book, client):
    login(world, client, "manager", groups=[book.desk.l1])
    page = client.get("/reports", query_string=MARCH)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="kpi-opened">5<' in html
    assert 'id="kpi-reopen">25.0 %<' in html  # 1 of the manager's 4 resolved
    assert html.count("<svg class=\"chart\"") == 2
    assert "/reports/kpis.csv?" in html and 'href="/reports"' in html  # nav link
    download = client.get("/reports/kpis.csv", query_string=MARCH)
    assert download.mimetype == "text/csv" and "attachment" in download.headers[
        "Content-Disposition"]
    categories = client.get("/reports/categories", query_string={"month": "2026-03"})
    assert categories.status_code == 200
    assert "▲" in categories.get_data(as_text=True)
    assert client.get("/reports/categories.csv?month=2026-03").mimetype == "text/csv"
    bad = client.get("/reports", query_string={"from": "2026-13-01"})
    assert bad.status_code == 422 and "Must be a date" in bad.get_data(as_text=True)


def test_requesters_and_agents_may_not_read_reports(world, book, client):
    for user in (book.desk.employee, book.desk.agent):
        assert get_kpis(world, user).status_code == 403
        assert world.api(user).get("/reports/categories").status_code == 403
    assert world.api(None).get("/reports/kpis").status_code == 401
    login(world, client, "requester")
    assert client.get("/reports").status_code == 403
    assert client.get("/reports/kpis.csv").status_code == 403
    assert 'href="/reports"' not in client.get("/").get_data(as_text=True)


BAD_FILTERS = [
    ({"from": "2026-02-30"}, "from"), ({"to": "yesterday"}, "to"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "to"), ({"from": "2020-01-01"}, "from"),
    ({"kind": "spaceship"}, "kind"), ({"priority": "9"}, "priority"), ({"line": "0"}, "line"),
    ({"group": "-1"}, "group"), ({"ci": "x"}, "ci"), ({"sort": "password"}, "sort"),
    ({"format": "xlsx"}, "format"), ({"month": "2026-03"}, "month"),
    ({"from": "9999-12-30", "to": "9999-12-31"}, "to"), ({"from": "0001-01-01"}, "from"),
]


def test_bad_filters_are_422_naming_the_field(world, book):
    api = world.api(book.desk.admin)
    for args, field in BAD_FILTERS:
        query = args if "to" in args else {"to": "2026-03-31", **args}
        response = api.get("/reports/kpis", query_string=query)
        assert response.status_code == 422, (args, response.get_json())
        assert field in response.get_json()["error"]["fields"], args
    for month in ("2026-13", "26-03", "March", "2026-3", "9999-12", "0000-01"):
        response = api.get("/reports/categories", query_string={"month": month})
        assert response.status_code == 422, month
        assert "month" in response.get_json()["error"]["fields"]
    response = api.get("/reports/categories", query_string={"from": "2026-03-01"})
    assert "from" in response.get_json()["error"]["fields"]


def test_a_resolved_incident_s_clocks_record_their_business_time(world, desk):
    """The SLA core stores how long a stopped clock ran (what the report reads)."""
    calendar = SlaCalendar(name="Always", timezone="UTC",
                           week={str(d): [["00:00", "24:00"]] for d in range(7)})
    db.session.add(calendar)
    db.session.flush()
    db.session.add(SlaPolicy(name="All", calendar_id=calendar.id, response_minutes=60,
                             resolution_minutes=240))
    db.session.commit()
    number = world.incident(desk.employee)["number"]
    api = world.api(desk.agent)
    response = api.post(f"/incidents/{number}/transition", json={
        "to": "resolved", "resolution_code": "fixed",
        "resolution_notes": "Done."})
    assert response.status_code == 200, response.get_json()
    clocks = db.session.scalars(select(SlaClock)).all()
    assert clocks and all(c.met_at is not None for c in clocks)
    for c in clocks:
        assert c.elapsed_seconds == int((c.met_at - c.started_at).total_seconds())
    # ... and the ticket's copy, which the reports read (response met in time)
    ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
    db.session.refresh(ticket)
    seconds = {c.metric: c.elapsed_seconds for c in clocks}
    assert (ticket.sla_response_breached, ticket.sla_response_business_seconds,
            ticket.sla_resolution_breached, ticket.sla_resolution_business_seconds) == (
        False, seconds["response"], False, seconds["resolution"])
    # reopened: the resolution clock runs again, so it is no longer reported
    response = api.post(f"/incidents/{number}/transition", json={"to": "in_progress"})
    assert response.status_code == 200, response.get_json()
    db.session.refresh(ticket)
    assert (ticket.sla_resolution_breached, ticket.sla_resolution_business_seconds) == (
        None, None)


def test_month_filters_parse_to_whole_months():
    filters = parse_month({"month": "2026-12"})
    assert (filters.start, filters.end) == (at("2026-12-01T00:00"), at("2027-01-01T00:00"))


def test_the_migration_builds_exactly_the_report_indexes_and_column(app):
    import warnings

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy.exc import SAWarning

    with db.engine.connect() as connection, warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    mine = ("ix_tickets_kind_created", "ix_tickets_resolved_at", "ix_tickets_closed_at",
            "ix_sla_clocks_report", "ix_ticket_audit_escalated", "elapsed_seconds",
            "sla_response_", "sla_resolution_")
    assert [entry for entry in diff if any(name in repr(entry) for name in mine)] == []


def test_migration_0019_copies_each_stopped_clock_s_outcome_onto_its_ticket(world, book):
    """The upgrade's one UPDATE gives tickets resolved before 0019 what refresh_clocks
    writes since: the KPIs keep their known values."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "migrations" / "versions" / "0019_report_columns.py"
    spec = importlib.util.spec_from_file_location("migration_0019", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    table = Ticket.__table__
    columns = [table.c[name] for name in migration.COHORT_INCLUDE if name.startswith("sla_")]
    written = db.session.execute(select(table.c.id, *columns).order_by(table.c.id)).all()
    db.session.execute(table.update().values({c.key: None for c in columns}))
    db.session.execute(text(migration.BACKFILL))
    db.session.commit()
    assert db.session.execute(select(table.c.id, *columns).order_by(table.c.id)).all() == written
    assert kpis(book.desk.admin, parse_period(MARCH), now=NOW)["sla_compliance"]["overall"] == {
        "measured": 4, "met": 2, "rate": 0.5}


def test_fill_elapsed_gives_old_stopped_clocks_their_business_time(world, desk):
    """Clocks stopped before revision 0018 get business time from the row alone."""
    from servicedesk.reports.backfill import fill_elapsed

    office = SlaCalendar(name="Office", timezone="UTC",
                         week={str(d): [["09:00", "17:00"]] for d in range(5)})
    db.session.add(office)
    db.session.flush()
    policy = SlaPolicy(name="Office hours", calendar_id=office.id, response_minutes=60,
                       resolution_minutes=480)
    db.session.add(policy)
    db.session.flush()
    number = world.incident(desk.employee)["number"]
    ticket_id = db.session.scalar(select(Ticket.id).where(Ticket.number == number))
    # Friday 16:00 -> Monday 10:00 is 2 business hours; 10 minutes of it paused.
    old = SlaClock(ticket_id=ticket_id, metric="resolution", policy_id=policy.id,
                   target_seconds=28800, started_at=at("2026-03-06T16:00"), paused_seconds=600,
                   met_at=at("2026-03-09T10:00"))
    running = SlaClock(ticket_id=ticket_id, metric="response", policy_id=policy.id,
                       target_seconds=3600, started_at=at("2026-03-06T16:00"))
    db.session.query(SlaClock).filter_by(ticket_id=ticket_id).delete()
    db.session.add_all([old, running])
    db.session.commit()
    assert fill_elapsed(batch=1) == 1
    assert fill_elapsed() == 0  # idempotent
    db.session.expire_all()
    assert (old.elapsed_seconds, running.elapsed_seconds) == (6600, None)
    ticket = db.session.get(Ticket, ticket_id)
    assert ticket.sla_resolution_business_seconds == 6600  # the reports' copy
