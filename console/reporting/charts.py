"""The Reporting page's charts: inline SVG drawn on the server, like the Status page's.

- Messages by disposition over the chosen range: stacked bars per time bucket (an hour for a
  day or two, up to a day for a month, so there are never more than ~72 bars) with the
  accepted count as a line over them; the legend carries each series' total. Buckets are
  local hours and days in the `timezone` setting, and each holds exactly the events of its
  time, in half-hour zones too (shared.report.disposition_counts).
- Top viruses / blocked subjects / deleted attachments: horizontal bars, longest first.

No script, no CDN, no inline style (the CSP forbids both): SVG presentation attributes only.
Every bar has a <title>, so hovering shows its exact count, and the page repeats the numbers
in tables. The count axis and colours come from console.status.chart (`nice_ceiling`,
`SERIES_STYLE`), so both pages read the same way. Text in the SVG shows bidi control
characters as visible marks, as every page does (console.security.visible_bidi): the top
charts name subjects and file names taken from mail.
"""

from __future__ import annotations

import bisect
import datetime as dt
import html
from dataclasses import dataclass

from markupsafe import Markup

from console.security import visible_bidi
from console.status.chart import SERIES_STYLE, count_axis, nice_ceiling
from shared.events import Action
from shared.report import DISPOSITION_SERIES
from shared.report_time import ReportRange, local_label

__all__ = ["Buckets", "bucket_layout", "bucket_counts", "disposition_chart_svg", "top_chart_svg",
           "STYLE"]


def escape(text) -> str:
    """Text for the SVG: HTML-escaped, bidi controls shown."""
    return html.escape(visible_bidi(str(text)))


WIDTH, HEIGHT = 800, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 56, 44
MAX_BUCKETS = 72
TOP_WIDTH = 420
BUCKET_HOURS = (1, 2, 3, 6, 12, 24)
# action → (legend name, colour): the Status page's four, and four more.
STYLE = {**SERIES_STYLE,
         "forwarded": ("Forwarded", "#6a3d9a"), "held": ("Held", "#8c564b"),
         "quarantined": ("Quarantined", "#c51b7d"), "bounced": ("Bounced", "#4d4d4d")}
STACKED = [a.value for a in DISPOSITION_SERIES if a is not Action.ACCEPTED]


@dataclass
class Buckets:
    hours: int                          # bucket width
    starts: list[float]                 # UTC start of each bucket
    counts: dict[str, list[int]]        # action → count per bucket
    timezone: str

    def total(self, action: str) -> int:
        return sum(self.counts[action])

    def label(self, i: int, zone) -> str:
        # The minutes too: after a half-hour daylight-saving change (Lord Howe Island) a
        # bucket starts at :30, and the label says when it starts.
        # The offset too in the hour the clocks repeat in autumn, where two buckets would
        # read the same (reports18 C3).
        return local_label(self.starts[i], zone, "%Y-%m-%d" if self.hours == 24
                           else "%Y-%m-%d %H:%M")

    @property
    def unit(self) -> str:
        return {1: "hour", 24: "day"}.get(self.hours, f"{self.hours} hours")


def bucket_layout(rng: ReportRange) -> Buckets:
    """At most MAX_BUCKETS empty buckets over the range, aligned on local time (whole local
    hours, days at local midnight), whatever the zone's offset from UTC."""
    zone = rng.zone
    span_hours = max(1, int((rng.end - rng.start + 3599) // 3600))
    width = next((h for h in BUCKET_HOURS if span_hours / h <= MAX_BUCKETS), 24)
    local = dt.datetime.fromtimestamp(rng.start, zone)
    first = local.replace(minute=0, second=0, microsecond=0,
                          hour=local.hour - local.hour % width)
    origin = first.timestamp()
    count = int((rng.end - origin) // (width * 3600)) + 1
    if origin + (count - 1) * width * 3600 >= rng.end:
        count -= 1
    count = max(count, 1)
    starts = [origin + i * width * 3600 for i in range(count)]
    return Buckets(width, starts, {a.value: [0] * count for a in DISPOSITION_SERIES},
                   rng.timezone)


def bucket_counts(by_start: dict[float, dict[str, int]], rng: ReportRange) -> Buckets:
    """The buckets of `bucket_layout(rng)` holding `by_start`: counts keyed by bucket start,
    as shared.report.disposition_counts(..., starts=bucket_layout(rng).starts) returns them
    (it counts a UTC hour that a local bucket boundary cuts from its events)."""
    buckets = bucket_layout(rng)
    for start, by_action in by_start.items():
        index = max(bisect.bisect_right(buckets.starts, start) - 1, 0)
        for action, n in by_action.items():
            if action in buckets.counts:
                buckets.counts[action][index] += n
    return buckets


def _svg_open(chart_id: str, title: str, desc: str, height: int) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
            f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}">',
            f'<title id="{chart_id}-title">{escape(title)}</title>',
            f'<desc id="{chart_id}-desc">{escape(desc)}</desc>']


def disposition_chart_svg(buckets: Buckets, zone) -> Markup:
    n = len(buckets.starts)
    totals_per_bucket = [sum(buckets.counts[s][i] for s in STACKED) for i in range(n)]
    peak = max(totals_per_bucket + buckets.counts["accepted"] + [0])
    top = nice_ceiling(peak)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / n
    bar = max(1.0, slot * 0.8)

    def y(count: float) -> float:
        return TOP + plot_h - plot_h * count / top

    desc = ", ".join(f"{STYLE[s][0]} {buckets.total(s)}" for s in ["accepted", *STACKED])
    out = _svg_open("disposition-chart", f"Messages per {buckets.unit} by disposition",
                    desc + " in the chosen range", HEIGHT)
    # legend with totals, two rows of four
    for k, s in enumerate(["accepted", *STACKED]):
        name, colour = STYLE[s]
        lx, ly = LEFT + (k % 4) * 180, 8 + (k // 4) * 20
        mark = (f'<line x1="{lx}" y1="{ly + 7}" x2="{lx + 14}" y2="{ly + 7}" stroke="{colour}" '
                f'stroke-width="3"/>' if s == "accepted" else
                f'<rect x="{lx}" y="{ly}" width="14" height="14" fill="{colour}"/>')
        out.append(mark + f'<text x="{lx + 20}" y="{ly + 12}" font-size="13" fill="#1d2433">'
                          f'{escape(name)}: {buckets.total(s)}</text>')
    out += count_axis(top, y, TOP, plot_h, buckets.unit)
    label_every = max(1, n // 8)
    points = []
    for i in range(n):
        x0 = LEFT + i * slot + (slot - bar) / 2
        label = buckets.label(i, zone)
        base = 0
        for s in STACKED:
            count = buckets.counts[s][i]
            if not count:
                continue
            name, colour = STYLE[s]
            y_top, y_bottom = y(base + count), y(base)
            out.append(f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{bar:.1f}" '
                       f'height="{y_bottom - y_top:.1f}" fill="{colour}">'
                       f'<title>{escape(label)} {escape(name)}: {count}</title></rect>')
            base += count
        points.append(f"{LEFT + i * slot + slot / 2:.1f},{y(buckets.counts['accepted'][i]):.1f}")
        if i % label_every == 0:
            text, centre = label[5:], LEFT + i * slot + slot / 2
            # a label centred under a bar near the right edge would be cut off there: it ends
            # at the edge instead (about 0.6 em per digit at font-size 11)
            x, anchor = ((WIDTH - 2, "end") if centre + 3.5 * len(text) > WIDTH else
                         (centre, "middle"))
            out.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" '
                       f'font-size="11" text-anchor="{anchor}" fill="#5b6478">'
                       f'{escape(text)}</text>')
    out.append(f'<polyline points="{" ".join(points)}" fill="none" '
               f'stroke="{STYLE["accepted"][1]}" stroke-width="2">'
               f'<title>Accepted: {buckets.total("accepted")}</title></polyline>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 8}" font-size="12" '
               f'text-anchor="middle" fill="#5b6478">{escape(buckets.unit)} starting '
               f'({escape(buckets.timezone)})</text>')
    out.append("</svg>")
    return Markup("".join(out))


def top_chart_svg(chart_id: str, title: str, rows: list[tuple[str, int]],
                  colour: str = "#0b5cad") -> Markup:
    """Horizontal bars for the top items of a summary section (longest first), after an <h3>
    with the title: it reads as a heading, so it is one in the page's outline, next to the
    sections' h3. Drawn for a half-width column, so its text stays the size of the page's."""
    if not rows:
        return Markup("")
    width, row_h, label_w, pad = TOP_WIDTH, 24, 170, 8
    height = pad * 2 + row_h * len(rows)
    top = nice_ceiling(max(count for _, count in rows))
    plot_w = width - label_w - 56
    out = [f'<h3 class="chart-heading" id="{chart_id}-heading">{escape(title)}</h3>',
           f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" id="{chart_id}">',
           f'<title id="{chart_id}-title">{escape(title)}</title>',
           f'<desc id="{chart_id}-desc">'
           + escape(", ".join(f"{name} {count}" for name, count in rows)) + '</desc>']
    for i, (name, count) in enumerate(rows):
        top_y = pad + i * row_h
        shown = name if len(name) <= 24 else name[:23] + "…"
        bar = max(1.0, plot_w * count / top)
        out.append(f'<text x="{label_w - 6}" y="{top_y + 16}" font-size="12" text-anchor="end" '
                   f'fill="#1d2433">{escape(shown)}</text>'
                   f'<rect x="{label_w}" y="{top_y + 3}" width="{bar:.1f}" height="17" '
                   f'fill="{colour}"><title>{escape(name)}: {count}</title></rect>'
                   f'<text x="{label_w + bar + 5:.1f}" y="{top_y + 16}" font-size="12" '
                   f'fill="#1d2433">{count}</text>')
    out.append("</svg>")
    return Markup("".join(out))
