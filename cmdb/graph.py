"""The CI page's picture: an SVG of a CI's neighbourhood, drawn on the server.

Layered layout: the CI in the middle row, what needs it above (one row per hop: the
business services end up on top), what it needs below (down to locations). Each row
is centred and ordered by name; relations are arrows from source to target labelled
with the type ("runs on"), curved when both ends share a row.

The SVG is built as text here, so everything that comes from data (names, class names,
labels) goes through ``escape``; it contains no script, no event attribute and no
``style`` (the page's CSP forbids inline styles; presentation attributes are enough).
Nodes link to their CI pages.
"""

from __future__ import annotations

from html import escape
from typing import Callable

from flask_babel import gettext as _

from cmdb.impact import Neighbourhood
from cmdb.models import RELATION_TYPES

NODE_W, NODE_H = 180, 46
H_GAP, V_GAP, MARGIN = 24, 64, 16
MAX_LABEL = 24
FILL = {"center": "#fff4d6", "business": "#e3f2e6", "technical": "#e6eefb", None: "#f6f7f9"}
STROKE = {"center": "#b7791f", "business": "#2f855a", "technical": "#3b64a8", None: "#6b7280"}


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _a(value) -> str:
    """An attribute value: escaped, quotes included."""
    return escape(str(value), quote=True)


def render(hood: Neighbourhood, class_names: dict[int, str], service_types: dict[int, str],
           url_for_ci: Callable[[int], str]) -> str:
    """The SVG (a string, safe to embed in HTML) of ``hood``."""
    rows: dict[int, list[int]] = {}
    for ci_id, level in hood.levels.items():
        if ci_id in hood.cis:
            rows.setdefault(level, []).append(ci_id)
    order = sorted(rows)
    for level in order:
        rows[level].sort(key=lambda i: (hood.cis[i].name.lower(), i))
    widest = max(len(r) + (1 if hood.more.get(level) else 0) for level, r in rows.items())
    width = max(2 * MARGIN + widest * (NODE_W + H_GAP) - H_GAP, 2 * MARGIN + NODE_W)
    height = 2 * MARGIN + len(order) * (NODE_H + V_GAP) - V_GAP
    pos: dict[int, tuple[int, int]] = {}
    for r, level in enumerate(order):
        count = len(rows[level]) + (1 if hood.more.get(level) else 0)
        left = (width - (count * (NODE_W + H_GAP) - H_GAP)) // 2
        y = MARGIN + r * (NODE_H + V_GAP)
        for n, ci_id in enumerate(rows[level]):
            pos[ci_id] = (left + n * (NODE_W + H_GAP), y)

    title = _("Relations of %(name)s", name=hood.center.name)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="ci-graph" width="100%" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_a(title)}" '
        f'font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#6b7280"/></marker></defs>',
    ]
    for edge in hood.edges:
        if edge.source_id in pos and edge.target_id in pos:
            out.append(_edge(pos[edge.source_id], pos[edge.target_id], edge.type))
    for ci_id, (x, y) in pos.items():
        ci = hood.cis[ci_id]
        kind = "center" if ci_id == hood.center.id else service_types.get(ci.class_id)
        out.append(_node(ci, x, y, kind, class_names.get(ci.class_id, ""), url_for_ci(ci_id)))
    for r, level in enumerate(order):
        hidden = hood.more.get(level)
        if hidden:
            x = max(pos[i][0] for i in rows[level]) + NODE_W + H_GAP
            y = MARGIN + r * (NODE_H + V_GAP)
            label = _("+%(n)s more", n=hidden)
            out.append(f'<text class="more" x="{x + 8}" y="{y + NODE_H // 2 + 4}" '
                       f'font-size="12" fill="#6b7280">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _node(ci, x: int, y: int, kind: str | None, class_name: str, href: str) -> str:
    dashed = ' stroke-dasharray="5 3"' if ci.status == "retired" else ""
    width = 3 if kind == "center" else 1.5
    return (
        f'<a href="{_a(href)}" class="node" data-ci="{ci.id}">'
        f"<title>{escape(ci.name)} ({escape(class_name)})</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" '
        f'fill="{FILL[kind]}" stroke="{STROKE[kind]}" stroke-width="{width}"{dashed}/>'
        f'<text x="{x + NODE_W // 2}" y="{y + 19}" text-anchor="middle" font-size="13" '
        f'fill="#111827">{escape(_short(ci.name))}</text>'
        f'<text x="{x + NODE_W // 2}" y="{y + 36}" text-anchor="middle" font-size="11" '
        f'fill="#4b5563">{escape(_short(class_name, 30))}</text>'
        "</a>"
    )


def _edge(start: tuple[int, int], end: tuple[int, int], type_: str) -> str:
    (sx, sy), (ex, ey) = start, end
    label = escape(_(RELATION_TYPES[type_].name)) if type_ in RELATION_TYPES else ""
    if sy == ey:  # same row: an arc over the row
        x1, x2 = sx + NODE_W // 2, ex + NODE_W // 2
        top = sy - V_GAP // 2
        path = f"M{x1},{sy} Q{(x1 + x2) // 2},{top - V_GAP // 3} {x2},{ey}"
        lx, ly = (x1 + x2) // 2, top
    else:
        x1, x2 = sx + NODE_W // 2, ex + NODE_W // 2
        y1 = sy + NODE_H if ey > sy else sy
        y2 = ey if ey > sy else ey + NODE_H
        path = f"M{x1},{y1} L{x2},{y2}"
        lx, ly = (x1 + x2) // 2, (y1 + y2) // 2 + 4
    return (f'<g class="edge" data-type="{_a(type_)}"><path d="{path}" fill="none" '
            f'stroke="#6b7280" stroke-width="1.2" marker-end="url(#arrow)"/>'
            f'<text x="{lx}" y="{ly}" text-anchor="middle" font-size="11" fill="#374151" '
            f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{label}</text></g>')
