"""Demo catalogue: two services and two offerings (one per approval rule), and one laptop
request awaiting the manager's approval. Idempotent: each service and offering is
created once, by name, and never changed afterwards; the request only while the demo
employee has none."""

from __future__ import annotations

from sqlalchemy import select

from cmdb.service import find_cis
from servicedesk.catalogue.models import Offering, Service
from servicedesk.extensions import db
from servicedesk.identity.models import Group, User
from servicedesk.sla.models import SlaPolicy

SERVICES = [
    # name, kind, owner group, SLA policy, supporting CIs (external keys), description
    ("Workplace", "business", "Workplace", "Standard", [],
     "Laptops, phones, printers and the software on them."),
    ("Network access", "business", "Infrastructure", "Standard",
     ["net-core-sw-01", "net-core-sw-02"],
     "The office network, Wi-Fi and remote access (VPN)."),
]
LAPTOP_FORM = {"fields": [
    {"key": "model", "label": "Model", "type": "choice", "required": True,
     "options": ["14-inch standard", "16-inch developer"],
     "help": "Developers get the 16-inch model with more memory."},
    {"key": "reason", "label": "Why do you need it?", "type": "textarea", "required": True,
     "help": "New starter, broken device, end of lease..."},
    {"key": "needed_by", "label": "Needed by", "type": "date", "required": False},
    {"key": "extras", "label": "Accessories", "type": "multichoice", "required": False,
     "options": ["Mouse", "Headset", "Docking station", "Bag"]},
    {"key": "keep_data", "label": "Copy my files from the old laptop", "type": "boolean",
     "required": False},
]}
VPN_FORM = {"fields": [
    {"key": "systems", "label": "What do you need to reach?", "type": "text",
     "required": True, "help": "E.g. the payroll application, a file share."},
    {"key": "days", "label": "For how many days?", "type": "number", "required": False,
     "help": "Leave empty for permanent access."},
    {"key": "policy", "label": "I have read the remote access policy", "type": "boolean",
     "required": True},
]}
OFFERINGS = [
    # service, name, form, approval rule, approval group, fulfilment group, description
    ("Workplace", "New laptop", LAPTOP_FORM, "manager", None, "Workplace",
     "A laptop, set up and ready, with the accessories you choose."),
    ("Network access", "VPN access", VPN_FORM, "group", "Infrastructure", "Infrastructure",
     "Remote access to internal systems from outside the office."),
]


def _by_name(model, name):
    return db.session.scalars(select(model).where(model.name == name)).first()


def seed_demo() -> None:
    services = {}
    for name, kind, owner, policy, ci_keys, description in SERVICES:
        service = _by_name(Service, name)
        if service is None:
            found = find_cis(ci_keys) if ci_keys else {}
            service = Service(name=name, kind=kind, description=description, active=True,
                              owner_group=_by_name(Group, owner),
                              sla_policy=_by_name(SlaPolicy, policy),
                              cis=[found[k] for k in ci_keys if k in found])
            db.session.add(service)
        services[name] = service
    db.session.flush()
    for service, name, form, rule, approvers, fulfilment, description in OFFERINGS:
        parent = services[service]
        if db.session.scalars(select(Offering).where(
                Offering.service_id == parent.id, Offering.name == name)).first() is None:
            db.session.add(Offering(
                service=parent, name=name, form=form, approval_rule=rule, description=description,
                approval_group=_by_name(Group, approvers) if approvers else None,
                fulfilment_group=_by_name(Group, fulfilment), active=True))
    # The demo employees' line manager approves their laptops.
    manager = db.session.scalars(select(User).where(User.username == "manager")).first()
    for username in ("employee", "employee2"):
        user = db.session.scalars(select(User).where(User.username == username)).first()
        if user is not None and user.manager_id is None and manager is not None:
            user.manager = manager
    db.session.commit()
    _seed_request()


def _seed_request() -> None:
    """One laptop request from ``employee``, waiting in ``manager``'s approvals inbox."""
    from servicedesk.requests.models import ServiceRequest
    from servicedesk.requests.service import create_request

    employee = db.session.scalars(select(User).where(User.username == "employee")).first()
    laptop = _by_name(Offering, "New laptop")
    if employee is None or laptop is None or db.session.scalar(
            select(ServiceRequest.id).where(ServiceRequest.requester_id == employee.id)
            .limit(1)) is not None:
        return
    create_request(employee, {"offering_id": laptop.id, "answers": {
        "model": "14-inch standard", "reason": "My laptop's hinge broke.",
        "extras": ["Mouse", "Bag"], "keep_data": True}}, "web")
