"""Full-text search over articles: SQLite FTS5 or PostgreSQL text search, one interface.

**Normalisation.** Text is indexed and queried after ``normalize``: NFKC; combining
marks dropped (Hebrew niqqud, Arabic/Persian harakat: people rarely type them, and
FTS5's tokenizer would split a pointed word in pieces); Arabic yeh and kaf folded to
their Persian forms (both keyboards are in use); the zero-width non-joiner of Persian
compounds ("کتاب‌ها") made a space, so the stem is found on its own; ё as е. Both
back ends then see the same words.

**SQLite.** ``kb_articles_fts`` (FTS5, ``unicode61 remove_diacritics 2``, see
migration 0009). A user's query never reaches MATCH as syntax: it is cut into words,
each put in double quotes (FTS5's string syntax, quotes doubled), joined by spaces
(all words) or ``OR`` (any word, the last one a prefix: suggestions while typing).
Ranked by ``bm25`` with the title weighing most, then tags, then the body; snippets
by ``snippet()``.

**PostgreSQL.** A GIN index on the weighted tsvector of each article in its own
language's configuration (``LOCALE_CONFIGS``: a stemmer where PostgreSQL has one,
``simple`` for Persian and Hebrew, which it has none for). The query is parsed with
``websearch_to_tsquery`` (never a syntax error, whatever is typed) in every
configuration in use, OR-ed, so each article meets the query in its own language;
ranked by ``ts_rank``, snippets by ``ts_headline``.

**Highlights.** Both engines mark matches with two private-use characters (which
``normalize`` removes from the indexed text, so only the engine can put them there);
``highlight`` escapes the whole snippet and only then turns each pair into
``<mark>…</mark>``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import column, func, literal_column, select, table, text
from sqlalchemy.orm import joinedload

from servicedesk.extensions import db
from servicedesk.kb.models import Article

# A stemmer for the languages PostgreSQL has one for; 'simple' (lower-casing only)
# for the others, e.g. Persian and Hebrew.
LOCALE_CONFIGS = {
    "en": "english", "ru": "russian", "de": "german", "fr": "french", "es": "spanish",
    "it": "italian", "nl": "dutch", "pt": "portuguese", "sv": "swedish", "tr": "turkish",
    "ar": "arabic",
}
DEFAULT_CONFIG = "simple"

# Frozen copy in migrations/versions/0009_kb.py: the GIN index is on this expression.
PG_DOCUMENT = (
    "setweight(to_tsvector(search_config, coalesce(search_title, '')), 'A') || "
    "setweight(to_tsvector(search_config, coalesce(tags, '')), 'B') || "
    "setweight(to_tsvector(search_config, coalesce(search_body, '')), 'C')"
)

MARK_START, MARK_END = "\ue000", "\ue001"
MAX_TERMS = 32
SNIPPET_WORDS = 24

_FOLD = str.maketrans({
    "\u064a": "\u06cc", "\u0649": "\u06cc",  # Arabic yeh, alef maksura -> Persian yeh
    "\u0643": "\u06a9",                      # Arabic kaf -> Persian keheh
    "\u200c": " ",                           # ZWNJ: compound parts are words of their own
    "\u0451": "\u0435", "\u0401": "\u0415",  # ё -> е
    MARK_START: None, MARK_END: None,        # only the engines put highlight marks
    "\u0640": None,                          # tatweel (a stretching stroke)
})
_WORD = re.compile(r"\w+")
_SPACE = re.compile(r"\s+")


def normalize(value: str | None) -> str:
    """The text as indexed and as queried (see the module's docstring)."""
    value = unicodedata.normalize("NFKC", value or "").translate(_FOLD)
    return "".join(c for c in value if unicodedata.category(c) not in ("Mn", "Cf"))


def query_key(query: str) -> str:
    """A query as the analytics group it: normalised, case-folded, spaces collapsed."""
    return _SPACE.sub(" ", normalize(query).casefold()).strip()[:200]


def terms(query: str) -> list[str]:
    """The words of a query (letters and digits only), at most MAX_TERMS."""
    return _WORD.findall(normalize(query).casefold())[:MAX_TERMS]


def config_for(locale: str) -> str:
    return LOCALE_CONFIGS.get((locale or "").split("_")[0].lower(), DEFAULT_CONFIG)


def highlight(snippet: str | None) -> Markup:
    """Escape everything, then mark: the only markup in the result is ``<mark>``."""
    escaped = str(escape(snippet or ""))
    marked = re.sub(f"{MARK_START}([^{MARK_START}{MARK_END}]*){MARK_END}",
                    r"<mark>\1</mark>", escaped)
    return Markup(marked.replace(MARK_START, "").replace(MARK_END, ""))


def _loaded():
    """What a list of hits shows of each article: in the same statement, not per row."""
    return joinedload(Article.owner), joinedload(Article.category)


@dataclass
class Hit:
    article: Article
    rank: float
    snippet: Markup


def search(where: list, query: str, *, any_word: bool = False, limit: int = 10) -> list[Hit]:
    """Articles matching ``query`` among those ``where`` selects, best first.

    ``any_word``: an article matching any of the words counts, and the last word may
    be the start of one (the new-incident form asks while the title is typed);
    otherwise every word must match.
    """
    words = terms(query)
    if not words:
        return []
    if db.session.get_bind().dialect.name == "postgresql":
        return _postgresql(where, query, words, any_word, limit)
    return _sqlite(where, words, any_word, limit)


# --- SQLite FTS5 ---------------------------------------------------------------------


def fts5_query(words: list[str], any_word: bool) -> str:
    """A MATCH expression that is only quoted strings: no user text is FTS5 syntax."""
    quoted = ['"' + word.replace('"', '""') + '"' for word in words]
    if any_word:
        quoted[-1] += "*"
        return " OR ".join(quoted)
    return " ".join(quoted)


_FTS = table("kb_articles_fts", column("rowid"))


def _sqlite(where, words, any_word, limit) -> list[Hit]:
    rank = literal_column("bm25(kb_articles_fts, 10.0, 4.0, 1.0)")
    snippet = func.snippet(literal_column("kb_articles_fts"), 2, MARK_START, MARK_END, "…",
                           SNIPPET_WORDS)
    statement = (
        select(Article, rank.label("rank"), snippet.label("snippet"))
        .options(*_loaded())
        .select_from(_FTS.join(Article, Article.id == _FTS.c.rowid))
        .where(text("kb_articles_fts MATCH :match").bindparams(match=fts5_query(words, any_word)),
               *where)
        .order_by(rank, Article.id)
        .limit(limit)
    )
    # bm25: lower is better; shown as a positive score, higher better, like ts_rank.
    return [Hit(article, -float(score), highlight(snip))
            for article, score, snip in db.session.execute(statement)]


# --- PostgreSQL ----------------------------------------------------------------------


def _configs() -> list[str]:
    return sorted(set(LOCALE_CONFIGS.values()) | {DEFAULT_CONFIG})


def pg_query(query: str, words: list[str], any_word: bool):
    """The tsquery: the query in every configuration, OR-ed (a constant, so the GIN
    index applies). Configuration names come from LOCALE_CONFIGS, never from input."""
    if any_word:
        # Words only (letters, digits, underscores): to_tsquery syntax that cannot fail.
        expression = " | ".join(words[:-1] + [words[-1] + ":*"])
        parts = [f"to_tsquery('{name}'::regconfig, :q)" for name in _configs()]
        return text("(" + " || ".join(parts) + ")").bindparams(q=expression)
    parts = [f"websearch_to_tsquery('{name}'::regconfig, :q)" for name in _configs()]
    return text("(" + " || ".join(parts) + ")").bindparams(q=normalize(query))


def pg_best(where, tsquery, limit: int):
    """The ids and ranks of the best ``limit`` matches (the GIN index finds them)."""
    document = literal_column(f"({PG_DOCUMENT})")
    rank = func.ts_rank(document, tsquery)
    return (
        select(Article.id.label("id"), rank.label("rank"))
        .where(document.op("@@")(tsquery), *where)
        .order_by(rank.desc(), Article.id)
        .limit(limit)
    )


def _postgresql(where, query, words, any_word, limit) -> list[Hit]:
    tsquery = pg_query(query, words, any_word)
    best = pg_best(where, tsquery, limit).subquery()
    options = (f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords={SNIPPET_WORDS}, '
               'MinWords=8, MaxFragments=2, FragmentDelimiter=" … "')
    # ts_headline reads the whole body: only for the page of best hits.
    snippet = func.ts_headline(Article.search_config, Article.search_body, tsquery, options)
    statement = (
        select(Article, best.c.rank, snippet.label("snippet"))
        .options(*_loaded())
        .join(best, best.c.id == Article.id)
        .order_by(best.c.rank.desc(), Article.id)
    )
    return [Hit(article, float(score), highlight(snip))
            for article, score, snip in db.session.execute(statement)]
