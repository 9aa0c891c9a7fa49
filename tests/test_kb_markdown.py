"""Article bodies: Markdown in, HTML out, and no script survives (an XSS corpus)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from servicedesk.kb.markdown import plain_text, render

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](%6A%61vascript:alert(1))",
    "[click]( javascript:alert(1))",
    "<javascript:alert(1)>",
    "[click](vbscript:msgbox(1))",
    "[ref]\n\n[ref]: javascript:alert(1)",
    '<a href="javascript:alert(1)">x</a>',
    "<img src=x onerror=alert(1)>",
    '![x](x" onerror="alert(1))',
    "![x](x.png 'a\" onerror=\"alert(1)')",
    '![x](javascript:alert(1))',
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x](data:image/png;base64,iVBORw0KGgo=)",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '<svg onload=alert(1)><circle r="1"/></svg>',
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<object data="data:text/html,<script>alert(1)</script>"></object>',
    "<details open ontoggle=alert(1)>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<!-- --><script>alert(1)</script>",
    "`<script>alert(1)</script>`",
    "```html\n<script>alert(1)</script>\n```",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "**<b onmouseover=alert(1)>bold</b>**",
    "<form action=javascript:alert(1)><button>x</button></form>",
    "<base href=javascript:alert(1)//>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
]

SAFE_TAGS = {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "del", "s",
             "code", "pre", "blockquote", "ul", "ol", "li", "a", "img", "table", "thead",
             "tbody", "tr", "th", "td"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


def safe_url(url: str) -> bool:
    """As a browser reads it (tabs and newlines removed, controls and spaces trimmed):
    no scheme (a relative URL), or http, https, mailto."""
    url = re.sub(r"[\t\n\r]", "", url or "").strip("\x00- ")
    scheme = _SCHEME.match(url)
    return scheme is None or scheme.group(1).lower() in ("http", "https", "mailto")


class Elements(HTMLParser):
    """Every element and attribute a browser would build from the HTML."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def unsafe(html: str) -> list[str]:
    problems = []
    for tag, attrs in Elements(html).found:
        if tag not in SAFE_TAGS:
            problems.append(f"<{tag}>")
        for name, value in attrs.items():
            if name.startswith("on") or name == "style":
                problems.append(f"{tag}[{name}]")
            if name in ("href", "src") and not safe_url(value):
                problems.append(f"{tag}[{name}={value}]")
    return problems


@pytest.mark.parametrize("source", XSS)
def test_no_script_survives_rendering(source):
    html = str(render(source))
    assert unsafe(html) == [], html


def test_every_url_left_is_http_https_mailto_or_relative():
    html = str(render("\n\n".join(XSS + [
        "[ok](https://example.com/a?b=1)", "[mail](mailto:it@example.com)", "[rel](/portal)",
    ])))
    urls = [attrs[name] for _tag, attrs in Elements(html).found
            for name in ("href", "src") if name in attrs]
    assert "https://example.com/a?b=1" in urls and "mailto:it@example.com" in urls
    assert all(safe_url(url) for url in urls), urls


def test_markdown_renders_with_safe_links():
    html = str(render("# Reset\n\nOpen **Settings**, then [the portal](https://it.example/reset)"
                      " and run `passwd`.\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |"))
    assert "<h1>Reset</h1>" in html
    assert "<strong>Settings</strong>" in html
    assert '<a href="https://it.example/reset" rel="noopener noreferrer nofollow">' in html
    assert "<code>passwd</code>" in html
    assert "<li>two</li>" in html and "<td>2</td>" in html


def test_html_typed_into_a_body_is_shown_as_text():
    html = str(render("Use <b>this</b> & <that>"))
    assert "&lt;b&gt;this&lt;/b&gt; &amp; &lt;that&gt;" in html


def test_plain_text_is_what_a_reader_sees():
    text = plain_text("# Title\n\nSome **bold** [link](https://example.com) and `code`.\n\n"
                      "![a printer](p.png)\n\n```\nfenced\n```")
    assert text.splitlines() == ["Title", "Some bold link and code.", "a printer", "fenced"]
    assert "https" not in text and "**" not in text
