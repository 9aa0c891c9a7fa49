"""What employees look for and whether the knowledge base answered: the portal's
search log, article views, deflections, and the admins' figures built from them.

**Writes on GET.** Searches and article views are logged while a page is read (a
search page, an article page, the suggestions of the new-incident form): analytics,
not a change anyone asked for, like an access log. They are written in a short
transaction of their own after the page's reads, and the write is its first
statement: on SQLite a read-only request's plain ``BEGIN`` would otherwise have to
upgrade its read snapshot to a write, which fails rather than waits when another
writer got in between. A log row that cannot be written is logged as a warning and
the page is still served; nothing the user asked for depends on it.

**Ticket followed.** A search is marked with the ticket that followed it: the search
session of the new-incident form (its random ``kb_session``) carried to the incident
it creates, and any other portal search by the same user within
``FOLLOW_MINUTES`` before an incident they raise on the portal.

**Deflection rate** = deflections ÷ (deflections + tickets raised on the portal,
channel ``web``) in the period: of the times an employee came with a problem, how often
an article ended it without a ticket.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from servicedesk.errors import Forbidden, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.kb import search
from servicedesk.kb.models import Article, ArticleView, Deflection, Search
from servicedesk.kb.service import get_article
from servicedesk.tickets.models import Ticket
from servicedesk.types import utcnow

log = logging.getLogger(__name__)

FOLLOW_MINUTES = 30
SESSION = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SOURCES = ("search", "suggest")
DEFLECTION_SOURCES = ("incident_form", "article", "api")
MAX_DAYS = 3660
TOP = 20


def new_session() -> str:
    """A random id for one visit of the new-incident form (its suggestions' log row)."""
    return secrets.token_urlsafe(16)


def valid_session(session: str | None) -> str | None:
    """The search-session id if it has the shape we hand out, else None."""
    return session if session and SESSION.match(session) else None


def _write_after_reads(write):
    """Run ``write`` in a transaction of its own (see the module's docstring)."""
    try:
        db.session.commit()
        result = write()
        db.session.commit()
        return result
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("knowledge-base analytics not recorded", exc_info=True)
        return None


# --- the log -------------------------------------------------------------------------


def log_search(actor: User, query: str, result_count: int, source: str = "search",
               session: str | None = None, locale: str | None = None) -> int | None:
    """Record a portal search; returns its id (None if there was nothing to log).

    With a ``session`` (the new-incident form) the session's one row is updated as
    the title grows, so a title typed letter by letter is one search, not twenty.
    """
    query = (query or "").strip()[:200]
    key = search.query_key(query)
    if not key or actor is None:
        return None
    values = dict(at=utcnow(), user_id=actor.id, session=valid_session(session), source=source,
                  query=query, query_key=key, locale=locale, result_count=result_count)

    def write():
        if values["session"] is None:
            row = Search(**values)
            db.session.add(row)
            db.session.flush()
            return row.id
        insert = (pg_insert if db.session.get_bind().dialect.name == "postgresql"
                  else sqlite_insert)(Search).values(**values)
        insert = insert.on_conflict_do_update(
            index_elements=[Search.session],
            set_={name: insert.excluded[name]
                  for name in ("at", "query", "query_key", "locale", "result_count")},
            # A session id belongs to the user it was handed to.
            where=Search.user_id == insert.excluded.user_id,
        ).returning(Search.id)
        return db.session.execute(insert).scalar_one_or_none()

    return _write_after_reads(write)


def record_view(actor: User, article: Article, search_id: int | None = None) -> None:
    """An article page was read (from search ``search_id``: marked as its click)."""
    def write():
        mine = None
        if search_id:
            mine = db.session.execute(
                update(Search).where(Search.id == search_id, Search.user_id == actor.id)
                .values(clicked_article_id=func.coalesce(Search.clicked_article_id, article.id),
                        clicked_at=func.coalesce(Search.clicked_at, utcnow()))
            ).rowcount
        db.session.add(ArticleView(article_id=article.id, user_id=actor.id, at=utcnow(),
                                   search_id=search_id if mine else None))

    _write_after_reads(write)


def record_deflection(actor: User, article_id: int, source: str, session: str | None = None,
                      query: str = "") -> tuple[Deflection, bool]:
    """"This solved my problem": count a deflection; (row, whether it is new).

    The article must be one the actor sees on the portal. Within one search session
    (one visit of the new-incident form) it is counted once.
    """
    article = get_article(actor, article_id, portal=True)
    if source not in DEFLECTION_SOURCES:
        raise ValidationError(_("Unknown source."), fields={"source": [_("Unknown source.")]})
    session = valid_session(session)
    found = None
    if session:
        found = db.session.scalars(select(Search).where(
            Search.session == session, Search.user_id == actor.id)).one_or_none()
    if found is not None:
        earlier = db.session.scalars(
            select(Deflection).where(Deflection.search_id == found.id)).one_or_none()
        if earlier is not None:
            return earlier, False
    row = Deflection(at=utcnow(), user_id=actor.id, article_id=article.id,
                     search_id=found.id if found else None, source=source,
                     query=((found.query if found else query) or "").strip()[:200])
    db.session.add(row)
    db.session.commit()
    return row, True


def note_ticket_followed(actor: User, ticket: Ticket, session: str | None = None) -> int:
    """Mark the actor's searches that this new ticket followed; how many were marked.

    Called after the ticket's own commit: a failure here is logged, never raised (the
    ticket is saved either way).
    """
    try:
        since = ticket.created_at - timedelta(minutes=FOLLOW_MINUTES)
        mine = [Search.at.between(since, ticket.created_at)]
        if valid_session(session):
            mine.append(Search.session == session)
        marked = db.session.execute(
            update(Search).where(Search.user_id == actor.id, Search.ticket_id.is_(None),
                                 or_(*mine))
            .values(ticket_id=ticket.id)
        ).rowcount
        db.session.commit()
        return marked
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not link searches to %s", ticket.number, exc_info=True)
        return 0


# --- the figures ---------------------------------------------------------------------


def _require_admin(actor: User) -> None:
    if actor is None or actor.role != "admin":
        raise Forbidden(_("Only admins see the knowledge-base analytics."))


def _queries(since: datetime, zero_only: bool) -> list[dict]:
    count = func.count(Search.id)
    statement = (
        select(Search.query_key, count.label("searches"),
               func.sum(case((Search.result_count == 0, 1), else_=0)).label("zero"),
               func.count(Search.ticket_id).label("tickets"),
               func.count(Search.clicked_article_id).label("clicks"))
        .where(Search.at >= since)
        .group_by(Search.query_key)
        .order_by(count.desc(), Search.query_key)
        .limit(TOP)
    )
    if zero_only:
        statement = statement.where(Search.result_count == 0)
    return [{"query": key, "searches": n, "zero_results": int(zero or 0), "tickets": tickets,
             "clicks": clicks}
            for key, n, zero, tickets, clicks in db.session.execute(statement)]


def _articles(model, since: datetime) -> list[dict]:
    count = func.count(model.id)
    statement = (
        select(Article.id, Article.title, Article.locale, count.label("n"))
        .join(model, model.article_id == Article.id)
        .where(model.at >= since)
        .group_by(Article.id, Article.title, Article.locale)
        .order_by(count.desc(), Article.id)
        .limit(TOP)
    )
    return [{"id": id_, "title": title, "locale": locale, "count": n}
            for id_, title, locale, n in db.session.execute(statement)]


def kb_analytics(actor: User, days: int = 30, now: datetime | None = None) -> dict:
    """Searches, queries, articles and the deflection rate of the last ``days`` days."""
    _require_admin(actor)
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise ValidationError(_("Invalid period."),
                              fields={"days": [_("From 1 to %(n)s days.", n=MAX_DAYS)]})
    now = now or utcnow()
    since = now - timedelta(days=days)
    searches, zero, followed, clicked = db.session.execute(
        select(func.count(Search.id),
               func.sum(case((Search.result_count == 0, 1), else_=0)),
               func.count(Search.ticket_id), func.count(Search.clicked_article_id))
        .where(Search.at >= since)).one()
    deflections = db.session.scalar(
        select(func.count(Deflection.id)).where(Deflection.at >= since))
    tickets = db.session.scalar(
        select(func.count(Ticket.id)).where(Ticket.created_at >= since, Ticket.channel == "web"))
    asked = deflections + tickets
    return {
        "days": days,
        "since": since,
        "searches": searches,
        "zero_result_searches": int(zero or 0),
        "searches_followed_by_ticket": followed,
        "searches_with_click": clicked,
        "deflections": deflections,
        "portal_tickets": tickets,
        "deflection_rate": round(deflections / asked, 4) if asked else None,
        "top_queries": _queries(since, zero_only=False),
        "zero_result_queries": _queries(since, zero_only=True),
        "most_viewed": _articles(ArticleView, since),
        "most_helpful": _articles(Deflection, since),
    }
