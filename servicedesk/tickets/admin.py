"""Admin-managed reference data of the core: categories."""

from __future__ import annotations

from flask_babel import gettext as _
from sqlalchemy import select

from servicedesk.errors import Conflict, Forbidden, ValidationError
from servicedesk.extensions import db
from servicedesk.identity.models import User
from servicedesk.tickets.models import Category
from servicedesk.tickets.service import find_group


def list_categories() -> list[Category]:
    return list(db.session.scalars(
        select(Category).where(Category.active.is_(True))
        .order_by(Category.parent_id.is_not(None), Category.parent_id, Category.name)
    ))


def create_category(actor: User | None, name: str, parent_id: int | None = None,
                    default_group: str | None = None) -> Category:
    if actor is not None and actor.role != "admin":
        raise Forbidden(_("Only admins manage categories."))
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ValidationError(_("Invalid category."),
                              fields={"name": [_("Between 1 and 120 characters.")]})
    parent = None
    if parent_id is not None:
        parent = db.session.get(Category, parent_id)
        if parent is None or parent.parent_id is not None:
            raise ValidationError(_("Invalid parent."),
                                  fields={"parent_id": [_("Must be a top-level category.")]})
    clash = db.session.scalars(select(Category).where(
        Category.name == name,
        Category.parent_id == parent_id if parent_id is not None else Category.parent_id.is_(None),
    )).first()
    if clash is not None:
        raise Conflict(_("The category %(name)s exists.", name=repr(name)),
                       fields={"name": [_("Already exists.")]})
    category = Category(name=name, parent=parent)
    if default_group:
        category.default_group = find_group(default_group, "default_group")
    db.session.add(category)
    db.session.commit()
    return category
