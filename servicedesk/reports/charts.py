"""Charts rendered on the server as inline SVG: no script, nothing to vendor, and the
strict CSP (no inline styles) holds, since SVG presentation attributes are not styles.

Every label goes through ``markupsafe.escape``; each bar carries a ``<title>`` (the
browser's tooltip, and what a screen reader reads) with its exact figure.
"""

from __future__ import annotations

import math

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 40, 40, 12
LABEL_WIDTH = 64  # an ISO date at font-size 10, with a gap
COLOURS = ("#2f6fb3", "#58a55c", "#d08a2a")


def _nice_max(value: float) -> int:
    """The top of the scale: 1, 2 or 5 times a power of ten, at least ``value``."""
    power = 1
    while True:
        for step in (1, 2, 5):
            if power * step >= value:
                return power * step
        power *= 10


def _svg(body: list[str], label: str, height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
        f'<title>{escape(label)}</title>{"".join(body)}</svg>')


def bar_chart(rows: list[dict], label_key: str, series: list[tuple[str, str]],
              label: str) -> Markup:
    """Grouped bars: one group per row (``row[label_key]`` under it), one bar per
    ``series`` entry (key, legend text)."""
    top = _nice_max(max((row[key] for row in rows for key, _t in series), default=0))
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_TOP - PAD_BOTTOM
    body = [f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - 10}" '
            f'y2="{PAD_TOP + plot_h}" stroke="#999"/>',
            f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 4}" text-anchor="end" '
            f'font-size="10">{top}</text>',
            f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end" '
            f'font-size="10">0</text>']
    if rows:
        slot = plot_w / len(rows)
        bar = max(1.0, slot * 0.8 / len(series))
        every = max(1, math.ceil(LABEL_WIDTH / slot))  # labels must not overlap
        for i, row in enumerate(rows):
            x0 = PAD_LEFT + i * slot + slot * 0.1
            for j, (key, text) in enumerate(series):
                h = plot_h * row[key] / top
                body.append(
                    f'<rect x="{x0 + j * bar:.1f}" y="{PAD_TOP + plot_h - h:.1f}" '
                    f'width="{bar:.1f}" height="{h:.1f}" fill="{COLOURS[j % len(COLOURS)]}">'
                    f'<title>{escape(row[label_key])}: {escape(text)} {row[key]}</title></rect>')
            if i % every == 0:
                body.append(f'<text x="{x0:.1f}" y="{PAD_TOP + plot_h + 14}" font-size="10">'
                            f'{escape(row[label_key])}</text>')
    for j, (_key, text) in enumerate(series):
        x = PAD_LEFT + j * 140
        body.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" '
                    f'fill="{COLOURS[j % len(COLOURS)]}"/><text x="{x + 14}" '
                    f'y="{HEIGHT - 5}" font-size="11">{escape(text)}</text>')
    return _svg(body, label)


def share_bar(share: float | None, width: int = 160) -> Markup:
    """A small horizontal bar for a share (0–1)."""
    filled = round(width * min(max(share or 0, 0), 1), 1)
    percent = f"{(share or 0) * 100:.1f} %"
    return Markup(
        f'<svg class="share" role="img" aria-label="{percent}" viewBox="0 0 {width} 12" '
        f'width="{width}" height="12" xmlns="http://www.w3.org/2000/svg">'
        f'<rect width="{width}" height="12" fill="#e6e9ef"/>'
        f'<rect width="{filled}" height="12" fill="{COLOURS[0]}"/></svg>')
