"""Factories shared by the CMDB tests (tests/test_cmdb_*.py): a small estate, built
through the services as the system (``actor=None``)."""

from __future__ import annotations

import pytest

from cmdb import service
from cmdb.seed import seed_classes


class Estate:
    """``ci(name, cls, **attributes)`` and ``relate(a, type, b)``, by name."""

    def __init__(self):
        seed_classes()
        self.cis = {}

    def ci(self, name: str, cls: str = "server", key: str | None = None, status: str = "in_use",
           **attributes):
        ci = service.create_ci(None, {"name": name, "class": cls, "status": status,
                                      "external_key": key or name, "attributes": attributes})
        self.cis[name] = ci
        return ci

    def relate(self, source: str, type_: str, target: str):
        return service.create_relation(None, {"source": self.cis[source].id, "type": type_,
                                              "target": self.cis[target].id})

    def id(self, name: str) -> int:
        return self.cis[name].id


@pytest.fixture
def estate(app):
    return Estate()


@pytest.fixture
def payroll(estate):
    """Payroll (business service) <- payroll app (part of) -> runs on vm-1 -> hosted on
    esx-1 -> hosted on dc-1; the app depends on payroll-db, which runs on db-1 (also in
    dc-1) and is part of the technical service "Database hosting"; mail runs on vm-2 on
    esx-1 and is part of "E-mail". sw-1 and sw-2 connect to each other (a cycle) and
    esx-1 connects to sw-1."""
    e = estate
    e.ci("dc-1", "location")
    e.ci("esx-1", "server")
    e.ci("db-1", "server")
    e.ci("vm-1", "virtual_machine")
    e.ci("vm-2", "virtual_machine")
    e.ci("sw-1", "network_device")
    e.ci("sw-2", "network_device")
    e.ci("payroll-db", "database")
    e.ci("payroll app", "application")
    e.ci("mail", "application")
    e.ci("Payroll", "business_service")
    e.ci("E-mail", "business_service")
    e.ci("Database hosting", "technical_service")
    for source, kind, target in [
        ("esx-1", "hosted_on", "dc-1"), ("db-1", "hosted_on", "dc-1"),
        ("vm-1", "hosted_on", "esx-1"), ("vm-2", "hosted_on", "esx-1"),
        ("payroll app", "runs_on", "vm-1"), ("mail", "runs_on", "vm-2"),
        ("payroll app", "depends_on", "payroll-db"), ("payroll-db", "runs_on", "db-1"),
        ("payroll app", "part_of", "Payroll"), ("mail", "part_of", "E-mail"),
        ("payroll-db", "part_of", "Database hosting"),
        ("esx-1", "connects_to", "sw-1"), ("sw-1", "connects_to", "sw-2"),
        ("sw-2", "connects_to", "sw-1"),
    ]:
        e.relate(source, kind, target)
    return e
