"""The docs must not drift from the code: every hook is documented with its signature."""

import inspect
import re
from pathlib import Path

from servicedesk import hookspecs

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _hookspecs():
    return {
        name: func for name, func in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("servicedesk_")
    }


def test_every_hook_is_in_the_plugin_guide_with_its_signature_and_an_example():
    guide = (DOCS / "plugins.md").read_text()
    missing = []
    for name, func in _hookspecs().items():
        params = ", ".join(inspect.signature(func).parameters)
        if f"#### `{name}({params})`" not in guide:
            missing.append(f"{name}({params})")
        # an example implementing it, in a code block after the heading
        section = guide.split(f"#### `{name}(", 1)[-1].split("\n#### ", 1)[0]
        if not re.search(rf"@hookimpl\s+def {name}\(", section):
            missing.append(f"example for {name}")
    assert not missing, f"docs/plugins.md lacks: {missing}"


def test_the_plugin_guide_documents_no_hook_that_does_not_exist():
    guide = (DOCS / "plugins.md").read_text()
    documented = set(re.findall(r"#### `(servicedesk_\w+)\(", guide))
    assert documented == set(_hookspecs())


def test_every_hookspec_has_a_docstring_saying_what_it_returns():
    for name, func in _hookspecs().items():
        assert func.__doc__ and ":return:" in func.__doc__, name
