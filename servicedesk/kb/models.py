"""Tables of the knowledge base.

``kb_articles`` keeps, beside what people write (title, Markdown body, tags), the text
the search indexes: ``search_title`` and ``search_body`` are the title and the body's
plain text put through ``kb.search.normalize`` (the same normalisation the queries get),
written by the service on every save. The full-text index itself is not a mapped table:
on SQLite it is the FTS5 table ``kb_articles_fts`` kept in sync by triggers, on
PostgreSQL a GIN index on a tsvector expression over these columns (migration 0009).

Searches, article views and deflections are logged for the analytics (and, later, the
reports: they read these tables by period).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.orm import Mapped, mapped_column, relationship

from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.kb.workflow import AUDIENCES, STATES
from servicedesk.tickets.models import Category, Ticket
from servicedesk.types import UTCDateTime, utcnow

# PostgreSQL's to_tsvector(regconfig, text) is immutable, so an index can be built on
# it with the configuration read from the row; SQLite just keeps the name.
SearchConfig = String(32).with_variant(REGCONFIG(), "postgresql")


class Article(db.Model):
    __tablename__ = "kb_articles"
    __table_args__ = (
        CheckConstraint(f"state IN {STATES!r}", name="state"),
        CheckConstraint(f"audience IN {AUDIENCES!r}", name="audience"),
        # The portal's filter: published articles for an audience, in a language.
        Index("ix_kb_articles_visible", "state", "audience", "locale"),
        Index("ix_kb_articles_updated", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"), index=True)
    # A service of the catalogue (it comes later: no foreign key yet, like tickets').
    service_id: Mapped[int | None] = mapped_column(index=True)
    # Normalised tags wrapped in commas (",vpn,remote work,"), so one tag is
    # ``LIKE '%,vpn,%'`` and the full-text index reads them as words.
    tags: Mapped[str] = mapped_column(String(1000), default="")
    audience: Mapped[str] = mapped_column(String(16), default="employees")
    state: Mapped[str] = mapped_column(String(16), default="draft")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    locale: Mapped[str] = mapped_column(String(16), default="en")
    search_config: Mapped[str] = mapped_column(SearchConfig, default="simple")
    search_title: Mapped[str] = mapped_column(Text, default="")
    search_body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(default=1)

    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    category: Mapped[Category | None] = relationship()

    __mapper_args__ = {"version_id_col": version}

    @property
    def tag_list(self) -> list[str]:
        return [tag for tag in (self.tags or "").split(",") if tag]


class ArticleVersion(db.Model):
    """One save of an article: who, when, which fields changed, and the whole content
    as it was then (so any two versions can be compared)."""

    __tablename__ = "kb_article_versions"
    __table_args__ = (UniqueConstraint("article_id", "number", name="uq_kb_article_versions_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column()
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(16))
    changes: Mapped[list] = mapped_column(JSON, default=list)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(String(1000))
    category_id: Mapped[int | None] = mapped_column()
    service_id: Mapped[int | None] = mapped_column()
    audience: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    owner_id: Mapped[int | None] = mapped_column()

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])

    @property
    def tag_list(self) -> list[str]:
        return [tag for tag in (self.tags or "").split(",") if tag]


class TicketLink(db.Model):
    """An article linked to a ticket of any kind (incidents now, problems and their
    known errors later): on the work-item core's ``tickets.id``."""

    __tablename__ = "kb_ticket_links"
    __table_args__ = (
        UniqueConstraint("article_id", "ticket_id", name="uq_kb_ticket_links_pair"),
        Index("ix_kb_ticket_links_ticket", "ticket_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    linked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    article: Mapped[Article] = relationship()
    ticket: Mapped[Ticket] = relationship()
    linked_by: Mapped[User | None] = relationship()


class Search(db.Model):
    """One portal search: what was asked, how many articles answered, which one was
    opened, and the ticket that followed (if any).

    ``source`` is ``search`` (the KB search page: one row per search) or ``suggest``
    (the new-incident form: one row per visit of the form, ``session`` being the
    form's random id, updated as the title is typed so it ends as the title sent).
    """

    __tablename__ = "kb_searches"
    __table_args__ = (
        Index("ix_kb_searches_at", "at"),
        Index("ix_kb_searches_user", "user_id", "at"),
        Index("ix_kb_searches_query", "query_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    session: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    query: Mapped[str] = mapped_column(String(200))
    # The query normalised for grouping ("VPN  Drops" and "vpn drops" are one query).
    query_key: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str | None] = mapped_column(String(16))
    result_count: Mapped[int] = mapped_column(default=0)
    clicked_article_id: Mapped[int | None] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="SET NULL"))
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))


class ArticleView(db.Model):
    """An article opened on the portal (from a search, or directly)."""

    __tablename__ = "kb_views"
    __table_args__ = (Index("ix_kb_views_article", "article_id", "at"), Index("ix_kb_views_at", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    search_id: Mapped[int | None] = mapped_column(ForeignKey("kb_searches.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Deflection(db.Model):
    """"This solved my problem": an employee's issue ended without a ticket.

    ``source``: ``incident_form`` (a suggestion on the new-incident page), ``article``
    (the article page), ``api``. One per search session (``search_id`` is unique).
    """

    __tablename__ = "kb_deflections"
    __table_args__ = (Index("ix_kb_deflections_at", "at"),
                      Index("ix_kb_deflections_article", "article_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"))
    search_id: Mapped[int | None] = mapped_column(
        ForeignKey("kb_searches.id", ondelete="SET NULL"), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    query: Mapped[str] = mapped_column(String(200), default="")

    article: Mapped[Article] = relationship()
