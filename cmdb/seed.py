"""The CI classes servicedesk starts with, and the demo estate of ``servicedesk demo``.

Migration 0007 inserts the same classes for a fresh install (a revision keeps its own
literal copy, so it means the same forever; tests/test_cmdb_classes.py checks the two
agree). ``seed_classes`` creates any that are missing (by key) and never changes one
an admin has edited.
"""

from __future__ import annotations

from sqlalchemy import select

from servicedesk.extensions import db

CRITICALITY = {"name": "criticality", "type": "enum", "label": "Criticality",
               "required": False, "help": "", "choices": ["low", "medium", "high", "critical"]}

SEED_CLASSES = [
    {"key": "location", "name": "Location", "parent": None, "service_type": None,
     "description": "A site, building, room or rack.",
     "attributes": [
         {"name": "address", "type": "string", "label": "Address", "required": False,
          "help": ""},
         {"name": "site_code", "type": "string", "label": "Site code", "required": False,
          "help": ""},
     ]},
    {"key": "business_service", "name": "Business service", "parent": None,
     "service_type": "business",
     "description": "What the business uses: payroll, e-mail, the web shop.",
     "attributes": [
         CRITICALITY,
         {"name": "service_owner", "type": "string", "label": "Service owner",
          "required": False, "help": ""},
     ]},
    {"key": "technical_service", "name": "Technical service", "parent": None,
     "service_type": "technical",
     "description": "What IT provides to other services: database hosting, backup, DNS.",
     "attributes": [CRITICALITY]},
    {"key": "application", "name": "Application", "parent": None, "service_type": None,
     "description": "Installed software that serves users or other systems.",
     "attributes": [
         {"name": "vendor", "type": "string", "label": "Vendor", "required": False,
          "help": ""},
         {"name": "version", "type": "string", "label": "Version", "required": False,
          "help": ""},
         {"name": "url", "type": "string", "label": "URL", "required": False, "help": ""},
     ]},
    {"key": "database", "name": "Database", "parent": None, "service_type": None,
     "description": "A database (instance or schema).",
     "attributes": [
         {"name": "engine", "type": "enum", "label": "Engine", "required": False,
          "help": "", "choices": ["postgresql", "mysql", "oracle", "sql_server", "sqlite",
                                   "other"]},
         {"name": "port", "type": "integer", "label": "Port", "required": False, "help": ""},
     ]},
    {"key": "server", "name": "Server", "parent": None, "service_type": None,
     "description": "A computer that runs software: physical, or (subclass) virtual.",
     "attributes": [
         {"name": "hostname", "type": "string", "label": "Host name", "required": False,
          "help": ""},
         {"name": "ip_address", "type": "ip_address", "label": "IP address",
          "required": False, "help": ""},
         {"name": "os", "type": "string", "label": "Operating system", "required": False,
          "help": ""},
         {"name": "cpu_cores", "type": "integer", "label": "CPU cores", "required": False,
          "help": ""},
         {"name": "memory_gb", "type": "decimal", "label": "Memory (GB)",
          "required": False, "help": ""},
         {"name": "location", "type": "reference", "label": "Location", "required": False,
          "help": "", "ci_class": "location"},
         {"name": "under_warranty", "type": "boolean", "label": "Under warranty",
          "required": False, "help": ""},
         {"name": "purchased_on", "type": "date", "label": "Purchased on",
          "required": False, "help": ""},
     ]},
    {"key": "virtual_machine", "name": "Virtual machine", "parent": "server",
     "service_type": None, "description": "A server that is a virtual machine.",
     "attributes": [
         {"name": "cluster", "type": "string", "label": "Cluster", "required": False,
          "help": ""},
     ]},
    {"key": "network_device", "name": "Network device", "parent": None, "service_type": None,
     "description": "Switches, routers, firewalls, load balancers, access points.",
     "attributes": [
         {"name": "device_type", "type": "enum", "label": "Device type", "required": False,
          "help": "", "choices": ["switch", "router", "firewall", "load_balancer",
                                   "access_point"]},
         {"name": "ip_address", "type": "ip_address", "label": "IP address",
          "required": False, "help": ""},
         {"name": "location", "type": "reference", "label": "Location", "required": False,
          "help": "", "ci_class": "location"},
     ]},
]

# The demo estate: (external key, name, class, attributes, owner group).
DEMO_CIS = [
    ("loc-ber-dc1", "Berlin DC 1", "location", {"site_code": "BER1",
                                                "address": "Alt-Moabit 1, Berlin"}, None),
    ("net-core-sw-01", "core-sw-01", "network_device",
     {"device_type": "switch", "ip_address": "10.0.0.2", "location": "loc-ber-dc1"},
     "Infrastructure"),
    ("net-core-sw-02", "core-sw-02", "network_device",
     {"device_type": "switch", "ip_address": "10.0.0.3", "location": "loc-ber-dc1"},
     "Infrastructure"),
    ("srv-db-01", "srv-db-01", "server",
     {"hostname": "srv-db-01.example.com", "ip_address": "10.0.1.10", "os": "Debian 12",
      "cpu_cores": 32, "memory_gb": "256", "location": "loc-ber-dc1",
      "under_warranty": True, "purchased_on": "2024-03-01"}, "Infrastructure"),
    ("srv-esx-01", "srv-esx-01", "server",
     {"hostname": "srv-esx-01.example.com", "ip_address": "10.0.1.20", "os": "ESXi 8",
      "cpu_cores": 64, "memory_gb": "512", "location": "loc-ber-dc1"}, "Infrastructure"),
    ("vm-payroll-01", "vm-payroll-01", "virtual_machine",
     {"hostname": "vm-payroll-01.example.com", "ip_address": "10.0.2.31",
      "os": "Debian 12", "cpu_cores": 4, "memory_gb": "16", "cluster": "BER-PROD"},
     "Infrastructure"),
    ("vm-mail-01", "vm-mail-01", "virtual_machine",
     {"hostname": "vm-mail-01.example.com", "ip_address": "10.0.2.40",
      "os": "Windows Server 2022", "cpu_cores": 8, "memory_gb": "64",
      "cluster": "BER-PROD"}, "Infrastructure"),
    ("db-payroll", "payroll-db", "database", {"engine": "postgresql", "port": 5432},
     "Engineering"),
    ("app-payroll", "Payroll application", "application",
     {"vendor": "In-house", "version": "4.2"}, "Engineering"),
    ("app-mail", "Mail server", "application", {"vendor": "Microsoft",
                                                "version": "Exchange 2019"}, "Workplace"),
    ("ts-db-hosting", "Database hosting", "technical_service", {"criticality": "high"},
     "Infrastructure"),
    ("bs-payroll", "Payroll", "business_service",
     {"criticality": "critical", "service_owner": "Head of HR"}, None),
    ("bs-email", "E-mail and calendar", "business_service",
     {"criticality": "high", "service_owner": "Head of IT"}, None),
]
DEMO_RELATIONS = [
    ("net-core-sw-01", "hosted_on", "loc-ber-dc1"),
    ("net-core-sw-02", "hosted_on", "loc-ber-dc1"),
    # A redundant pair: a cycle, which impact analysis follows only once.
    ("net-core-sw-01", "connects_to", "net-core-sw-02"),
    ("net-core-sw-02", "connects_to", "net-core-sw-01"),
    ("srv-db-01", "hosted_on", "loc-ber-dc1"),
    ("srv-esx-01", "hosted_on", "loc-ber-dc1"),
    ("srv-db-01", "connects_to", "net-core-sw-01"),
    ("srv-esx-01", "connects_to", "net-core-sw-01"),
    ("vm-payroll-01", "hosted_on", "srv-esx-01"),
    ("vm-mail-01", "hosted_on", "srv-esx-01"),
    ("db-payroll", "runs_on", "srv-db-01"),
    ("app-payroll", "runs_on", "vm-payroll-01"),
    ("app-payroll", "depends_on", "db-payroll"),
    ("app-mail", "runs_on", "vm-mail-01"),
    ("db-payroll", "part_of", "ts-db-hosting"),
    ("app-payroll", "part_of", "bs-payroll"),
    ("app-mail", "part_of", "bs-email"),
]


def seed_classes() -> int:
    """Create the seed classes that do not exist yet (by key); returns how many."""
    from cmdb.models import CIClass

    existing = {row.key: row for row in db.session.scalars(select(CIClass))}
    created = 0
    for spec in SEED_CLASSES:
        if spec["key"] in existing:
            continue
        parent = existing.get(spec["parent"]) if spec["parent"] else None
        row = CIClass(key=spec["key"], name=spec["name"], parent=parent,
                      description=spec["description"], service_type=spec["service_type"],
                      attributes=[dict(a) for a in spec["attributes"]], source="seed")
        db.session.add(row)
        existing[spec["key"]] = row
        created += 1
    db.session.commit()
    return created


def seed_demo_cis() -> dict:
    """The demo estate through the import (idempotent by external key); the report."""
    from cmdb.importer import run_import

    seed_classes()
    payload = {
        "cis": [{"external_key": key, "name": name, "class": cls, "attributes": attrs,
                 "owner_group": group} for key, name, cls, attrs, group in DEMO_CIS],
        "relations": [{"source": s, "type": t, "target": d} for s, t, d in DEMO_RELATIONS],
    }
    return run_import(None, payload)
