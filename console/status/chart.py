"""The Status page's traffic chart: inline SVG drawn on the server (no script, no CDN).

Grouped bars per hour for the last 24 hours — accepted, delivered, dropped, rejected — with
a legend that carries each series' total, a labelled count axis and hour labels in the
`timezone` setting. Each bar has a <title>, so hovering shows its exact count. Colours are
paired with distinct legend names and the page repeats the numbers in a table.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from html import escape

from markupsafe import Markup

from console.status.service import TRAFFIC_SERIES, Traffic

__all__ = ["traffic_chart_svg", "nice_ceiling", "count_axis", "SERIES_STYLE"]

WIDTH, HEIGHT = 800, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 40, 44
SERIES_STYLE = {  # action → (legend name, colour)
    "accepted": ("Accepted", "#0b5cad"),
    "delivered": ("Delivered", "#1e7a34"),
    "dropped": ("Dropped", "#c27400"),  # 3.6:1 on white: WCAG 1.4.11 asks 3:1 of graphics
    "rejected": ("Rejected", "#b3261e"),
}


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10^n that is ≥ value, at least 5: the five gridline steps
    (top / 5) are then whole numbers."""
    if value <= 5:
        return 5
    exponent = 10 ** int(math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * exponent >= value:
            return step * exponent
    return 10 * exponent  # pragma: no cover


def count_axis(top: int, y, plot_top: float, plot_h: float, unit: str) -> list[str]:
    """The horizontal gridlines of a count axis from 0 to `top` in five whole steps, their
    labels, and the axis title "messages per <unit>" (the report charts share it)."""
    out = []
    for i in range(6):
        value = top * i // 5
        gy = y(value)
        out.append(f'<line x1="{LEFT}" y1="{gy:.1f}" x2="{WIDTH - RIGHT}" y2="{gy:.1f}" '
                   f'stroke="{"#8a93a6" if i == 0 else "#e1e5ec"}" stroke-width="1"/>'
                   f'<text x="{LEFT - 8}" y="{gy + 4:.1f}" font-size="12" text-anchor="end" '
                   f'fill="#5b6478">{value}</text>')
    out.append(f'<text x="14" y="{plot_top + plot_h / 2:.0f}" font-size="12" fill="#5b6478" '
               f'transform="rotate(-90 14 {plot_top + plot_h / 2:.0f})" text-anchor="middle">'
               f'messages per {escape(unit)}</text>')
    return out


def traffic_chart_svg(traffic: Traffic | None) -> Markup:
    if traffic is None:
        return Markup("")
    try:
        zone = zoneinfo.ZoneInfo(traffic.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    series = [str(a) for a in TRAFFIC_SERIES]
    hours = len(traffic.hour_starts)
    peak = max((max(traffic.counts[s]) for s in series), default=0)
    top = nice_ceiling(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / hours
    bar = (slot - 4) / len(series)

    def y(count: int) -> float:
        return TOP + plot_h - plot_h * count / top

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'role="img" aria-labelledby="traffic-title traffic-desc" id="traffic-chart">',
           '<title id="traffic-title">Messages per hour, last 24 hours</title>',
           '<desc id="traffic-desc">' + escape(", ".join(
               f"{SERIES_STYLE[s][0]} {traffic.total(s)}" for s in series)) + " in total</desc>"]
    # legend with totals
    x = LEFT
    for s in series:
        name, colour = SERIES_STYLE[s]
        label = f"{name}: {traffic.total(s)}"
        out.append(f'<rect x="{x}" y="10" width="14" height="14" fill="{colour}"/>'
                   f'<text x="{x + 20}" y="22" font-size="14" fill="#1d2433">'
                   f'{escape(label)}</text>')
        x += 40 + 9 * len(label)
    out += count_axis(top, y, TOP, plot_h, "hour")
    # bars and hour labels
    for h, start in enumerate(traffic.hour_starts):
        local = dt.datetime.fromtimestamp(start, zone)
        x0 = LEFT + h * slot + 2
        for k, s in enumerate(series):
            count = traffic.counts[s][h]
            if count:
                name, colour = SERIES_STYLE[s]
                by = y(count)
                out.append(f'<rect x="{x0 + k * bar:.1f}" y="{by:.1f}" width="{bar:.1f}" '
                           f'height="{TOP + plot_h - by:.1f}" fill="{colour}">'
                           f'<title>{local:%H}:00–{(local + dt.timedelta(hours=1)):%H}:00 '
                           f'{escape(name)}: {count}</title></rect>')
        if h % 3 == 0 or h == hours - 1:
            out.append(f'<text x="{x0 + slot / 2 - 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                       f'font-size="12" text-anchor="middle" fill="#5b6478">'
                       f'{local:%H}:00</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" font-size="12" '
               f'text-anchor="middle" fill="#5b6478">hour of day ({escape(traffic.timezone)})'
               '</text>')
    out.append("</svg>")
    return Markup("".join(out))
