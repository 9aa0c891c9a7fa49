"""marshmallow schemas of the knowledge-base API (and its pages' forms)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate
from webargs.fields import DelimitedList

from servicedesk.kb import markdown
from servicedesk.kb.analytics import DEFLECTION_SOURCES, MAX_DAYS
from servicedesk.kb.workflow import AUDIENCES, STATES
from servicedesk.tickets.schemas import MAX_ID, Id, Stripped, Version

def QueryId(**kwargs) -> fields.Integer:
    """An id in a query string (text, so not strict), within the database's range."""
    return fields.Integer(validate=validate.Range(min=1, max=MAX_ID), **kwargs)


_ticket_number = dict(validate=validate.Length(min=1, max=20))


class ArticleCreateSchema(ma.Schema):
    title = Stripped(required=True, validate=validate.Length(min=1, max=200))
    body = fields.String(validate=validate.Length(max=100_000),
                         metadata={"description": "Markdown (raw HTML is shown as text)."})
    category_id = Id(allow_none=True)
    service_id = Id(allow_none=True, metadata={"description": "A catalogue service's id."})
    tags = fields.List(fields.String(validate=validate.Length(max=40)),
                       validate=validate.Length(max=20))
    audience = fields.String(validate=validate.OneOf(AUDIENCES))
    locale = fields.String(validate=validate.Length(min=2, max=16))
    owner = fields.String(validate=validate.Length(min=1, max=150),
                          metadata={"description": "Username of a staff member."})
    # Accepted by the schema only so the service can say why it is refused.
    state = fields.String(metadata={"description": "Not writable: use /transition."})


class ArticleUpdateSchema(ArticleCreateSchema):
    title = Stripped(validate=validate.Length(min=1, max=200))
    version = Version(required=True, metadata={"description": "The version you last read."})


class ArticleFromTicketSchema(ma.Schema):
    ticket = fields.String(required=True, **_ticket_number,
                           metadata={"description": "A resolved ticket's number."})


class ArticleTransitionSchema(ma.Schema):
    to = fields.String(required=True, validate=validate.OneOf(STATES))
    version = Version()


class ArticleQuerySchema(ma.Schema):
    state = DelimitedList(fields.String(validate=validate.OneOf(STATES)))
    audience = fields.String(validate=validate.OneOf(AUDIENCES))
    locale = fields.String(validate=validate.Length(min=2, max=16))
    category_id = QueryId()
    service_id = QueryId()
    tag = fields.String(validate=validate.Length(min=1, max=40))
    owner = fields.String(validate=validate.Length(min=1, max=150))
    cursor = QueryId(metadata={"description": "next_cursor of the previous page."})
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))


class SearchQuerySchema(ArticleQuerySchema):
    q = fields.String(required=True, validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 50))

    class Meta:
        exclude = ("cursor",)


class SuggestQuerySchema(ma.Schema):
    q = fields.String(required=True, validate=validate.Length(min=1, max=200))
    limit = fields.Integer(load_default=5, validate=validate.Range(1, 20))


def _category_name(article):
    return article.category.name if article.category else None


class ArticleSummarySchema(ma.Schema):
    id = fields.Integer()
    title = fields.String()
    category_id = fields.Integer(allow_none=True)
    category = fields.Function(_category_name)
    service_id = fields.Integer(allow_none=True)
    tags = fields.Function(lambda a: a.tag_list)
    audience = fields.String()
    state = fields.String()
    locale = fields.String()
    owner = fields.Function(lambda a: a.owner.username)
    owner_name = fields.Function(lambda a: a.owner.name)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    published_at = fields.DateTime(allow_none=True)
    version = fields.Integer()


class ArticleSchema(ArticleSummarySchema):
    body = fields.String(metadata={"description": "Markdown source."})
    body_html = fields.Function(
        lambda a: str(markdown.render(a.body)),
        metadata={"description": "The body rendered and sanitised (no script survives)."})
    allowed_transitions = fields.Function(
        lambda a: getattr(a, "allowed_transitions", []),
        metadata={"description": "States the caller may move it to now."})


class ArticlePageSchema(ma.Schema):
    items = fields.List(fields.Nested(ArticleSummarySchema))
    next_cursor = fields.Integer(allow_none=True)


class HitSchema(ma.Schema):
    article = fields.Nested(ArticleSummarySchema)
    rank = fields.Float(metadata={"description": "Higher is better."})
    snippet_html = fields.Function(
        lambda h: str(h.snippet),
        metadata={"description": "An escaped excerpt; matches wrapped in <mark>."})


class SearchResultSchema(ma.Schema):
    items = fields.List(fields.Nested(HitSchema))


class VersionSchema(ma.Schema):
    number = fields.Integer()
    at = fields.DateTime()
    actor = fields.Function(lambda v: v.actor.username if v.actor else None)
    actor_name = fields.Function(lambda v: v.actor.name if v.actor else "System")
    action = fields.String()
    changes = fields.List(fields.String())
    title = fields.String()
    state = fields.String()
    audience = fields.String()
    locale = fields.String()
    tags = fields.Function(lambda v: v.tag_list)
    category_id = fields.Integer(allow_none=True)
    service_id = fields.Integer(allow_none=True)
    body = fields.String()


class DiffQuerySchema(ma.Schema):
    from_ = QueryId(required=True, data_key="from")
    to = QueryId(required=True)


class DiffLineSchema(ma.Schema):
    kind = fields.String(metadata={"description": "file, hunk, add, del or same"})
    text = fields.String()


class DiffSchema(ma.Schema):
    from_ = fields.Integer(data_key="from", attribute="from")
    to = fields.Integer()
    unified = fields.String(metadata={"description": "A unified diff (plain text)."})
    lines = fields.List(fields.Nested(DiffLineSchema))


class LinkCreateSchema(ma.Schema):
    ticket = fields.String(required=True, **_ticket_number)


class LinkSchema(ma.Schema):
    ticket = fields.Function(lambda link: link.ticket.number)
    kind = fields.Function(lambda link: link.ticket.kind)
    title = fields.Function(lambda link: link.ticket.title)
    status = fields.Function(lambda link: link.ticket.status)
    linked_by = fields.Function(lambda link: link.linked_by.username if link.linked_by else None)
    linked_at = fields.DateTime()


class DeflectionCreateSchema(ma.Schema):
    article_id = Id(required=True)
    query = fields.String(load_default="", validate=validate.Length(max=200),
                          metadata={"description": "What the employee was looking for."})


class DeflectionSchema(ma.Schema):
    id = fields.Integer()
    article_id = fields.Integer()
    source = fields.String(validate=validate.OneOf(DEFLECTION_SOURCES))
    query = fields.String()
    at = fields.DateTime()


class AnalyticsQuerySchema(ma.Schema):
    days = fields.Integer(load_default=30, validate=validate.Range(1, MAX_DAYS))


class QueryFigureSchema(ma.Schema):
    query = fields.String()
    searches = fields.Integer()
    zero_results = fields.Integer()
    tickets = fields.Integer(metadata={"description": "Searches a ticket followed."})
    clicks = fields.Integer()


class ArticleFigureSchema(ma.Schema):
    id = fields.Integer()
    title = fields.String()
    locale = fields.String()
    count = fields.Integer()


class AnalyticsSchema(ma.Schema):
    days = fields.Integer()
    since = fields.DateTime()
    searches = fields.Integer()
    zero_result_searches = fields.Integer()
    searches_followed_by_ticket = fields.Integer()
    searches_with_click = fields.Integer()
    deflections = fields.Integer()
    portal_tickets = fields.Integer()
    deflection_rate = fields.Float(
        allow_none=True,
        metadata={"description": "deflections / (deflections + portal tickets); null if none."})
    top_queries = fields.List(fields.Nested(QueryFigureSchema))
    zero_result_queries = fields.List(fields.Nested(QueryFigureSchema))
    most_viewed = fields.List(fields.Nested(ArticleFigureSchema))
    most_helpful = fields.List(fields.Nested(ArticleFigureSchema))
