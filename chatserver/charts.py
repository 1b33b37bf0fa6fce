"""The geometry of the report page's charts (web/templates/console_reports.html draws them as SVG on
the server: no chart library, no script, and a table beside each chart says the same in text).

Pure functions from report figures to rectangles, ticks and labels; nothing here reads a request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Chart sizes in SVG user units; the SVG scales to its container (viewBox), so these only fix
# the proportions and the text size relative to the bars.
BAR_WIDTH, BAR_HEIGHT = 720, 240
MARGIN_LEFT, MARGIN_BOTTOM, MARGIN_TOP = 40, 28, 12
CELL, HEAT_LEFT, HEAT_TOP = 26, 40, 20


def format_duration(seconds: float | None) -> str:
    """45 s, 12 min, 3 h 5 min, 2 d 4 h: readable at a glance; the CSV has the exact seconds."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        minutes, rest = divmod(s, 60)
        return f"{minutes} min {rest} s" if rest and minutes < 10 else f"{round(s / 60)} min"
    if s < 86400:
        hours, rest = divmod(round(s / 60), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days, rest = divmod(round(s / 3600), 24)
    return f"{days} d {rest} h" if rest else f"{days} d"


def format_share(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f} %".replace(".0 %", " %")


def nice_max(value: float) -> int:
    """The smallest 1, 2 or 5 × 10^n at or above `value` (at least 1): the top of a y axis."""
    if value <= 1:
        return 1
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return int(step * magnitude)
    return int(10 * magnitude)  # unreachable: 10 × magnitude is always above value


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str
    label: str
    value: int


def daily_bars(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Opened and resolved side by side for each day of the period."""
    top = nice_max(max([d["opened"] for d in days] + [d["resolved"] for d in days] + [0]))
    plot_w = BAR_WIDTH - MARGIN_LEFT - 8
    plot_h = BAR_HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    slot = plot_w / max(1, len(days))
    bar_w = max(1.0, slot * 0.4)
    bars: list[Bar] = []
    labels = []
    # At most ~12 date labels under the axis, whatever the period's length.
    every = max(1, math.ceil(len(days) / 12))
    for i, day in enumerate(days):
        left = MARGIN_LEFT + i * slot + slot * 0.1
        for j, series in enumerate(("opened", "resolved")):
            h = plot_h * day[series] / top
            bars.append(
                Bar(
                    round(left + j * bar_w, 2),
                    round(MARGIN_TOP + plot_h - h, 2),
                    round(bar_w, 2),
                    round(h, 2),
                    series,
                    f"{day['date']}: {day[series]} {series}",
                    day[series],
                )
            )
        if i % every == 0:
            labels.append({"x": round(MARGIN_LEFT + i * slot + slot / 2, 2), "text": day["date"][5:]})
    # Whole numbers only: every 1 up to 5, else fifths of a 10, 20, 50… top.
    step = 1 if top <= 5 else top // 5
    ticks = [
        {"y": round(MARGIN_TOP + plot_h - plot_h * value / top, 2), "text": str(value)}
        for value in range(0, top + 1, step)
    ]
    return {
        "width": BAR_WIDTH,
        "height": BAR_HEIGHT,
        "bars": bars,
        "labels": labels,
        "label_y": BAR_HEIGHT - 8,
        "ticks": ticks,
        "axis_x": MARGIN_LEFT,
        "axis_right": BAR_WIDTH - 8,
    }


def heatmap(cells: list[dict[str, Any]], weekdays: list[str], metric: str) -> dict[str, Any]:
    """A 7 × 24 grid: each cell's opacity is its share of the busiest cell."""
    top = max([c[metric] for c in cells] + [0])
    rects = []
    for c in cells:
        value = c[metric]
        rects.append(
            {
                "x": HEAT_LEFT + c["hour"] * CELL,
                "y": HEAT_TOP + (c["weekday"] - 1) * CELL,
                "size": CELL - 2,
                # Empty cells stay faintly visible, so the grid reads as a grid.
                "opacity": round(0.06 + 0.94 * value / top, 3) if top and value else 0.06,
                "label": f"{weekdays[c['weekday'] - 1]} {c['hour']:02d}:00: {value}",
                "value": value,
            }
        )
    return {
        "width": HEAT_LEFT + 24 * CELL + 4,
        "height": HEAT_TOP + 7 * CELL + 4,
        "rects": rects,
        "rows": [{"y": HEAT_TOP + i * CELL + CELL / 2 + 4, "text": name[:3]} for i, name in enumerate(weekdays)],
        "columns": [{"x": HEAT_LEFT + h * CELL + CELL / 2 - 1, "text": f"{h:02d}"} for h in range(0, 24, 3)],
        "max": top,
    }


def rating_bars(distribution: dict[str, int]) -> dict[str, Any]:
    """One horizontal bar per rating, 1 to 5."""
    top = max([*distribution.values(), 0])
    width = 360
    rows = []
    for i, stars in enumerate(("5", "4", "3", "2", "1")):
        count = distribution.get(stars, 0)
        rows.append(
            {
                "y": 8 + i * 26,
                "label": stars,
                "count": count,
                "width": round((width - 90) * count / top, 2) if top else 0,
            }
        )
    return {"width": width, "height": 8 + 5 * 26, "rows": rows}
