"""The CMDB is a package of its own: the core depends on it, never the other way round.

Every module of ``cmdb/`` may import only ``cmdb`` itself, the foundations of the core
(database, errors, types, the API plumbing, identity, the plugin manager) and
third-party libraries: no ITIL process (incidents, problems, changes, requests), not
the work-item core (tickets), not the SLA. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CMDB = ROOT / "cmdb"
ALLOWED_CORE = {
    "servicedesk.extensions", "servicedesk.errors", "servicedesk.types", "servicedesk.api",
    "servicedesk.identity", "servicedesk.identity.models", "servicedesk.plugins",
}


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside cmdb
                continue
            yield node.lineno, node.module or ""
            if node.module == "servicedesk":  # from servicedesk import tickets
                for alias in node.names:
                    yield node.lineno, f"servicedesk.{alias.name}"


def test_cmdb_imports_only_the_core_foundations():
    modules = sorted(CMDB.rglob("*.py"))
    assert len(modules) >= 10  # models, schemas, service, impact, importer, graph, api...
    offenders = []
    for path in modules:
        for line, name in _imports(path):
            if name == "servicedesk" or not name.startswith("servicedesk"):
                continue
            if name not in ALLOWED_CORE:
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert offenders == []


def test_the_boundary_check_would_catch_a_forbidden_import(tmp_path):
    """The check itself works: each way of importing a process package is seen."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import servicedesk.incidents.service\n"
        "from servicedesk.tickets.models import Ticket\n"
        "from servicedesk import sla\n"
        "def f():\n"
        "    from servicedesk.incidents import views\n"
    )
    names = [name for _line, name in _imports(sample)]
    assert [n for n in names if n != "servicedesk" and n not in ALLOWED_CORE] == [
        "servicedesk.incidents.service", "servicedesk.tickets.models", "servicedesk.sla",
        "servicedesk.incidents"]

