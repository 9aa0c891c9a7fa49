"""Article bodies: Markdown rendered to HTML that can carry no script, and plain text.

Two independent layers, so a gap in one is covered by the other:

1. markdown-it-py (CommonMark) with raw HTML turned off: ``<script>`` typed in a body
   comes out as text, and its link validator refuses ``javascript:``, ``vbscript:``,
   ``file:`` and most ``data:`` URLs.
2. nh3 (ammonia) cleans the result against an allowlist: only the tags and attributes
   Markdown produces, URLs only ``http``, ``https`` and ``mailto`` (or relative), every
   link ``rel="noopener noreferrer nofollow"``. Event-handler attributes, ``style``,
   SVG and ``data:`` URIs never pass.

The page's CSP (``script-src 'self'``) would stop an inline script that slipped
through anyway; ``tests/test_kb_markdown.py`` holds an XSS corpus against this module.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
_md.enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "img",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}


def render(body: str | None) -> Markup:
    """The body as safe HTML (a ``Markup``, so Jinja does not escape it again)."""
    html = _md.render(body or "")
    return Markup(nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    ))


def plain_text(body: str | None) -> str:
    """The words a reader sees (no Markdown syntax, no URLs): what search indexes."""
    parts: list[str] = []
    for token in _md.parse(body or ""):
        if token.type in ("fence", "code_block"):
            parts.append(token.content)
        elif token.type == "inline":
            for child in token.children or ():
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
                elif child.type == "image":
                    parts.append(child.content)  # the alt text
        if token.block and token.nesting != 1:
            parts.append("\n")
    text = "".join(parts)
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())
