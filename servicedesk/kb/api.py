"""REST endpoints of the knowledge base under /api/v1/kb: thin, like every API module.

API reads log nothing (the search log is the portal's: see ``kb.analytics``); a
channel that deflects a request (a chat bot, say) records it with POST /kb/deflections.
"""

from __future__ import annotations

from flask.views import MethodView
from marshmallow import RAISE

from servicedesk.api import actor, api_blueprint
from servicedesk.kb import analytics, service, workflow
from servicedesk.kb.schemas import (
    AnalyticsQuerySchema,
    AnalyticsSchema,
    ArticleCreateSchema,
    ArticleFromTicketSchema,
    ArticlePageSchema,
    ArticleQuerySchema,
    ArticleSchema,
    ArticleSummarySchema,
    ArticleTransitionSchema,
    ArticleUpdateSchema,
    DeflectionCreateSchema,
    DeflectionSchema,
    DiffQuerySchema,
    DiffSchema,
    LinkCreateSchema,
    LinkSchema,
    SearchQuerySchema,
    SearchResultSchema,
    SuggestQuerySchema,
    VersionSchema,
)

blp = api_blueprint("api_kb", __name__,
                    "Knowledge base: articles, search, suggestions, deflections, analytics.")

_query = dict(location="query", unknown=RAISE, error_status_code=400)


def _present(article):
    me = actor()
    article.allowed_transitions = (workflow.allowed(article.state, me.role)
                                   if me.is_staff else [])
    return article


@blp.route("/kb/articles")
class Articles(MethodView):
    @blp.arguments(ArticleQuerySchema, **_query)
    @blp.response(200, ArticlePageSchema)
    def get(self, args):
        """Articles you may see, newest first, filtered, with keyset paging."""
        limit = args.pop("limit")
        cursor = args.pop("cursor", None)
        items, next_cursor = service.list_articles(actor(), args, cursor, limit)
        return {"items": items, "next_cursor": next_cursor}

    @blp.arguments(ArticleCreateSchema)
    @blp.response(201, ArticleSchema)
    def post(self, data):
        """Write a new article (IT staff); it starts as a draft."""
        return _present(service.create_article(actor(), data))


@blp.route("/kb/search")
@blp.arguments(SearchQuerySchema, **_query)
@blp.response(200, SearchResultSchema)
def search(args):
    """The best full-text matches for ``q`` among the articles you may see, ranked, with
    highlighted snippets (every word must match; on PostgreSQL web-search syntax too:
    "a phrase", or, -word)."""
    query = args.pop("q")
    limit = args.pop("limit")
    return {"items": service.search_articles(actor(), query, args, limit=limit)}


@blp.route("/kb/articles/from-ticket", methods=["POST"])
@blp.arguments(ArticleFromTicketSchema)
@blp.response(201, ArticleSchema)
def from_ticket(data):
    """A draft prefilled from a resolved ticket (problem and resolution), linked to it."""
    return _present(service.create_from_ticket(actor(), data["ticket"]))


@blp.route("/kb/articles/<int(max=2147483647):article_id>")
class ArticleDetail(MethodView):
    @blp.response(200, ArticleSchema)
    def get(self, article_id):
        """One article, with its body rendered safely."""
        return _present(service.get_article(actor(), article_id))

    @blp.arguments(ArticleUpdateSchema)
    @blp.response(200, ArticleSchema)
    def patch(self, data, article_id):
        """Change fields; ``version`` must be the one you read, else 409."""
        return _present(service.update_article(actor(), article_id, data))


@blp.route("/kb/articles/<int(max=2147483647):article_id>/transition", methods=["POST"])
@blp.arguments(ArticleTransitionSchema)
@blp.response(200, ArticleSchema)
def transition(data, article_id):
    """draft → review → published → archived (managers and admins publish)."""
    return _present(service.transition_article(actor(), article_id, data["to"],
                                               data.get("version")))


@blp.route("/kb/articles/<int(max=2147483647):article_id>/versions")
@blp.response(200, VersionSchema(many=True))
def versions(article_id):
    """Every saved version: who, when, which fields changed, and the content (staff)."""
    return service.list_versions(actor(), article_id)


@blp.route("/kb/articles/<int(max=2147483647):article_id>/diff")
@blp.arguments(DiffQuerySchema, **_query)
@blp.response(200, DiffSchema)
def diff(args, article_id):
    """A unified diff between versions ``from`` and ``to`` (staff)."""
    return service.diff_versions(actor(), article_id, args["from_"], args["to"])


@blp.route("/kb/articles/<int(max=2147483647):article_id>/links")
class Links(MethodView):
    @blp.response(200, LinkSchema(many=True))
    def get(self, article_id):
        """Tickets this article is linked to (those you may see)."""
        return service.ticket_links(actor(), service.get_article(actor(), article_id))

    @blp.arguments(LinkCreateSchema)
    @blp.response(201, LinkSchema)
    def post(self, data, article_id):
        """Link the article to a ticket (incident, and later problem / known error)."""
        return service.link_ticket(actor(), article_id, data["ticket"])


@blp.route("/kb/articles/<int(max=2147483647):article_id>/links/<string:number>", methods=["DELETE"])
@blp.response(204)
def unlink(article_id, number):
    """Remove a link."""
    service.unlink_ticket(actor(), article_id, number)


@blp.route("/kb/tickets/<string:number>/articles")
@blp.response(200, ArticleSummarySchema(many=True))
def ticket_articles(number):
    """Articles linked to a ticket."""
    return service.articles_for_ticket(actor(), number)


@blp.route("/kb/suggest")
@blp.arguments(SuggestQuerySchema, **_query)
@blp.response(200, SearchResultSchema)
def suggest(args):
    """Published articles that may answer a problem being described (any word of
    ``q`` matches, the last one as a prefix): for a new-incident form."""
    return {"items": service.suggest(actor(), args["q"], args["limit"])}


@blp.route("/kb/deflections", methods=["POST"])
@blp.arguments(DeflectionCreateSchema)
@blp.response(201, DeflectionSchema)
def deflect(data):
    """"This solved my problem": count a deflection (no ticket is raised)."""
    row, _new = analytics.record_deflection(actor(), data["article_id"], "api",
                                            query=data["query"])
    return row


@blp.route("/kb/analytics")
@blp.arguments(AnalyticsQuerySchema, **_query)
@blp.response(200, AnalyticsSchema)
def kb_analytics(args):
    """Top and zero-result queries, most viewed and most helpful articles, the
    deflection rate (admins)."""
    return analytics.kb_analytics(actor(), args["days"])
