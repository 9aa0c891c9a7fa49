"""The directory sync against a real OpenLDAP slapd (tests/ldap_server.py), on SQLite and
PostgreSQL: what a sync creates, updates, deactivates and reactivates, groups, roles
and managers, its safety rules (partial results, the mass-deactivation guard, the
lock), incremental runs, the Active Directory flavour, and the schedule.

Tests that change the directory put it back as it was before they end.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

import ldap3
import pytest
from sqlalchemy import select

import ldap_server as ls
from conftest import redis_test_url
from servicedesk.extensions import db
from servicedesk.identity import service as identity
from servicedesk.identity.models import Group, User
from servicedesk.ldap import directory, jobs, service
from servicedesk.ldap.models import LdapAccount, LdapSyncReport
from servicedesk.types import utcnow


@pytest.fixture(scope="session")
def slapd():
    server = ls.shared_server()
    yield server
    ls.stop_shared_server()


MAPPINGS = [
    {"ldap_group": ls.group_dn("servicedesk-agents"), "group": "L1 Desk", "role": "agent"},
    {"ldap_group": ls.group_dn("managers"), "group": "", "role": "manager"},
    {"ldap_group": ls.group_dn("admins"), "group": "", "role": "admin"},
    {"ldap_group": ls.group_dn("cycle-a"), "group": "L2 Net", "role": ""},
]


@pytest.fixture
def staff(app, world, slapd):
    """A desk with a local admin "root" and two groups, and the directory configured for
    ou=staff with the group mappings above."""
    world.group("L1 Desk", 1)
    world.group("L2 Net", 2)
    admin = world.user("admin", "root", password="local admin pw")
    configure(slapd, group_mappings=MAPPINGS)
    return admin


def configure(slapd, base=ls.STAFF, **overrides):
    """Save settings for ``base``. A directory of ten allows a few deactivations at once
    (the default limit, 10 %, is the mass-deactivation test's)."""
    current = service.load_config()
    overrides.setdefault("max_deactivate_percent", 50)
    values = ls.settings(slapd, base=base, **overrides)
    return service.update_config(None, {**values, "version": current.version if current else None})


def sync(**options) -> LdapSyncReport:
    report = service.start_sync(None, "cli", run_here=True, **options)
    db.session.expire_all()
    return report


def user(username) -> User | None:
    return db.session.scalars(select(User).where(User.username == username)).one_or_none()


def items(report, action=None) -> list[tuple[str, str, str]]:
    rows, _more = service.report_items(None, report, action, limit=1000)
    return [(i.username, i.dn, i.detail) for i in rows]


def usernames(report, action) -> set[str]:
    return {name for name, _dn, _detail in items(report, action)}


def members(group_name) -> set[str]:
    group = db.session.scalars(select(Group).where(Group.name == group_name)).one()
    return {u.username for u in group.members}


# --- a first sync ----------------------------------------------------------------------------


def test_a_first_sync_creates_directory_users_with_attributes_roles_groups_and_managers(
        staff, world):
    local = world.user("agent", "localagent", groups=["L1 Desk"])
    dry = sync(dry_run=True)
    assert (dry.status, dry.dry_run, dry.created) == ("ok", True, 8)
    assert "Dry run" in dry.message and usernames(dry, "created") >= {"alice", "boris"}
    assert user("alice") is None  # a dry run changes nothing
    assert db.session.scalar(select(db.func.count()).select_from(LdapAccount)) == 0

    report = sync()
    assert (report.status, report.mode, report.dry_run) == ("ok", "full", False)
    created = usernames(report, "created")
    assert created == {"shirin", "boris", "david", "alice", "bob", "carol", "erin", "frank"}
    assert "dave" not in created  # disabled in the directory: nobody to create
    assert (report.created, report.deactivated, report.reactivated) == (8, 0, 0)
    # Non-ASCII names arrive intact.
    assert user("shirin").display_name == "شیرین احمدی"
    assert user("boris").display_name == "Борис Петров"
    assert user("david").display_name == "דוד כהן"
    alice = user("alice")
    assert (alice.auth_source, alice.password_hash, alice.active) == ("ldap", None, True)
    assert alice.email == "alice@example.test"
    account = db.session.get(LdapAccount, alice.id)
    assert (account.phone, account.department, account.title) == ("+49 30 1234", "IT",
                                                                   "Engineer")
    assert account.dn == ls.staff_dn("alice")
    assert user("erin").email == ""  # no mail attribute
    # Roles: the highest of the mapped groups, nested groups included; else the default.
    roles = {name: user(name).role for name in created}
    assert roles == {"shirin": "requester", "boris": "admin", "david": "manager",
                     "alice": "agent", "bob": "agent", "carol": "agent", "erin": "requester",
                     "frank": "requester"}
    # Groups through nesting with a cycle (l1-team <-> l2-team) and a pure cycle; the
    # local member of a mapped group is left alone.
    assert members("L1 Desk") == {"alice", "bob", "carol", "localagent"}
    assert members("L2 Net") == {"erin"}
    assert (user("localagent").role, local.auth_source) == ("agent", "local")
    # The manager chain, from the manager DNs.
    assert user("alice").manager.username == "david"
    assert user("bob").manager.username == "david"
    assert user("david").manager.username == "boris"
    assert user("boris").manager.username == "shirin"
    assert user("shirin").manager is None
    detail = {name: d for name, _dn, d in items(report, "created")}
    assert "L1 Desk" in detail["alice"] and "agent" in detail["alice"]
    # The local admin "root" has the username of a directory entry: reported, not merged.
    errors = items(report, "error")
    assert [(name, dn) for name, dn, _ in errors] == [("root", ls.staff_dn("root"))]
    assert "local" in errors[0][2] and "not merged" in errors[0][2]
    root = user("root")
    assert (root.auth_source, root.role, root.display_name) == ("local", "admin", "root")
    assert db.session.get(LdapAccount, root.id) is None
    assert identity.authenticate("root", "local admin pw", "127.0.0.1").id == root.id


def test_a_second_sync_changes_nothing(staff):
    first = sync()
    ids = {u.username: u.id for u in db.session.scalars(select(User))}
    second = sync()
    assert (second.status, second.mode) == ("ok", "incremental")
    assert (second.created, second.updated, second.deactivated, second.reactivated) == (
        0, 0, 0, 0)
    # Incremental: root's entry did not change, so its clash is not read (nor reported).
    assert (second.unchanged, second.errors) == (first.directory_users, 0)
    assert {u.username: u.id for u in db.session.scalars(select(User))} == ids
    third = sync(full=True)
    assert (third.mode, third.created, third.updated, third.deactivated) == ("full", 0, 0, 0)
    assert usernames(third, "error") == {"root"}  # a full sync reports it again
    assert third.unchanged == first.directory_users - 1


# --- changes in the directory ------------------------------------------------------------------


def test_changed_moved_and_renamed_users_are_updated_never_recreated(staff, slapd):
    sync()
    frank = user("frank")
    admin = slapd.admin()
    try:
        admin.modify(ls.staff_dn("alice"), {"title": [(ldap3.MODIFY_REPLACE, ["Architect"])]})
        report = sync()
        assert report.mode == "incremental" and report.directory_users == 10
        assert [(n, d) for n, _dn, d in items(report, "updated")] == [("alice", "title")]
        assert db.session.get(LdapAccount, user("alice").id).title == "Architect"

        assert admin.modify_dn(ls.staff_dn("frank"), "uid=franz", new_superior=ls.STAFF)
        assert admin.modify(f"uid=franz,{ls.STAFF}",
                            {"displayName": [(ldap3.MODIFY_REPLACE, ["Franz Berliner"])]})
        report = sync()
        assert report.status == "ok"
        [(name, dn, detail)] = items(report, "updated")
        assert (name, dn) == ("franz", f"uid=franz,{ls.STAFF}")
        assert "frank → franz" in detail and "moved" in detail
        assert user("frank") is None
        franz = user("franz")
        assert (franz.id, franz.display_name, franz.active) == (frank.id, "Franz Berliner", True)
        assert db.session.get(LdapAccount, frank.id).dn == f"uid=franz,{ls.STAFF}"
        assert report.created == report.deactivated == 0
    finally:
        admin.modify(ls.staff_dn("alice"), {"title": [(ldap3.MODIFY_REPLACE, ["Engineer"])]})
        admin.modify_dn(f"uid=franz,{ls.STAFF}", "uid=frank", new_superior=f"ou=berlin,{ls.STAFF}")
        admin.modify(ls.staff_dn("frank"),
                     {"displayName": [(ldap3.MODIFY_REPLACE, ["Frank Berlin"])]})
        admin.unbind()


def test_users_gone_or_disabled_are_deactivated_at_once_and_reactivated_on_return(
        staff, slapd, world):
    sync()
    erin = user("erin")
    api = world.api(erin)
    assert api.get("/me").status_code == 200
    identity.deactivate_user(None, user("carol"))  # by an admin: the sync leaves her be
    admin = slapd.admin()
    try:
        assert admin.modify_dn(ls.staff_dn("erin"), "uid=erin", new_superior=ls.ATTIC)
        admin.modify(ls.staff_dn("bob"), {"employeeType": [(ldap3.MODIFY_REPLACE, ["disabled"])]})
        report = sync()
        assert (report.status, report.deactivated) == ("ok", 2)
        gone = {name: (dn, detail) for name, dn, detail in items(report, "deactivated")}
        assert gone["erin"][0] == ls.staff_dn("erin") and "no longer" in gone["erin"][1]
        assert "disabled" in gone["bob"][1]
        assert (user("erin").active, user("bob").active) == (False, False)  # never deleted
        assert api.get("/me").status_code == 401  # her API token died with it
        assert db.session.get(LdapAccount, erin.id).deactivated_reason == "missing"
    finally:
        admin.modify_dn(f"uid=erin,{ls.ATTIC}", "uid=erin", new_superior=ls.STAFF)
        admin.modify(ls.staff_dn("bob"), {"employeeType": [(ldap3.MODIFY_DELETE, [])]})
        admin.unbind()
    report = sync()
    assert usernames(report, "reactivated") == {"erin", "bob"}
    again = user("erin")
    assert (again.id, again.active, user("bob").active) == (erin.id, True, True)
    assert db.session.get(LdapAccount, erin.id).deactivated_reason is None
    assert user("carol").active is False
    assert sync(full=True).reactivated == 0


def test_group_membership_and_roles_follow_the_directory(staff, slapd):
    sync()
    admin = slapd.admin()
    try:
        admin.modify(ls.group_dn("l2-team"), {"member": [(ldap3.MODIFY_DELETE,
                                                           [ls.staff_dn("bob")])]})
        admin.modify(ls.group_dn("managers"), {"member": [(ldap3.MODIFY_ADD,
                                                           [ls.staff_dn("alice")])]})
        report = sync()
        detail = {n: d for n, _dn, d in items(report, "updated")}
        assert "left L1 Desk" in detail["bob"] and "agent → requester" in detail["bob"]
        assert "agent → manager" in detail["alice"]
        assert members("L1 Desk") == {"alice", "carol"}
        assert (user("bob").role, user("alice").role) == ("requester", "manager")
    finally:
        admin.modify(ls.group_dn("l2-team"), {"member": [(ldap3.MODIFY_ADD, [ls.staff_dn("bob")])]})
        admin.modify(ls.group_dn("managers"), {"member": [(ldap3.MODIFY_DELETE,
                                                           [ls.staff_dn("alice")])]})
        admin.unbind()
    # A mapped group the directory does not have: an error, and its group and the roles
    # are frozen as they are (never emptied).
    missing = f"cn=no-such-group,{ls.GROUPS}"
    configure(slapd, group_mappings=[{**MAPPINGS[0], "ldap_group": missing}, *MAPPINGS[1:]])
    report = sync()
    errors = {dn: detail for _n, dn, detail in items(report, "error")}
    assert "not found" in errors[missing]
    assert members("L1 Desk") == {"alice", "carol"}
    assert user("alice").role == "manager"


# --- safety ----------------------------------------------------------------------------------


def test_a_sync_that_would_deactivate_too_many_aborts_and_changes_nothing(staff, slapd):
    sync()
    configure(slapd, group_mappings=MAPPINGS, user_filter="(uid=alice)",
              max_deactivate_percent=10)
    report = sync()
    assert report.status == "aborted"
    assert "7 of 8" in report.message and "10 %" in report.message
    assert "nothing was changed" in report.message
    assert len(items(report, "deactivated")) == 7  # who would have gone, for the admin
    assert all(u.active for u in db.session.scalars(select(User)))
    forced = sync(allow_mass_deactivation=True)
    assert (forced.status, forced.deactivated) == ("ok", 7)
    assert user("alice").active and not user("boris").active


def test_a_partial_directory_answer_deactivates_nobody(staff, slapd):
    sync()
    # This account may read 5 entries in all: the server stops with sizeLimitExceeded.
    configure(slapd, group_mappings=MAPPINGS, bind_dn=ls.LIMITED_DN,
              bind_password=ls.LIMITED_PASSWORD, page_size=2, max_deactivate_percent=100)
    report = sync()
    assert report.status == "failed"
    assert "sizeLimitExceeded" in report.message and "nothing was changed" in report.message
    assert report.deactivated == 0
    assert all(u.active for u in db.session.scalars(select(User)))


def test_an_unpaged_search_stops_at_the_server_limit_and_an_oversized_page_is_refused(slapd):
    """The two silent failures every search of ours is guarded against."""
    conn = ldap3.Connection(ldap3.Server(slapd.uri), ls.SYNC_DN, ls.SYNC_PASSWORD,
                            auto_bind=True)
    conn.search(ls.PEOPLE, "(objectClass=inetOrgPerson)", attributes=["uid"])
    assert (len(conn.entries), conn.result["description"]) == (1000, "sizeLimitExceeded")
    conn.unbind()
    settings = directory.Settings([slapd.uri], "plain", bind_dn=ls.SYNC_DN,
                                  bind_password=ls.SYNC_PASSWORD)
    with directory.Directory(settings) as d:
        with pytest.raises(directory.DirectoryError) as refused:
            list(d.paged_search(ls.PEOPLE, "(objectClass=inetOrgPerson)", ["uid"], 1500))
        assert refused.value.result == "adminLimitExceeded"
        assert len(list(d.paged_search(ls.PEOPLE, "(objectClass=inetOrgPerson)", ["uid"],
                                       1000))) == slapd.bulk_users


def test_a_sync_finding_the_lock_taken_reports_skipped(staff):
    token = service.acquire_lock()
    assert token is not None
    try:
        report = sync()
        assert report.status == "skipped" and "Another sync is running" in report.message
        assert user("alice") is None
    finally:
        service.release_lock(token)
    assert sync().status == "ok"


def test_thousands_of_users_in_pages_and_two_syncs_at_once(app, world, slapd):
    """ou=people holds 2,600 users, the server answers 1,000 at most: paging gets them all.
    Two syncs started together (each with its own session, as two processes would): one
    runs, the other is skipped or, if it came second, finds nothing left to do."""
    world.group("Bulk", 1)
    configure(slapd, base=ls.PEOPLE, page_size=1000, group_mappings=[
        {"ldap_group": ls.group_dn("bulk-agents"), "group": "Bulk", "role": "agent"}])
    db.session.rollback()
    start = threading.Barrier(2, timeout=30)
    outcome = {}

    def run(name):
        with app.app_context():
            start.wait()
            outcome[name] = service.start_sync(None, "cli", run_here=True).status
            db.session.remove()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    db.session.expire_all()
    reports = list(db.session.scalars(select(LdapSyncReport).order_by(LdapSyncReport.id)))
    assert sorted(outcome.values()) in (["ok", "ok"], ["ok", "skipped"])
    assert sorted(r.status for r in reports) == sorted(outcome.values())
    assert sum(r.created for r in reports) == slapd.bulk_users
    count = db.session.scalar(select(db.func.count()).select_from(User)
                              .where(User.auth_source == "ldap"))
    assert count == slapd.bulk_users
    assert len(members("Bulk")) == 100
    assert user("user02600").display_name == "User 02600"


# --- Active Directory flavour ------------------------------------------------------------------


def test_active_directory_flavour_guid_disabled_bit_usn_and_nesting(app, world, slapd):
    world.group("IT", 2)
    service.update_config(None, ls.ad_settings(slapd, max_deactivate_percent=50, group_mappings=[
        {"ldap_group": ls.group_dn("it-staff", ls.AD_GROUPS), "group": "IT", "role": "agent"}]))
    report = sync()
    assert report.status == "ok"
    # olga (514) and pavel (66050) carry the ACCOUNTDISABLE bit.
    assert usernames(report, "created") == {"ivan", "noa", "reza"}
    ivan = user("ivan")
    assert db.session.get(LdapAccount, ivan.id).directory_id == str(ls.ad_guid(1))
    assert ivan.display_name == "Иван Иванов" and user("noa").display_name == "נועה לוי"
    assert user("reza").display_name == "رضا کریمی"
    assert user("reza").manager.username == "noa" and user("noa").manager.username == "ivan"
    # Not an AD server (no in-chain rule): the nested, cyclic groups are expanded by us.
    assert members("IT") == {"ivan", "noa"}
    admin = slapd.admin()
    try:
        admin.modify(ls.ad_dn("ivan"), {"department": [(ldap3.MODIFY_REPLACE, ["Finance"])],
                                        "uSNChanged": [(ldap3.MODIFY_REPLACE, ["2001"])]})
        admin.modify(ls.ad_dn("reza"), {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])],
                                        "uSNChanged": [(ldap3.MODIFY_REPLACE, ["2002"])]})
        report = sync()
        assert (report.status, report.mode) == ("ok", "incremental")
        assert usernames(report, "updated") == {"ivan"}
        assert usernames(report, "deactivated") == {"reza"}
        assert db.session.get(LdapAccount, ivan.id).department == "Finance"
    finally:
        admin.modify(ls.ad_dn("ivan"), {"department": [(ldap3.MODIFY_REPLACE, ["Бухгалтерия"])],
                                        "uSNChanged": [(ldap3.MODIFY_REPLACE, ["1001"])]})
        admin.modify(ls.ad_dn("reza"), {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["512"])],
                                        "uSNChanged": [(ldap3.MODIFY_REPLACE, ["1003"])]})
        admin.unbind()


def test_ads_in_chain_filter_escapes_the_group_dn():
    assert directory.in_chain_filter("memberOf", "cn=IT (all)*,dc=x") == (
        r"(memberOf:1.2.840.113556.1.4.1941:=cn=IT \28all\29\2a,dc=x)")


def test_dns_compare_in_any_spelling():
    assert directory.dn_hash("CN=Ann Lee, OU=People,DC=Example") == directory.dn_hash(
        "cn=ann lee,ou=people,dc=example")
    assert directory.dn_hash("cn=a,dc=x") != directory.dn_hash("cn=b,dc=x")


# --- the schedule and the worker -----------------------------------------------------------------


def test_the_schedule_starts_a_sync_once_per_interval(staff, slapd):
    assert jobs.scheduled_sync() == "off"  # no interval configured
    configure(slapd, group_mappings=MAPPINGS, sync_interval_minutes=30)
    outcome = jobs.scheduled_sync()
    assert outcome.startswith("report ") and outcome.endswith(": ok")
    assert jobs.scheduled_sync() == "not due"
    [report] = service.list_reports(None)
    assert (report.trigger, report.created) == ("schedule", 8)
    configure(slapd, group_mappings=MAPPINGS, sync_interval_minutes=30, enabled=False)
    assert jobs.scheduled_sync() == "off"
    # A queued run whose job was lost (Redis flushed) is closed by the next tick.
    lost = LdapSyncReport(status="queued", trigger="web",
                          created_at=utcnow() - timedelta(hours=7))
    db.session.add(lost)
    db.session.commit()
    jobs.scheduled_sync()
    db.session.expire_all()
    assert db.session.get(LdapSyncReport, lost.id).status == "failed"
    assert db.session.get(LdapSyncReport, report.id).status == "ok"


@pytest.mark.jobs
def test_with_redis_the_sync_is_a_json_job_run_by_a_real_worker(staff, app):
    from redis import Redis
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from servicedesk.jobs import QUEUE_NAME
    from servicedesk.worker import AppWorker

    url = redis_test_url(13, "SERVICEDESK_TEST_REDIS")
    redis = Redis.from_url(url)
    redis.flushdb()
    app.config["SERVICEDESK_REDIS_URL"] = url
    try:
        report = service.start_sync(None, "web")
        assert report.status == "queued" and user("alice") is None
        job = Job.fetch(f"ldap-sync-{report.id}", connection=redis, serializer=JSONSerializer)
        assert job.func_name == jobs.SYNC_JOB and list(job.args) == [report.id]
        assert job.timeout == jobs.JOB_TIMEOUT_SECONDS  # not RQ's default 3 minutes
        db.session.rollback()  # nothing of ours may hold SQLite's write lock meanwhile
        # The worker class `servicedesk worker` runs: JSON only, forks a work horse.
        AppWorker([QUEUE_NAME], connection=redis, app=app).work(burst=True)
        db.session.expire_all()
        done = db.session.get(LdapSyncReport, report.id)
        assert (done.status, done.created) == ("ok", 8)
        assert user("alice").active
    finally:
        redis.flushdb()
