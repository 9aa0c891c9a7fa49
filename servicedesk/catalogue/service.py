"""Catalogue operations: admins manage services and offerings; everyone reads the
active ones (inactive ones exist only for admins: 404 for anyone else)."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from cmdb.service import resolve_refs
from servicedesk.catalogue.formdef import check_definition
from servicedesk.catalogue.models import APPROVAL_RULES, Offering, Service
from servicedesk.errors import Conflict, Forbidden, NotFound, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.sla.models import SlaPolicy
from servicedesk.tickets.schemas import MAX_ID
from servicedesk.tickets.service import find_group


def _is_admin(actor: User | None) -> bool:
    return actor is not None and actor.active and actor.role == "admin"


def _require_admin(actor: User | None) -> None:
    if not _is_admin(actor):
        raise Forbidden(_("Only admins manage the service catalogue."))


def _check_version(record, version) -> None:
    if version is None:
        raise ValidationError(_("The version you last read is required."),
                              fields={"version": [_("Missing data for required field.")]})
    if version != record.version:
        raise Conflict(
            _("%(name)s was changed by someone else (version %(current)s, you sent "
              "%(sent)s); reload it and apply your change again.",
              name=record.name, current=record.version, sent=version),
            fields={"version": [_("Stale: the current version is %(current)s.",
                                  current=record.version)]},
            code="stale_version")


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        raise Conflict(_("Someone else changed this at the same moment; reload and retry."),
                       fields={"version": [_("Stale.")]}, code="stale_version") from None
    except IntegrityError:
        db.session.rollback()
        raise Conflict(_("The name is already taken."), fields={"name": [_("Already used.")]},
                       code="integrity") from None


# --- services ------------------------------------------------------------------------


def list_services(actor: User | None, include_inactive: bool = False) -> list[Service]:
    query = select(Service).options(selectinload(Service.owner_group),
                                    selectinload(Service.cis)).order_by(Service.name)
    if not (include_inactive and _is_admin(actor)):
        query = query.where(Service.active.is_(True))
    return list(db.session.scalars(query))


def get_service(actor: User | None, service_id: int) -> Service:
    service = db.session.get(Service, service_id) if 0 < service_id <= MAX_ID else None
    if service is None or not (service.active or _is_admin(actor)):
        raise NotFound(_("No service %(id)s.", id=service_id))
    return service


def _service_values(data: dict) -> dict:
    values = {k: data[k] for k in ("name", "kind", "description", "active") if k in data}
    if "owner_group" in data:
        values["owner_group"] = (find_group(data["owner_group"], "owner_group")
                                 if data["owner_group"] else None)
    if "sla_policy_id" in data:
        policy = None
        if data["sla_policy_id"] is not None:
            policy = db.session.get(SlaPolicy, data["sla_policy_id"])
            if policy is None:
                raise ValidationError(_("No SLA policy %(id)s.", id=data["sla_policy_id"]),
                                      fields={"sla_policy_id": [_("Unknown SLA policy.")]})
        values["sla_policy"] = policy
    if "cis" in data:
        values["cis"] = resolve_refs(list(data["cis"] or []), "cis")
    return values


def create_service(actor: User | None, data: dict) -> Service:
    _require_admin(actor)
    service = Service(kind="business", description="", active=True)
    for attr, value in _service_values(data).items():
        setattr(service, attr, value)
    db.session.add(service)
    _commit()
    return service


def update_service(actor: User | None, service_id: int, data: dict) -> Service:
    _require_admin(actor)
    data = dict(data)
    version = data.pop("version", None)
    service = get_service(actor, service_id)
    _check_version(service, version)
    values = _service_values(data)
    policy = values.get("sla_policy", service.sla_policy)
    policy_changed = ((policy.id if policy else None) != service.sla_policy_id
                      or values.get("active", service.active) != service.active)
    for attr, value in values.items():
        setattr(service, attr, value)
    _commit()
    if policy_changed:  # its open tickets' clocks follow the service's policy
        from servicedesk.sla.maintenance import request_repair

        request_repair()
    return service


# --- offerings -----------------------------------------------------------------------


def list_offerings(actor: User | None, service_id: int | None = None,
                   include_inactive: bool = False) -> list[Offering]:
    query = (select(Offering).join(Offering.service)
             .options(selectinload(Offering.service)).order_by(Service.name, Offering.name))
    if service_id is not None:
        query = query.where(Offering.service_id == service_id)
    if not (include_inactive and _is_admin(actor)):
        query = query.where(Offering.active.is_(True), Service.active.is_(True))
    return list(db.session.scalars(query))


def get_offering(actor: User | None, offering_id: int) -> Offering:
    """The offering, if ``actor`` may see it: active under an active service, or admin."""
    offering = db.session.get(Offering, offering_id) if 0 < offering_id <= MAX_ID else None
    if offering is None or not (_is_admin(actor) or (offering.active and offering.service.active)):
        raise NotFound(_("No offering %(id)s.", id=offering_id))
    return offering


def _offering_values(data: dict, current: Offering | None) -> dict:
    values = {k: data[k] for k in ("name", "description", "active") if k in data}
    if "service_id" in data:
        service = db.session.get(Service, data["service_id"])
        if service is None:
            raise ValidationError(_("No service %(id)s.", id=data["service_id"]),
                                  fields={"service_id": [_("Unknown service.")]})
        values["service"] = service
    if "form" in data:
        values["form"] = check_definition(data["form"])
    for key in ("approval_group", "fulfilment_group"):
        if key in data:
            values[key] = find_group(data[key], key) if data[key] else None
    rule = data.get("approval_rule", current.approval_rule if current else "none")
    if rule not in APPROVAL_RULES:
        raise ValidationError(_("Unknown approval rule."),
                              fields={"approval_rule": [_("One of: %(rules)s.",
                                                          rules=", ".join(APPROVAL_RULES))]})
    values["approval_rule"] = rule
    group = values.get("approval_group", current.approval_group if current else None)
    if rule == "group" and group is None:
        raise ValidationError(_("Group approval needs the group that approves."),
                              fields={"approval_group": [_("Required when the rule is group.")]})
    return values


def create_offering(actor: User | None, data: dict) -> Offering:
    _require_admin(actor)
    if "service_id" not in data:
        raise ValidationError(_("An offering belongs to a service."),
                              fields={"service_id": [_("Missing data for required field.")]})
    offering = Offering(description="", form={"fields": []}, approval_rule="none", active=True)
    for attr, value in _offering_values(data, None).items():
        setattr(offering, attr, value)
    db.session.add(offering)
    _commit()
    return offering


def update_offering(actor: User | None, offering_id: int, data: dict) -> Offering:
    _require_admin(actor)
    data = dict(data)
    version = data.pop("version", None)
    offering = get_offering(actor, offering_id)
    _check_version(offering, version)
    for attr, value in _offering_values(data, offering).items():
        setattr(offering, attr, value)
    _commit()
    return offering


def requestable_offering(actor: User, offering_id: int) -> Offering:
    """The offering ``actor`` is asking for: it must be active under an active service
    (admins too: an inactive one cannot be requested). A 422 naming ``offering_id``."""
    offering = db.session.get(Offering, offering_id)
    if offering is None or not offering.active or not offering.service.active:
        raise ValidationError(_("No active offering %(id)s.", id=offering_id),
                              fields={"offering_id": [_("Unknown or inactive offering.")]})
    return offering
