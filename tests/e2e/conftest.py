"""Browser tests: Playwright driving Debian's chromium against a live server.

SQLite only: the live server is an app of its own (built with ``make_app``) serving
from a daemon thread. Tests create their data through the service layer inside that
app's context (``live.run``) and the database is emptied after each test.
"""

from __future__ import annotations

import threading

import pytest
from werkzeug.security import generate_password_hash
from werkzeug.serving import WSGIRequestHandler, make_server

from servicedesk.extensions import db
from servicedesk.identity import service as identity

try:  # tests/ as a package, or (today) tests/ on sys.path via the root conftest
    from tests.conftest import World, empty_database, make_app
except ImportError:
    from conftest import World, empty_database, make_app

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # pytest-playwright's --browser-channel cannot point at a path; never `playwright install`.
    return {**browser_type_launch_args, "executable_path": CHROMIUM}


@pytest.fixture(scope="session")
def live_app(sqlite_url):
    app = make_app(sqlite_url)
    # Compile every template once up front, so no test pays for it inside its budget.
    for name in app.jinja_env.list_templates(extensions=["html"]):
        app.jinja_env.get_template(name)
    yield app
    with app.app_context():
        db.engine.dispose()


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # one line per request drowns a failure's report
        pass


@pytest.fixture(scope="session")
def live_server(live_app):
    server = make_server("127.0.0.1", 0, live_app, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def base_url(live_server):
    return live_server


class Live:
    """Runs set-up code in the live app's context, one short unit of work at a time.

    The session is closed after each call: on SQLite an open transaction in the test
    thread would hold the write lock the server's requests wait for.
    """

    def __init__(self, app):
        self.app = app
        self.world = World(app, None)

    def run(self, fn, *args, **kwargs):
        with self.app.app_context():
            try:
                return fn(*args, **kwargs)
            finally:
                db.session.remove()

    def user(self, role="requester", username=None, **kwargs) -> str:
        """Create a user who can sign in with ``PASSWORD``; returns the username."""
        return self.run(lambda: self.world.user(role, username, password=PASSWORD,
                                                **kwargs).username)

    def group(self, name, line=1) -> str:
        return self.run(lambda: self.world.group(name, line).name)


@pytest.fixture
def live(live_app, live_server, monkeypatch):
    # Few hashing rounds: what is tested is the pages, not the cost of the KDF.
    monkeypatch.setattr(identity, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    yield Live(live_app)
    with live_app.app_context():
        db.session.rollback()
        empty_database()
        db.session.remove()


@pytest.fixture
def sign_in(browser, live_server):
    """``sign_in(username)``: a fresh browser context (own cookies) signed in as that user.

    Every page of it records console errors (a CSP violation shows up there) in
    ``page.errors``.
    """
    contexts = []

    def open_as(username: str):
        context = browser.new_context(base_url=live_server)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("console", lambda msg: msg.type == "error" and page.errors.append(msg.text))
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        page.goto("/login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert "/login" not in page.url, f"{username} could not sign in"
        return page

    yield open_as
    for context in contexts:
        context.close()
