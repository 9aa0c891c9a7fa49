"""Knowledge-base operations. Each takes the acting user, checks, changes, commits.

Who sees what (``visible``): requesters only published articles for employees; staff
every article in the console and the API, but on the portal (search, suggestions,
article pages) only published ones, of both audiences. What an actor may not see is a
404, like a ticket.

Every save of an article (creation, edit, state change) adds a version row holding
the whole content, who saved it, when and which fields changed; its number is the
article's ``version`` after the save (the optimistic-locking counter), so "version 3"
means the same thing in the API, the editor and the history.

The portal's search log, article views and deflections live in ``kb.analytics``.
"""

from __future__ import annotations

import difflib
import re

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, false, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.i18n import N_
from servicedesk.identity.models import User
from servicedesk.kb import markdown, search, workflow
from servicedesk.kb.models import Article, ArticleVersion, TicketLink
from servicedesk.tickets import service as core
from servicedesk.tickets.access import visible_tickets_clause
from servicedesk.tickets.models import Category, Ticket
from servicedesk.types import utcnow

CONTENT_FIELDS = ("title", "body", "category_id", "service_id", "tags", "audience", "locale",
                  "owner")
_STAFF_FIELDS = set(CONTENT_FIELDS)
# What each role may write (ASVS 15.3.3); ``state`` changes only by a transition.
WRITE_FIELDS = {"agent": _STAFF_FIELDS, "manager": _STAFF_FIELDS, "admin": _STAFF_FIELDS}


WHY_NOT = {"state": N_("Change the state with a transition.")}
MAX_TAGS = 20
MAX_TAG_LENGTH = 40
MAX_BODY = 100_000
PAGE_LIMIT = 200


# --- who sees what -------------------------------------------------------------------


def visible(actor: User | None, portal: bool = False) -> list:
    """WHERE clauses selecting the articles ``actor`` may see (``portal``: as an
    employee-facing page shows them, i.e. published only)."""
    if actor is None or not actor.active:
        return [false()]
    if not actor.is_staff:
        return [Article.state == "published", Article.audience == "employees"]
    return [Article.state == "published"] if portal else []


def get_article(actor: User, article_id: int, portal: bool = False) -> Article:
    article = db.session.scalars(
        select(Article).options(joinedload(Article.owner), joinedload(Article.category))
        .where(Article.id == article_id, *visible(actor, portal))
    ).one_or_none()
    if article is None:
        raise NotFound(_("No article %(id)s.", id=article_id))
    return article


def _require_staff(actor: User) -> None:
    if actor is None or not actor.is_staff:
        raise Forbidden(_("Only IT staff write knowledge-base articles."))


# --- validation ----------------------------------------------------------------------


def normalize_tags(tags, field: str = "tags") -> str:
    """Tags (a list, or one comma-separated string from a form) as stored: normalised,
    lower-case, unique, in the order given, wrapped in commas (",vpn,wi-fi,")."""
    if isinstance(tags, str):
        tags = tags.split(",")
    result: list[str] = []
    for raw in tags or ():
        tag = re.sub(r"\s+", " ", search.normalize(str(raw)).casefold()).strip()
        if not tag:
            continue
        if "," in tag or len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(
                _("Invalid tag %(tag)s.", tag=repr(tag[:50])),
                fields={field: [_("Each tag has at most %(n)s characters and no comma.",
                                  n=MAX_TAG_LENGTH)]})
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise ValidationError(_("Too many tags."),
                              fields={field: [_("At most %(n)s tags.", n=MAX_TAGS)]})
    return "," + ",".join(result) + "," if result else ""


def _category(category_id: int | None) -> Category | None:
    if category_id is None:
        return None
    category = db.session.get(Category, category_id)
    if category is None or not category.active:
        raise ValidationError(_("Unknown category."),
                              fields={"category_id": [_("Unknown category.")]})
    return category


def _locale(locale: str) -> str:
    locales = current_app.config["SERVICEDESK_LOCALES"]
    if locale not in locales:
        raise ValidationError(
            _("Unknown language %(locale)s.", locale=repr(locale)),
            fields={"locale": [_("One of: %(values)s.", values=", ".join(locales))]})
    return locale


def _resolve(data: dict) -> dict:
    """``data``'s content fields as column values, each checked."""
    values: dict = {}
    if "title" in data:
        values["title"] = data["title"]
    if "body" in data:
        values["body"] = data["body"] or ""
    if "category_id" in data:
        values["category"] = _category(data["category_id"])
    if "service_id" in data:
        values["service_id"] = data["service_id"]
    if "tags" in data:
        values["tags"] = normalize_tags(data["tags"])
    if "audience" in data:
        values["audience"] = data["audience"]
    if "locale" in data:
        values["locale"] = _locale(data["locale"])
    if "owner" in data:
        values["owner"] = core.find_user(data["owner"], "owner", staff=True)
    return values


def _index(article: Article) -> None:
    """The derived search columns (the FTS index follows them: triggers / GIN)."""
    article.search_title = search.normalize(article.title)
    article.search_body = search.normalize(markdown.plain_text(article.body))
    article.search_config = search.config_for(article.locale)


# --- versions ------------------------------------------------------------------------


_ATTRIBUTE_FIELD = {"category": "category_id", "owner": "owner"}


def _snapshot(article: Article, actor: User | None, action: str, changes: list[str]):
    db.session.flush()  # the article's version is now this save's number
    version = ArticleVersion(
        article_id=article.id, number=article.version, actor_id=actor.id if actor else None,
        at=article.updated_at, action=action, changes=changes,
        title=article.title, body=article.body, tags=article.tags,
        category_id=article.category_id, service_id=article.service_id,
        audience=article.audience, state=article.state, locale=article.locale,
        owner_id=article.owner_id,
    )
    db.session.add(version)
    return version


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else saved this article at the same moment; reload and "
                         "apply your change again."),
                       fields={"version": [_("Stale.")]}, code="stale_version") from None
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(_("The change conflicts with existing data."), code="integrity") from exc


def _check_version(article: Article, version) -> None:
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != article.version:
        raise Conflict(
            _("The article was changed by someone else (version %(current)s, you sent "
              "%(sent)s); reload it and apply your change again.",
              current=article.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=article.version)]},
            code="stale_version")


# --- writing -------------------------------------------------------------------------


def create_article(actor: User, data: dict, ticket: Ticket | None = None) -> Article:
    """A new draft, owned by ``actor`` unless ``owner`` says otherwise; linked to
    ``ticket`` when written from one."""
    _require_staff(actor)
    core.check_writable(actor, data.keys(), WRITE_FIELDS, WHY_NOT)
    now = utcnow()
    article = Article(owner=actor, state="draft", audience="employees", locale="en",
                      body="", tags="", created_at=now, updated_at=now)
    for attr, value in _resolve(data).items():
        setattr(article, attr, value)
    _index(article)
    db.session.add(article)
    changes = sorted(data.keys())
    _snapshot(article, actor, "created", changes)
    if ticket is not None:
        db.session.add(TicketLink(article_id=article.id, ticket_id=ticket.id,
                                  linked_by_id=actor.id, linked_at=now))
    _commit()
    return article


def update_article(actor: User, article_id: int, data: dict) -> Article:
    data = dict(data)
    version = data.pop("version", None)
    article = get_article(actor, article_id)
    _require_staff(actor)
    core.check_writable(actor, data.keys(), WRITE_FIELDS, WHY_NOT)
    if article.state not in workflow.EDITABLE.get(actor.role, ()):
        if article.state == "archived":
            raise Conflict(_("The article is archived; move it back to draft to edit it."),
                           code="article_archived")
        raise Forbidden(
            _("Your role (%(role)s) may edit drafts and articles in review; move this one "
              "back to draft, or ask a manager.", role=actor.role),
            fields={name: [_("Not editable by you while %(state)s.", state=article.state)]
                    for name in data} or None)
    _check_version(article, version)
    changed = []
    for attr, value in _resolve(data).items():
        if getattr(article, attr) != value:
            setattr(article, attr, value)
            changed.append(_ATTRIBUTE_FIELD.get(attr, attr))
    if changed:
        article.updated_at = utcnow()
        _index(article)
        _snapshot(article, actor, "updated", sorted(changed))
    _commit()
    return article


def transition_article(actor: User, article_id: int, target: str, version=None) -> Article:
    article = get_article(actor, article_id)
    _require_staff(actor)
    if version is not None:
        _check_version(article, version)
    source = article.state
    roles = workflow.TRANSITIONS.get((source, target))
    allowed = ", ".join(workflow.allowed(source, actor.role)) or _("none")
    if roles is None:
        raise Conflict(
            _("Cannot move an article from %(source)s to %(target)s; allowed: %(allowed)s.",
              source=source, target=target, allowed=allowed),
            fields={"to": [_("Allowed from %(source)s: %(allowed)s.",
                             source=source, allowed=allowed)]},
            code="invalid_transition")
    if actor.role not in roles:
        raise Forbidden(
            _("Your role may not move an article from %(source)s to %(target)s; "
              "allowed: %(allowed)s.", source=source, target=target, allowed=allowed),
            fields={"to": [_("Managers and admins publish and archive articles.")]})
    now = utcnow()
    article.state = target
    article.updated_at = now
    if target == "published":
        article.published_at = now
    _snapshot(article, actor, "transition", ["state"])
    _commit()
    return article


# --- history -------------------------------------------------------------------------


def list_versions(actor: User, article_id: int) -> list[ArticleVersion]:
    article = get_article(actor, article_id)
    _require_staff(actor)
    return list(db.session.scalars(
        select(ArticleVersion).options(joinedload(ArticleVersion.actor))
        .where(ArticleVersion.article_id == article.id).order_by(ArticleVersion.number)))


def _version_text(version: ArticleVersion) -> list[str]:
    head = [
        f"Title: {version.title}",
        f"State: {version.state}",
        f"Audience: {version.audience}",
        f"Language: {version.locale}",
        f"Category: {version.category_id or '-'}",
        f"Service: {version.service_id or '-'}",
        f"Tags: {', '.join(version.tag_list)}",
        "",
    ]
    return head + (version.body or "").splitlines()


def diff_versions(actor: User, article_id: int, old: int, new: int) -> dict:
    """A unified diff between two versions' content (title, metadata and body)."""
    versions = {v.number: v for v in list_versions(actor, article_id)}
    missing = {name: [_("No version %(n)s.", n=number)]
               for name, number in (("from", old), ("to", new)) if number not in versions}
    if missing:
        raise NotFound(_("No such version of this article."), fields=missing)
    lines = list(difflib.unified_diff(
        _version_text(versions[old]), _version_text(versions[new]),
        fromfile=f"version {old}", tofile=f"version {new}", lineterm="", n=3))
    return {"from": old, "to": new, "unified": "\n".join(lines),
            "lines": [{"kind": _diff_kind(line), "text": line} for line in lines]}


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "same")


# --- listing and search --------------------------------------------------------------


def _filters(actor: User, filters: dict) -> list:
    where = []
    if filters.get("state"):
        where.append(Article.state.in_(filters["state"]))
    if filters.get("audience"):
        where.append(Article.audience == filters["audience"])
    if filters.get("locale"):
        where.append(Article.locale == filters["locale"])
    if filters.get("category_id"):
        where.append(Article.category_id == filters["category_id"])
    if filters.get("service_id"):
        where.append(Article.service_id == filters["service_id"])
    if filters.get("tag"):
        tag = normalize_tags([filters["tag"]], "tag").strip(",")
        escaped = tag.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(Article.tags.like(f"%,{escaped},%", escape="\\"))
    if filters.get("owner"):
        if not actor.is_staff:  # "unknown user" answers would tell who exists
            raise Forbidden(_("Only IT staff filter articles by owner."),
                            fields={"owner": [_("Only IT staff filter by owner.")]},
                            code="forbidden_fields")
        where.append(Article.owner_id == core.find_user(filters["owner"], "owner").id)
    return where


def list_articles(actor: User, filters: dict, cursor: int | None = None,
                  limit: int = 50, portal: bool = False):
    """Articles ``actor`` may see, newest id first; (items, next_cursor)."""
    where = visible(actor, portal) + _filters(actor, filters)
    if cursor:
        where.append(Article.id < cursor)
    rows = list(db.session.scalars(
        select(Article).options(joinedload(Article.owner), joinedload(Article.category))
        .where(*where).order_by(Article.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def search_articles(actor: User, query: str, filters: dict | None = None, limit: int = 20,
                    portal: bool = False) -> list[search.Hit]:
    """Ranked matches for ``query`` among the articles ``actor`` may see."""
    where = visible(actor, portal) + _filters(actor, filters or {})
    return search.search(where, query, limit=limit)


def suggest(actor: User, query: str, limit: int = 5) -> list[search.Hit]:
    """Published articles that may answer what is being typed (any word, last one a
    prefix): the new-incident form's suggestions."""
    return search.search(visible(actor, portal=True), query, any_word=True, limit=limit)


# --- tickets -------------------------------------------------------------------------


def find_ticket(actor: User, number: str, field: str = "ticket") -> Ticket:
    """A ticket of any kind ``actor`` may see, by number (else a 404 naming the field)."""
    ticket = db.session.scalars(
        select(Ticket).where(Ticket.number == number, visible_tickets_clause(actor, Ticket))
    ).one_or_none()
    if ticket is None:
        raise NotFound(_("No ticket %(number)s.", number=number),
                       fields={field: [_("Unknown ticket, or not one you can see.")]})
    return ticket


def draft_from_ticket(actor: User, number: str) -> tuple[Ticket, dict]:
    """What an article written from a resolved ticket starts with (nothing is saved):
    its title, the problem as reported and the resolution, its category and service."""
    _require_staff(actor)
    ticket = find_ticket(actor, number)
    if not (ticket.resolution_notes or "").strip():
        raise Conflict(
            _("%(number)s has no resolution yet; articles are written from resolved "
              "tickets.", number=number),
            fields={"ticket": [_("Not resolved.")]}, code="ticket_not_resolved")
    body = "\n\n".join([
        "## " + _("Problem"), (ticket.description or ticket.title).strip(),
        "## " + _("Resolution"), ticket.resolution_notes.strip(),
    ])
    data = {"title": ticket.title, "body": body,
            "locale": _author_locale(actor)}
    category = ticket.subcategory_id or ticket.category_id
    if category is not None:
        data["category_id"] = category
    if ticket.service_id is not None:
        data["service_id"] = ticket.service_id
    return ticket, data


def _author_locale(actor: User) -> str:
    locales = current_app.config["SERVICEDESK_LOCALES"]
    return actor.locale if actor.locale in locales else locales[0]


def create_from_ticket(actor: User, number: str, data: dict | None = None) -> Article:
    """A draft prefilled from resolved ticket ``number`` (``data`` overrides fields),
    linked to it."""
    ticket, prefill = draft_from_ticket(actor, number)
    return create_article(actor, {**prefill, **(data or {})}, ticket=ticket)


def link_ticket(actor: User, article_id: int, number: str) -> TicketLink:
    article = get_article(actor, article_id)
    _require_staff(actor)
    ticket = find_ticket(actor, number)
    link = db.session.scalars(select(TicketLink).where(
        TicketLink.article_id == article.id, TicketLink.ticket_id == ticket.id)).one_or_none()
    if link is not None:
        return link  # linking twice is linking once
    link = TicketLink(article_id=article.id, ticket_id=ticket.id, linked_by_id=actor.id,
                      linked_at=utcnow())
    db.session.add(link)
    _commit()
    return link


def unlink_ticket(actor: User, article_id: int, number: str) -> None:
    article = get_article(actor, article_id)
    _require_staff(actor)
    ticket = find_ticket(actor, number)
    link = db.session.scalars(select(TicketLink).where(
        TicketLink.article_id == article.id, TicketLink.ticket_id == ticket.id)).one_or_none()
    if link is None:
        raise NotFound(_("%(number)s is not linked to this article.", number=number),
                       fields={"ticket": [_("Not linked.")]})
    db.session.delete(link)
    _commit()


def ticket_links(actor: User, article: Article) -> list[TicketLink]:
    """The article's links to tickets ``actor`` may see, newest first."""
    if not actor.is_staff:
        return []
    return list(db.session.scalars(
        select(TicketLink).join(Ticket, Ticket.id == TicketLink.ticket_id)
        .options(joinedload(TicketLink.ticket), joinedload(TicketLink.linked_by))
        .where(TicketLink.article_id == article.id, visible_tickets_clause(actor, Ticket))
        .order_by(TicketLink.id.desc())))


def articles_for_ticket(actor: User, number: str) -> list[Article]:
    """Articles linked to ticket ``number`` that ``actor`` may see."""
    ticket = find_ticket(actor, number)
    return list(db.session.scalars(
        select(Article).join(TicketLink, and_(TicketLink.article_id == Article.id,
                                              TicketLink.ticket_id == ticket.id))
        .options(joinedload(Article.owner), joinedload(Article.category))
        .where(*visible(actor)).order_by(Article.id)))
