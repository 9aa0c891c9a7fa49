"""Package boundaries that the architecture relies on."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROCESS_PACKAGES = ("servicedesk.incidents", "servicedesk.problems", "servicedesk.changes",
                    "servicedesk.requests")


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_cmdb_imports_none_of_the_itil_process_packages():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "cmdb").rglob("*.py")
        for name in _imports(path)
        if name.startswith(PROCESS_PACKAGES)
    ]
    assert not offenders


def test_the_work_item_core_does_not_depend_on_any_ticket_kind():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "servicedesk" / "tickets").rglob("*.py")
        for name in _imports(path)
        if name.startswith(PROCESS_PACKAGES)
    ]
    assert not offenders


def test_the_shared_page_helpers_depend_on_no_ticket_kind():
    # Every kind's pages import servicedesk.web.helpers: it may not depend on one of them.
    path = ROOT / "servicedesk" / "web" / "helpers.py"
    assert not [name for name in _imports(path) if name.startswith(PROCESS_PACKAGES)]
