"""Inbound e-mail: real .eml fixtures through the ``email`` channel of the e-mail plugin.

Messages go in the way production hands them over (the channel's ``ingest``, the
``servicedesk mail ingest`` command, an IMAP poll against a loopback IMAP server) and
come out as incidents, public comments, attachments and ``inbound_messages`` rows.
"""

from __future__ import annotations

import hashlib
import re
import ssl
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import func, select

from servicedesk.attachments.models import Attachment, InboundMessage
from servicedesk.channels import get_channel, poll_channels
from servicedesk.cli import main as cli_main
from servicedesk.errors import ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.incidents.models import Incident
from servicedesk.plugin_admin import update_settings
from servicedesk.tickets.models import AuditEntry, Comment

FIXTURES = Path(__file__).parent / "fixtures" / "mail"


def eml(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def desk_mail(app, world, tmp_path):
    app.config.update(SERVICEDESK_MAIL_DOMAIN="desk.example.test",
                      SERVICEDESK_SMTP_FROM="IT Help <help@desk.example.test>",
                      SERVICEDESK_ATTACHMENTS_DIR=str(tmp_path / "files"))

    class People:
        alice = world.user("requester", "alice")
        bob = world.user("requester", "bob")
        l1 = world.group("Service Desk", 1)
        agent = world.user("agent", "agent1", groups=[l1])
        channel = get_channel("email")

    return People


def ingest(people, name: str):
    return people.channel.ingest(eml(name))


def incidents() -> list[Incident]:
    db.session.expire_all()
    return list(db.session.scalars(select(Incident).order_by(Incident.id)))


def logged(message_id: str) -> InboundMessage:
    return db.session.scalars(
        select(InboundMessage).where(InboundMessage.message_id == message_id)).one()


def sign_in(app, username: str):
    """A browser session of ``username`` (Flask-Login's session keys; no password hashing)."""
    from servicedesk.identity.service import require_user

    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = require_user(username).get_id()
        session["_fresh"] = True
    return client


# --- new incidents, replies, duplicates ---------------------------------------------------


def test_mail_from_a_known_user_raises_an_incident_through_the_email_channel(desk_mail):
    result = ingest(desk_mail, "plain.eml")

    assert (result.status, result.action, result.ticket_number) == \
        ("processed", "created", "INC000001")
    [incident] = incidents()
    assert incident.title == "Printer on the 3rd floor is jammed"
    assert incident.requester.username == "alice"
    assert incident.channel == "email"
    assert 'shows "paper jam"' in incident.description
    assert incident.group.name == "Service Desk"  # routed like any new incident
    created = db.session.scalars(select(AuditEntry).where(
        AuditEntry.ticket_id == incident.id, AuditEntry.action == "created")).one()
    assert created.actor.username == "alice"
    row = logged("<plain-1@mail.example.test>")
    assert (row.status, row.ticket_id, row.sender, row.channel) == \
        ("processed", incident.id, "alice@example.test", "email")


def test_the_same_message_delivered_again_changes_nothing(desk_mail):
    first = ingest(desk_mail, "multipart_alternative.eml")
    again = ingest(desk_mail, "multipart_alternative.eml")

    assert first.status == "processed" and again.status == "ignored"
    assert "duplicate" in again.reason
    [incident] = incidents()
    # multipart/alternative: the text part is the body; the sender's case does not matter
    assert incident.description == \
        "The VPN client disconnects every 10 minutes \u2014 since this morning."
    assert incident.requester.username == "alice"
    assert db.session.scalar(select(func.count()).select_from(InboundMessage)) == 1


def test_replies_by_thread_header_or_subject_number_become_public_comments(desk_mail):
    ingest(desk_mail, "plain.eml")

    by_header = ingest(desk_mail, "reply_in_reply_to.eml")
    by_subject = ingest(desk_mail, "reply_subject_only.eml")

    assert (by_header.action, by_header.ticket_number) == ("commented", "INC000001")
    assert (by_subject.action, by_subject.ticket_number) == ("commented", "INC000001")
    [incident] = incidents()
    comments = list(db.session.scalars(
        select(Comment).where(Comment.ticket_id == incident.id).order_by(Comment.id)))
    # the quoted message below the reply is not repeated
    assert [c.body for c in comments] == ["It works again after I restarted it, thanks.",
                                          "Still jammed this afternoon."]
    assert all(c.public and c.author.username == "alice" for c in comments)
    assert logged("<reply-1@mail.example.test>").ticket_id == incident.id


def test_a_reply_naming_a_ticket_the_sender_may_not_see_or_a_foreign_thread_is_new(desk_mail):
    ingest(desk_mail, "plain.eml")  # alice's INC000001
    bobs = eml("reply_subject_only.eml").replace(b"alice@example.test", b"bob@example.test")
    foreign = ingest(desk_mail, "reply_foreign_domain.eml")
    from_bob = desk_mail.channel.ingest(bobs)

    assert (foreign.action, foreign.ticket_number) == ("created", "INC000002")
    assert (from_bob.action, from_bob.ticket_number) == ("created", "INC000003")
    first = incidents()[0]
    assert db.session.scalar(select(func.count()).select_from(Comment)
                             .where(Comment.ticket_id == first.id)) == 0
    assert incidents()[2].requester.username == "bob"
    assert incidents()[2].title == "RE: Printer on the 3rd floor is jammed"


def test_a_reply_to_a_closed_incident_raises_a_follow_up(desk_mail, world):
    ingest(desk_mail, "plain.eml")
    api = world.api(desk_mail.alice)
    assert api.post("/incidents/INC000001/transition",
                    json={"to": "cancelled", "version": 1}).status_code == 200

    result = ingest(desk_mail, "reply_in_reply_to.eml")

    assert (result.action, result.ticket_number) == ("created", "INC000002")
    assert incidents()[1].description.startswith("Follow-up to INC000001.")


@pytest.mark.parametrize("name, title, body, display", [
    ("subject_fa.eml", "چاپگر طبقه سوم کار نمی\u200cکند", "چاپگر طبقه سوم از صبح", "مریم رضایی"),
    ("subject_ru.eml", "Не работает почта в Outlook", "Outlook не получает почту", "Иван"),
    ("subject_he.eml", "המחשב לא נדלק", "המחשב במשרד 12 לא נדלק", "דנה"),
])
def test_encoded_subjects_and_bodies_in_persian_russian_and_hebrew(desk_mail, app, name, title,
                                                                     body, display):
    update_settings(None, "email", {"unknown_senders": "create"})

    result = ingest(desk_mail, name)

    assert result.status == "processed", result.reason
    [incident] = incidents()
    assert incident.title == title
    assert body in incident.description
    assert incident.requester.display_name == display  # a requester account was created
    assert incident.requester.role == "requester" and incident.requester.password_hash is None


# --- machine mail ---------------------------------------------------------------------------


def test_auto_replies_bounces_and_bulk_mail_never_create_tickets_or_comments(desk_mail):
    ingest(desk_mail, "plain.eml")
    reasons = {}
    for name in ("auto_reply.eml", "precedence_bulk.eml", "bounce.eml", "bounce_bare.eml"):
        result = ingest(desk_mail, name)
        assert result.status == "ignored", (name, result)
        reasons[name] = result.reason
    ours = eml("plain.eml").replace(b"Alice Example <alice@example.test>",
                                    b"IT Help <help@desk.example.test>").replace(
        b"plain-1@", b"loop-1@")
    assert desk_mail.channel.ingest(ours).reason == "sent by this service desk (loop)"

    assert reasons["auto_reply.eml"] == "Auto-Submitted: auto-replied"
    assert reasons["precedence_bulk.eml"] == "Precedence: bulk"
    assert reasons["bounce_bare.eml"] == "delivery report (bounce)"
    assert len(incidents()) == 1
    assert db.session.scalar(select(func.count()).select_from(Comment)) == 0
    assert logged("<bounce-1@mail.example.test>").status == "ignored"


def test_a_sender_past_the_hourly_limit_is_ignored_so_responders_cannot_loop(desk_mail):
    update_settings(None, "email", {"max_per_sender_per_hour": 2})
    ingest(desk_mail, "plain.eml")
    ingest(desk_mail, "reply_subject_only.eml")

    third = ingest(desk_mail, "reply_in_reply_to.eml")

    assert (third.status, third.reason) == \
        ("ignored", "too many messages from this sender in the last hour (loop guard)")
    assert db.session.scalar(select(func.count()).select_from(Comment)) == 1
    bobs = eml("plain.eml").replace(b"alice@", b"bob@").replace(b"plain-1@", b"bob-1@")
    assert desk_mail.channel.ingest(bobs).status == "processed"  # others: unaffected


# --- unknown senders ------------------------------------------------------------------------


def test_unknown_senders_are_refused_by_default_and_get_an_account_when_set(desk_mail):
    refused = ingest(desk_mail, "unknown_sender.eml")
    assert (refused.status, refused.reason) == ("rejected", "unknown sender")
    assert incidents() == []
    assert logged("<stranger-1@elsewhere.test>").status == "rejected"

    with pytest.raises(ValidationError) as refused_setting:
        update_settings(None, "email", {"unknown_senders": "welcome"})
    assert "unknown_senders" in refused_setting.value.fields
    update_settings(None, "email", {"unknown_senders": "create"})
    again = ingest(desk_mail, "unknown_sender.eml")

    assert again.status == "ignored"  # the same message: refused once is refused
    fresh = eml("unknown_sender.eml").replace(b"stranger-1@", b"stranger-2@")
    created = desk_mail.channel.ingest(fresh)
    assert created.status == "processed"
    user = db.session.scalars(select(User).where(User.email == "stranger@elsewhere.test")).one()
    assert (user.role, user.display_name, user.active) == ("requester", "Stranger", True)
    assert incidents()[0].requester_id == user.id


def test_mail_from_a_deactivated_account_is_refused(desk_mail):
    from servicedesk.identity.service import deactivate_user

    deactivate_user(None, desk_mail.alice)
    result = ingest(desk_mail, "plain.eml")
    assert (result.status, result.reason) == ("rejected", "the sender's account is deactivated")
    assert incidents() == []


# --- attachments ----------------------------------------------------------------------------


def test_attachments_are_kept_under_generated_names_within_type_and_size_limits(desk_mail, app,
                                                                                  tmp_path):
    result = ingest(desk_mail, "with_attachment.eml")

    [incident] = incidents()
    rows = list(db.session.scalars(select(Attachment).order_by(Attachment.id)))
    assert [(a.filename, a.content_type) for a in rows] == [
        ("invoice 2026-11.pdf", "application/pdf"), ("error.png", "image/png")]
    assert all(a.ticket_id == incident.id and a.comment_id is None for a in rows)
    pdf = rows[0]
    stored = tmp_path / "files" / pdf.storage_key[:2] / pdf.storage_key
    assert stored.read_bytes().startswith(b"%PDF-1.4")
    assert pdf.sha256 == hashlib.sha256(stored.read_bytes()).hexdigest()
    assert pdf.size == stored.stat().st_size
    assert "setup.exe was not kept: files of type application/x-msdownload are not accepted." \
        in incident.description
    assert result.status == "processed"

    update_settings(None, "email", {"max_attachment_bytes": 1024})
    ingest(desk_mail, "oversize_attachment.eml")
    assert "crash.log (4 KiB) was not kept: larger than 1 KiB." in incidents()[1].description
    assert db.session.scalar(select(func.count()).select_from(Attachment)) == 2


def test_attachment_names_from_the_message_never_become_paths(desk_mail, tmp_path):
    ingest(desk_mail, "traversal_attachment.eml")

    names = list(db.session.scalars(select(Attachment.filename).order_by(Attachment.id)))
    assert names == ["passwd", "bashrc_.txt", "hosts"]
    written = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.name) and p.parent.parent == tmp_path / "files"
               for p in written)


def test_reply_attachments_belong_to_the_comment(desk_mail):
    ingest(desk_mail, "plain.eml")
    reply = eml("with_attachment.eml").replace(
        b"Subject: Error when opening the invoice", b"Subject: Re: [INC000001] more")

    result = desk_mail.channel.ingest(reply)

    assert result.action == "commented"
    comment = db.session.scalars(select(Comment)).one()
    assert {a.comment_id for a in db.session.scalars(select(Attachment))} == {comment.id}


# --- HTML and what people see ------------------------------------------------------------


def test_html_only_mail_is_kept_as_text_and_never_served_as_html(desk_mail, app):
    ingest(desk_mail, "html_only_script.eml")

    [incident] = incidents()
    assert "A popup appears & asks for my password." in incident.description
    assert "Second line" in incident.description
    for evil in ("<script", "alert(", "onerror", "javascript:"):
        assert evil not in incident.description
    cleaned = db.session.scalars(select(Attachment)).one()
    assert (cleaned.filename, cleaned.content_type) == ("message.html", "text/html")

    alice = sign_in(app, "alice")
    page = alice.get(f"/portal/incidents/{incident.number}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page  # the subject is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"/attachments/{cleaned.id}" in page
    download = alice.get(f"/attachments/{cleaned.id}")
    assert download.status_code == 200
    assert download.mimetype == "application/octet-stream"  # never text/html from us
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"].startswith("sandbox")
    body = download.get_data()
    assert b"<script" not in body and b"onerror" not in body and b"javascript:" not in body


def test_attachments_download_only_for_people_who_may_see_the_ticket(desk_mail, app):
    ingest(desk_mail, "with_attachment.eml")
    pdf = db.session.scalars(select(Attachment).order_by(Attachment.id)).first()
    url = f"/attachments/{pdf.id}"

    owner = sign_in(app, "alice").get(url)
    assert owner.status_code == 200 and owner.get_data().startswith(b"%PDF")
    assert owner.mimetype == "application/pdf"
    assert 'filename="invoice 2026-11.pdf"' in owner.headers["Content-Disposition"]
    assert sign_in(app, "agent1").get(url).status_code == 200  # the pool
    assert sign_in(app, "bob").get(url).status_code == 404
    assert sign_in(app, "bob").get("/attachments/999999").status_code == 404
    assert app.test_client().get(url).status_code == 302  # to the sign-in page

    agent = sign_in(app, "agent1")
    assert url in agent.get("/console/incidents/INC000001").get_data(as_text=True)
    # a file kept with an internal note is for staff only
    from servicedesk.attachments.service import store
    from servicedesk.incidents.service import comment_incident

    note = comment_incident(desk_mail.agent, "INC000001", "Vendor log attached", public=False)
    internal = store(b"vendor log", "vendor.log", "text/plain", ticket_id=note.ticket_id,
                     comment=note)
    db.session.commit()
    assert agent.get(f"/attachments/{internal.id}").status_code == 200
    alice = sign_in(app, "alice")
    assert alice.get(f"/attachments/{internal.id}").status_code == 404
    assert f"/attachments/{internal.id}" not in \
        alice.get("/portal/incidents/INC000001").get_data(as_text=True)


# --- malformed mail -------------------------------------------------------------------------


def test_malformed_mail_never_crashes_and_is_taken_in_or_refused_with_a_reason(desk_mail):
    broken_parts = ingest(desk_mail, "malformed.eml")  # bad boundary, charset, encodings
    odd_charset = ingest(desk_mail, "undecodable_charset.eml")
    garbage = ingest(desk_mail, "garbage.eml")
    no_header_block = ingest(desk_mail, "broken_header_block.eml")
    no_sender = ingest(desk_mail, "no_sender.eml")

    assert broken_parts.status == "processed" and odd_charset.status == "processed"
    assert (garbage.status, garbage.reason) == ("rejected", "no readable From address")
    assert no_header_block.status == "rejected" and no_sender.status == "rejected"
    assert [i.title for i in incidents()][1] == "Keyboard layout switches by itself"
    assert "The layout switches to" in incidents()[1].description


def test_processing_that_fails_on_our_side_is_retried_on_redelivery(desk_mail, monkeypatch):
    from servicedesk.incidents import service

    real = service.create_incident
    monkeypatch.setattr(service, "create_incident",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("db away")))
    failed = ingest(desk_mail, "plain.eml")
    assert (failed.status, failed.reason) == ("failed", "internal error: RuntimeError")
    assert incidents() == []

    monkeypatch.setattr(service, "create_incident", real)
    retried = ingest(desk_mail, "plain.eml")
    assert retried.status == "processed"
    assert logged("<plain-1@mail.example.test>").status == "processed"
    assert len(incidents()) == 1


# --- the command line ----------------------------------------------------------------------


def test_mail_ingest_command_answers_like_an_mta_pipe_expects(desk_mail, app):
    runner = app.test_cli_runner()

    def run(name):
        return runner.invoke(cli_main, ["mail", "ingest"], input=eml(name))

    ok = run("plain.eml")
    assert (ok.exit_code, ok.output.strip()) == (0, "processed: INC000001")
    duplicate = run("plain.eml")
    assert duplicate.exit_code == 0 and duplicate.output.startswith("ignored:")
    assert run("auto_reply.eml").exit_code == 0
    refused = run("unknown_sender.eml")
    assert refused.exit_code == 77
    assert refused.output.strip() == "rejected: unknown sender"
    garbage = run("garbage.eml")
    assert garbage.exit_code == 77 and "Traceback" not in garbage.output
    assert len(incidents()) == 1
    log = runner.invoke(cli_main, ["mail", "log", "--status", "rejected"])
    assert log.exit_code == 0
    assert [line.split()[2:5] for line in log.output.splitlines()] == [
        ["rejected", "-", "-"], ["rejected", "-", "stranger@elsewhere.test"]]


# --- IMAP -----------------------------------------------------------------------------------


def test_imap_poll_takes_in_unseen_messages_once_and_flags_them_seen(desk_mail):
    from imap_server import LoopbackImap

    with LoopbackImap("desk", "imap secret") as server:
        server.add(eml("plain.eml"))
        server.add(eml("auto_reply.eml"))
        server.add(eml("unknown_sender.eml"))
        server.add(eml("plain.eml"), seen=True)  # already read by a person: left alone
        update_settings(None, "email", {"imap_host": "127.0.0.1", "imap_port": server.port,
                                        "imap_security": "none", "imap_user": "desk",
                                        "imap_password": "imap secret"})

        assert poll_channels() == {"email": 3}
        assert server.seen() == [True, True, True, True]
        server.add(eml("reply_subject_only.eml"))
        assert poll_channels() == {"email": 1}
        assert poll_channels() == {"email": 0}

    [incident] = incidents()
    assert db.session.scalar(select(func.count()).select_from(Comment)) == 1
    assert logged("<stranger-1@elsewhere.test>").status == "rejected"


def test_imap_poll_with_a_wrong_password_fails_cleanly_and_keeps_the_mail(desk_mail):
    from imap_server import LoopbackImap

    with LoopbackImap("desk", "imap secret") as server:
        server.add(eml("plain.eml"))
        update_settings(None, "email", {"imap_host": "127.0.0.1", "imap_port": server.port,
                                        "imap_security": "none", "imap_user": "desk",
                                        "imap_password": "wrong"})
        assert poll_channels() == {}  # logged, nothing taken in
        assert server.seen() == [False]
    assert incidents() == []


def test_without_an_imap_host_polling_is_off_and_no_password_goes_out_in_clear(desk_mail):
    assert poll_channels() == {"email": 0}
    with pytest.raises(ValidationError) as refused:
        update_settings(None, "email", {"imap_host": "imap.example.test",
                                        "imap_security": "none", "imap_password": "pw"})
    assert list(refused.value.fields) == ["imap_security"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imap-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return str(cert), context


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_imap_over_tls_verifies_the_server_certificate(desk_mail, certificate, security):
    from imap_server import LoopbackImap

    from servicedesk_email.imap import ImapError, ImapSettings, poll_once

    cert, context = certificate
    with LoopbackImap("desk", "imap secret", tls=context,
                      implicit_tls=security == "ssl") as server:
        server.add(eml("plain.eml"))
        settings = ImapSettings("127.0.0.1", server.port, security, "desk", "imap secret")
        with pytest.raises(ImapError, match="CERTIFICATE_VERIFY_FAILED"):
            poll_once(settings)  # a self-signed certificate is not trusted by default
        assert server.seen() == [False]

        trusted = ImapSettings("127.0.0.1", server.port, security, "desk", "imap secret",
                               ca_file=cert)
        assert [r.ticket_number for r in poll_once(trusted)] == ["INC000001"]
        assert server.seen() == [True]


# --- the API --------------------------------------------------------------------------------


def test_attachments_and_the_inbound_log_through_the_api(desk_mail, world):
    ingest(desk_mail, "with_attachment.eml")
    ingest(desk_mail, "unknown_sender.eml")
    alice, bob = world.api(desk_mail.alice), world.api(desk_mail.bob)

    listed = alice.get("/tickets/INC000001/attachments")
    assert listed.status_code == 200
    files = listed.get_json()
    assert [(f["filename"], f["content_type"], f["size"]) for f in files] == [
        ("invoice 2026-11.pdf", "application/pdf", 125), ("error.png", "image/png", 70)]
    download = alice.get(f"/attachments/{files[0]['id']}")
    assert download.status_code == 200 and download.get_data().startswith(b"%PDF")
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Security-Policy"].startswith("sandbox")
    assert bob.get("/tickets/INC000001/attachments").status_code == 404
    assert bob.get(f"/attachments/{files[0]['id']}").status_code == 404
    assert alice.get("/attachments/99999999999").status_code == 404
    assert world.api().get(f"/attachments/{files[0]['id']}").status_code == 401

    admin = world.api(world.user("admin", "root"))
    log = admin.get("/admin/inbound-messages?status=rejected").get_json()
    assert [(m["sender"], m["reason"], m["ticket"]) for m in log["items"]] == [
        ("stranger@elsewhere.test", "unknown sender", None)]
    assert admin.get("/admin/inbound-messages?status=lost").status_code == 400
    assert alice.get("/admin/inbound-messages").status_code == 403


def test_admins_set_the_inbound_settings_and_never_see_the_imap_password(desk_mail, world, app):
    admin_user = world.user("admin", "root")
    admin = world.api(admin_user)

    saved = admin.put("/admin/plugins/email/settings",
                      json={"imap_host": "imap.example.test", "imap_user": "help",
                            "imap_password": "very secret", "unknown_senders": "create"})
    assert saved.status_code == 200, saved.get_json()
    assert "very secret" not in saved.get_data(as_text=True)
    refused = admin.put("/admin/plugins/email/settings", json={"max_attachment_bytes": 0})
    assert refused.status_code == 422
    assert "max_attachment_bytes" in refused.get_json()["error"]["fields"]
    assert world.api(desk_mail.alice).put("/admin/plugins/email/settings",
                                          json={"imap_host": "x"}).status_code == 403
    page = sign_in(app, "root").get("/admin/plugins/email/settings")
    assert page.status_code == 200
    assert "imap_folder" in page.get_data(as_text=True)
    assert "very secret" not in page.get_data(as_text=True)
