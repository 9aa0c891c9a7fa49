"""Every user-facing string can be translated: extraction finds them, templates hide none."""

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "servicedesk" / "web" / "templates"


def _catalogue():
    method_map = [("**.py", "python"), ("web/templates/**.html", "jinja2")]
    return {message for _file, _line, message, _comments, _context
            in extract_from_dir(str(ROOT / "servicedesk"), method_map)}


def test_the_babel_configuration_extracts_the_pages_strings():
    config = (ROOT / "babel.cfg").read_text()
    assert "[python: **.py]" in config and "[jinja2: web/templates/**.html]" in config
    messages = _catalogue()
    for expected in ("Sign in", "Report an incident", "Queue", "My incidents"):
        assert expected in messages
    # The service layer's domain errors are translatable too.
    for expected in (
        "Cannot move from %(source)s to %(target)s; allowed: %(allowed)s.",
        "%(number)s was changed by someone else (version %(current)s, you sent "
        "%(sent)s); reload it and apply your change again.",
        "Unknown username or wrong password.",
    ):
        assert expected in messages
    assert len(messages) > 100


def _visible_text(template: str) -> str:
    text = re.sub(r"{#.*?#}", " ", template, flags=re.S)
    text = re.sub(r"{%.*?%}|{{.*?}}", " ", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S)
    text = re.sub(r"<[^>]*>", " ", text, flags=re.S)
    text = re.sub(r"[\w-]+=\"[^\"]*\"", " ", text)  # attributes emitted by macros
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    return text


def test_no_template_shows_text_that_bypasses_translation():
    untranslated = {}
    for path in TEMPLATES.rglob("*.html"):
        words = re.findall(r"[^\W\d_]{2,}", _visible_text(path.read_text()))
        words = [w for w in words if w != "servicedesk"]  # the product's name
        if words:
            untranslated[str(path.relative_to(TEMPLATES))] = words[:10]
    assert not untranslated
