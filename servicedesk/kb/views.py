"""Knowledge-base pages: portal search and articles, suggestions for the new-incident
form, the agents' article list and editor, and the admins' search analytics.

Thin like the API: parse, call the service (``kb.service``, ``kb.analytics``), render
or redirect (POST/redirect/GET) with a flash. Portal searches and article views are
logged while the page is read (analytics; see ``kb.analytics``); everything a person
changes is a POST with a CSRF token.
"""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from babel import Locale, UnknownLocaleError
from flask_babel import get_locale, gettext
from flask_login import login_required
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select

from servicedesk.errors import NotFound, ServiceError
from servicedesk.extensions import db
from servicedesk.identity.models import STAFF_ROLES, User
from servicedesk.kb import analytics, markdown, service, workflow
from servicedesk.kb.schemas import ArticleCreateSchema, ArticleUpdateSchema
from servicedesk.kb.workflow import AUDIENCES, STATES
from servicedesk.tickets.admin import list_categories
from servicedesk.web import helpers
from servicedesk.web.helpers import N_, me, staff_only

bp = Blueprint("kb", __name__)

PORTAL_RESULTS = 20
SUGGESTIONS = 5
SUGGEST_MIN_CHARS = 3
MAX_QUERY = 200
PAGE_SIZE = 50
FORM_KEYS = ("title", "body", "category_id", "service_id", "audience", "locale", "owner",
             "version")
ANALYTICS_PERIODS = (7, 30, 90, 365)


STATE_LABELS = {"draft": N_("Draft"), "review": N_("In review"),
                "published": N_("Published"), "archived": N_("Archived")}
AUDIENCE_LABELS = {"employees": N_("Employees"), "agents": N_("IT staff only")}
ACTION_LABELS = {"created": N_("Created"), "updated": N_("Edited"),
                 "transition": N_("State change")}
TRANSITION_LABELS = {"review": N_("Submit for review"), "draft": N_("Back to draft"),
                     "published": N_("Publish"), "archived": N_("Archive")}


@bp.before_request
def _no_store():
    g.no_store = True


@bp.app_template_filter("kb_state")
def _state_label(value):
    return helpers.label(STATE_LABELS, value)


@bp.app_template_filter("kb_audience")
def _audience_label(value):
    return helpers.label(AUDIENCE_LABELS, value)


@bp.app_template_filter("kb_action")
def _action_label(value):
    return helpers.label(ACTION_LABELS, value)


@bp.app_template_filter("kb_transition")
def _transition_label(value):
    return helpers.label(TRANSITION_LABELS, value)


@bp.app_template_filter("kb_language")
def _language(code):
    """A language's name in the reader's language ("fa" -> "Persian", "فارسی", ...)."""
    try:
        return Locale.parse(code).get_display_name(get_locale() or "en") or code
    except (ValueError, TypeError, UnknownLocaleError):
        return code


@bp.app_template_filter("kb_render")
def _render(body):
    return markdown.render(body)


def _problem(exc: Exception, form: str) -> dict:
    db.session.rollback()
    if isinstance(exc, SchemaError):
        return {"form": form, "status": 422, "fields": helpers.flatten(exc.messages),
                "message": gettext("Some fields are missing or invalid.")}
    if exc.status == 404 and not exc.fields:
        raise exc
    return {"form": form, "status": exc.status, "message": exc.message,
            "fields": dict(exc.fields or {})}


def _query_problem(name: str, reason: str) -> dict:
    return {"form": "search", "status": 400, "fields": {name: [reason]},
            "message": gettext("The search has invalid values.")}


def _locales():
    from flask import current_app

    return current_app.config["SERVICEDESK_LOCALES"]


# --- portal --------------------------------------------------------------------------


@bp.route("/portal/kb")
@login_required
def portal_search():
    """Search the knowledge base (published articles the employee may read)."""
    query = request.args.get("q", "").strip()
    locale = request.args.get("locale", "").strip()
    problem, hits, search_id = None, [], None
    if len(query) > MAX_QUERY:
        problem = _query_problem("q", gettext("At most %(n)s characters.", n=MAX_QUERY))
    elif locale and locale not in _locales():
        problem = _query_problem("locale", gettext("Unknown language."))
    elif query:
        filters = {"locale": locale} if locale else {}
        hits = service.search_articles(me(), query, filters, PORTAL_RESULTS, portal=True)
        search_id = analytics.log_search(me(), query, len(hits), "search",
                                         locale=locale or None)
    page = render_template("kb/portal_search.html", query=query, locale=locale, hits=hits,
                           search_id=search_id, problem=problem, locales=_locales())
    return page, (problem["status"] if problem else 200)


def _search_id() -> int | None:
    value = request.args.get("search", "")
    return int(value) if value.isdigit() and 0 < int(value) < 2**31 else None


@bp.route("/portal/kb/articles/<int(max=2147483647):article_id>")
@login_required
def portal_article(article_id):
    article = service.get_article(me(), article_id, portal=True)
    analytics.record_view(me(), article, _search_id())
    return render_template("kb/portal_article.html", article=article)


@bp.route("/portal/kb/articles/<int(max=2147483647):article_id>/solved", methods=["POST"])
@login_required
def portal_article_solved(article_id):
    """"This solved my problem" on an article page: counted as a deflection."""
    analytics.record_deflection(me(), article_id, "article")
    flash(gettext("Glad it helped. Thank you for telling us."), "success")
    return redirect(url_for(".portal_article", article_id=article_id))


@bp.route("/portal/kb/suggest")
@login_required
def portal_suggest():
    """Suggestions for the new-incident form (an HTML fragment, fetched by kb.js)."""
    query = request.args.get("q", "").strip()
    if len(query) > MAX_QUERY:
        return gettext("The title has at most %(n)s characters.", n=MAX_QUERY), 400
    if len(query) < SUGGEST_MIN_CHARS:
        return ""
    hits = service.suggest(me(), query, SUGGESTIONS)
    session = analytics.valid_session(request.args.get("session"))
    search_id = analytics.log_search(me(), query, len(hits), "suggest", session=session)
    return render_template("kb/_suggestions.html", hits=hits, search_id=search_id)


@bp.route("/portal/kb/solved", methods=["POST"])
@login_required
def portal_solved():
    """"This solved my problem" on a suggestion of the new-incident form: the form is
    sent here instead (the button's ``formaction``); no incident is raised."""
    value = request.form.get("kb_article", "")
    if not value.isdigit() or not 0 < int(value) < 2**31:
        raise NotFound(gettext("No such article."))
    _row, _new = analytics.record_deflection(
        me(), int(value), "incident_form", session=request.form.get("kb_session"),
        query=request.form.get("title", "")[:MAX_QUERY])
    flash(gettext("Glad it helped: no incident was raised. If the problem comes back, "
                  "report it at any time."), "success")
    return redirect(url_for(".portal_article", article_id=int(value)))


# --- console -------------------------------------------------------------------------


def _staff_users():
    return list(db.session.scalars(
        select(User).where(User.role.in_(STAFF_ROLES), User.active.is_(True))
        .order_by(User.display_name, User.username)))


def _form_data(schema, nullable=frozenset()) -> dict:
    data = helpers.payload(schema, request.form, FORM_KEYS, nullable)
    if "tags" in request.form:
        data["tags"] = [t for t in request.form.get("tags", "").split(",") if t.strip()]
    return schema.load(data)


def _editor(article=None, problem=None, values=None, ticket=None):
    categories = list_categories()
    page = render_template(
        "kb/console_edit.html", article=article, problem=problem, values=values or {},
        categories=categories, staff=_staff_users(), locales=_locales(),
        audiences=AUDIENCES, ticket=ticket)
    return page, (problem["status"] if problem else 200)


def _article_values(article) -> dict:
    return {"title": article.title, "body": article.body, "tags": ", ".join(article.tag_list),
            "category_id": article.category_id or "", "service_id": article.service_id or "",
            "audience": article.audience, "locale": article.locale,
            "owner": article.owner.username, "version": article.version}


@bp.route("/console/kb")
@staff_only
def console_list():
    args = request.args
    state = args.get("state", "")
    filters, problem = {}, None
    if state:
        if state not in STATES:
            problem = _query_problem("state", gettext("Unknown state."))
        filters["state"] = [state]
    for name, allowed in (("audience", AUDIENCES), ("locale", _locales())):
        if args.get(name):
            if args[name] not in allowed:
                problem = _query_problem(name, gettext("Unknown value."))
            filters[name] = args[name]
    query = args.get("q", "").strip()
    if len(query) > MAX_QUERY:
        problem = _query_problem("q", gettext("At most %(n)s characters.", n=MAX_QUERY))
    cursor = args.get("cursor", "")
    cursor = int(cursor) if cursor.isdigit() and int(cursor) < 2**31 else None
    articles, hits, next_cursor = [], [], None
    if problem is None:
        if query:
            hits = service.search_articles(me(), query, filters, PAGE_SIZE)
        else:
            articles, next_cursor = service.list_articles(me(), filters, cursor, PAGE_SIZE)
    next_url = None
    if next_cursor:
        kept = {k: v for k, v in args.items() if k != "cursor" and v}
        next_url = url_for(".console_list", **kept, cursor=next_cursor)
    page = render_template(
        "kb/console_list.html", articles=articles, hits=hits, query=query, current=args,
        next_url=next_url, problem=problem, states=STATES, audiences=AUDIENCES,
        locales=_locales())
    return page, (problem["status"] if problem else 200)


@bp.route("/console/kb/new", methods=["GET", "POST"])
@staff_only
def console_new():
    """A new article; ``?from=INC000042`` starts from that resolved incident."""
    number = (request.values.get("from") or "").strip()[:20]
    ticket = None
    if request.method == "POST":
        try:
            data = _form_data(ArticleCreateSchema(), {"category_id", "service_id"})
            data.pop("version", None)
            if number:
                article = service.create_from_ticket(me(), number, data)
            else:
                article = service.create_article(me(), data)
        except (SchemaError, ServiceError) as exc:
            return _editor(problem=_problem(exc, "article"), values=request.form.to_dict(),
                           ticket=number or None)
        flash(gettext("Draft saved."), "success")
        return redirect(url_for(".console_article", article_id=article.id))
    values = {"locale": me().locale if me().locale in _locales() else _locales()[0],
              "audience": "employees", "owner": me().username}
    if number:
        try:
            ticket, prefill = service.draft_from_ticket(me(), number)
        except ServiceError as exc:
            db.session.rollback()
            return _editor(problem={"form": "from", "status": exc.status,
                                    "message": exc.message, "fields": dict(exc.fields)},
                           values=values)
        values.update(prefill)
        ticket = ticket.number
    return _editor(values=values, ticket=ticket)


def _console_page(article_id: int, problem=None, status=None):
    user = me()
    article = service.get_article(user, article_id)
    versions = service.list_versions(user, article_id)
    page = render_template(
        "kb/console_article.html", article=article, versions=versions,
        links=service.ticket_links(user, article),
        transitions=workflow.allowed(article.state, user.role),
        editable=article.state in workflow.EDITABLE.get(user.role, ()),
        problem=problem)
    return page, (problem["status"] if problem else 200)


@bp.route("/console/kb/articles/<int(max=2147483647):article_id>")
@staff_only
def console_article(article_id):
    return _console_page(article_id)


@bp.route("/console/kb/articles/<int(max=2147483647):article_id>/edit", methods=["GET", "POST"])
@staff_only
def console_edit(article_id):
    article = service.get_article(me(), article_id)
    if request.method == "POST":
        try:
            data = _form_data(ArticleUpdateSchema(), {"category_id", "service_id"})
            service.update_article(me(), article_id, data)
        except (SchemaError, ServiceError) as exc:
            problem = _problem(exc, "article")
            article = service.get_article(me(), article_id)
            values = (_article_values(article) if problem["status"] == 409
                      else request.form.to_dict())
            return _editor(article, problem, values)
        flash(gettext("Saved."), "success")
        return redirect(url_for(".console_article", article_id=article_id))
    return _editor(article, values=_article_values(article))


def _console_action(article_id: int, form: str, action, done: str):
    try:
        action()
    except (SchemaError, ServiceError) as exc:
        return _console_page(article_id, _problem(exc, form))
    flash(done, "success")
    return redirect(url_for(".console_article", article_id=article_id))


@bp.route("/console/kb/articles/<int(max=2147483647):article_id>/transition", methods=["POST"])
@staff_only
def console_transition(article_id):
    target = request.form.get("to", "")
    version = request.form.get("version", "")

    def action():
        if target not in STATES:
            raise SchemaError({"to": [gettext("Unknown state.")]})
        service.transition_article(me(), article_id, target,
                                   int(version) if version.isdigit() else None)

    return _console_action(article_id, "transition", action,
                           gettext("The article is now: %(state)s.",
                                   state=helpers.label(STATE_LABELS, target)))


@bp.route("/console/kb/articles/<int(max=2147483647):article_id>/links", methods=["POST"])
@staff_only
def console_link(article_id):
    number = request.form.get("ticket", "").strip()

    def action():
        if not number or len(number) > 20:
            raise SchemaError({"ticket": [gettext("A ticket number, e.g. INC000042.")]})
        service.link_ticket(me(), article_id, number)

    return _console_action(article_id, "link", action,
                           gettext("Linked to %(number)s.", number=number))


@bp.route("/console/kb/articles/<int(max=2147483647):article_id>/links/<string:number>/delete",
          methods=["POST"])
@staff_only
def console_unlink(article_id, number):
    return _console_action(article_id, "link",
                           lambda: service.unlink_ticket(me(), article_id, number),
                           gettext("Link to %(number)s removed.", number=number))


@bp.route("/console/kb/articles/<int(max=2147483647):article_id>/diff")
@staff_only
def console_diff(article_id):
    article = service.get_article(me(), article_id)
    old, new = request.args.get("from", ""), request.args.get("to", "")
    if not (old.isdigit() and new.isdigit()) or max(int(old), int(new)) >= 2**31:
        return _console_page(article_id, _query_problem(
            "from", gettext("Choose two versions to compare.")))
    diff = service.diff_versions(me(), article_id, int(old), int(new))
    return render_template("kb/console_diff.html", article=article, diff=diff)


# --- admin ---------------------------------------------------------------------------


@bp.route("/admin/kb")
@staff_only
def admin_analytics():
    days = request.args.get("days", "30")
    days = int(days) if days.isdigit() and len(days) < 6 else 0
    problem = None
    try:
        figures = analytics.kb_analytics(me(), days)
    except ServiceError as exc:
        if exc.status != 422:
            raise
        problem = _problem(exc, "period")
        figures = analytics.kb_analytics(me(), 30)
    page = render_template("kb/admin_analytics.html", figures=figures, problem=problem,
                           periods=ANALYTICS_PERIODS)
    return page, (problem["status"] if problem else 200)
