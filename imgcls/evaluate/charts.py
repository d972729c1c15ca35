"""Chart geometry for the HTML report: axes, ticks and point lists, drawn as inline SVG.

Only numbers are computed here; the SVG markup is written by the report's Jinja templates
(``templates/charts.html.j2``), which escape every label. No plotting library is needed, and
a chart of a few hundred points is a few kilobytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Matplotlib's tab10: distinguishable, and the same colours as the PNG figures.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


@dataclass
class Series:
    label: str
    color: str
    points: list[tuple[float, float]]  # pixel coordinates
    dashed: bool = False
    line: bool = True  # False: markers only (a scatter)

    @property
    def path(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in self.points)


@dataclass
class Chart:
    title: str
    x_label: str
    y_label: str
    width: int = 360
    height: int = 250
    left: int = 58
    right: int = 12
    top: int = 26
    bottom: int = 42
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    legend: list[tuple[str, str, bool]] = field(default_factory=list)  # label, colour, dashed
    note: str = ""

    @property
    def plot_right(self) -> int:
        return self.width - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom


def nice_ticks(low: float, high: float, count: int = 5, min_step: float = 0.0) -> list[float]:
    """About ``count`` round numbers covering [low, high] (1, 2, 2.5 or 5 times a power of 10),
    at least ``min_step`` apart (1 for epochs)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        spread = abs(low) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = max(min_step, next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw))
    start = math.floor(low / step + 1e-9) * step
    ticks = [round(start, 12)]
    while ticks[-1] < high - step * 1e-9 or len(ticks) < 2:  # the last tick is >= high
        ticks.append(round(start + len(ticks) * step, 12))
    return ticks


def tick_label(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e4 or magnitude < 1e-3:
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:.4g}"


class _Scale:
    """Data → pixels on one axis, linear or logarithmic (base 10)."""

    def __init__(
        self, values: Sequence[float], lo_px: float, hi_px: float, log: bool, min_step: float = 0
    ) -> None:
        self.log = log
        finite = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
        if log:
            exponents = [math.log10(v) for v in finite] or [0.0]
            low, high = math.floor(min(exponents)), math.ceil(max(exponents))
            if high == low:
                high = low + 1
            self.ticks = [10.0**e for e in range(int(low), int(high) + 1)]
            self.low, self.high = float(low), float(high)
        else:
            low, high = (min(finite), max(finite)) if finite else (0.0, 1.0)
            self.ticks = nice_ticks(low, high, min_step=min_step)
            self.low, self.high = min(self.ticks[0], low), max(self.ticks[-1], high)
        self.lo_px, self.hi_px = lo_px, hi_px

    def __call__(self, value: float) -> float:
        v = math.log10(value) if self.log else value
        span = (self.high - self.low) or 1.0
        return self.lo_px + (v - self.low) / span * (self.hi_px - self.lo_px)


def _usable(value: float, log: bool) -> bool:
    return math.isfinite(value) and (value > 0 or not log)


def line_chart(
    title: str,
    x_label: str,
    y_label: str,
    lines: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    *,
    colors: Sequence[str] | None = None,
    dashed: Sequence[bool] | None = None,
    legend: Sequence[tuple[str, str, bool]] | None = None,
    log_y: bool = False,
    integer_x: bool = False,
    width: int = 360,
    height: int = 250,
) -> Chart:
    """Lines ``(label, xs, ys)`` on shared axes; NaN points are left out."""
    chart = Chart(title, x_label, y_label, width=width, height=height)
    xs_all = [x for _, xs, _ in lines for x in xs if math.isfinite(x)]
    ys_all = [y for _, _, ys in lines for y in ys if _usable(y, log_y)]
    if not ys_all:
        chart.note = "no values"
        return chart
    x_scale = _Scale(xs_all, chart.left, chart.plot_right, log=False, min_step=int(integer_x))
    y_scale = _Scale(ys_all, chart.plot_bottom, chart.top, log=log_y)
    chart.x_ticks = [(x_scale(t), tick_label(t)) for t in x_scale.ticks]
    chart.y_ticks = [(y_scale(t), tick_label(t)) for t in y_scale.ticks]
    for index, (label, xs, ys) in enumerate(lines):
        color = colors[index] if colors else PALETTE[index % len(PALETTE)]
        dash = bool(dashed[index]) if dashed else False
        points = [
            (x_scale(x), y_scale(y))
            for x, y in zip(xs, ys, strict=False)
            if math.isfinite(x) and _usable(y, log_y)
        ]
        chart.series.append(Series(label, color, points, dash))
    chart.legend = (
        list(legend) if legend is not None else [(s.label, s.color, s.dashed) for s in chart.series]
    )
    return chart


def finite_number(value: Any) -> float | None:
    """``value`` as a float, or None when it is not a finite number (text, None, NaN, inf)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def scatter_chart(
    title: str,
    x_label: str,
    y_label: str,
    points: Sequence[tuple[str, float, str]],
    *,
    width: int = 320,
    height: int = 240,
) -> Chart:
    """One marker per ``(x value as text, objective, colour)``.

    Numbers go on a numeric axis (logarithmic when they are positive and span at least a
    factor of 100, as learning rates do); anything else becomes evenly spaced categories.
    """
    chart = Chart(title, x_label, y_label, width=width, height=height, bottom=56)
    kept = [(x, y, c) for x, y, c in points if math.isfinite(y)]
    if not kept:
        chart.note = "no finished runs"
        return chart
    numbers = [finite_number(x) for x, _, _ in kept]
    y_scale = _Scale([y for _, y, _ in kept], chart.plot_bottom, chart.top, log=False)
    chart.y_ticks = [(y_scale(t), tick_label(t)) for t in y_scale.ticks]
    if all(n is not None for n in numbers):
        values = [float(n) for n in numbers if n is not None]
        positive = min(values) > 0
        log = positive and max(values) / min(values) >= 100
        x_scale = _Scale(values, chart.left + 8, chart.plot_right - 8, log=log)
        chart.x_ticks = [(x_scale(t), tick_label(t)) for t in x_scale.ticks]
        xs = [x_scale(v) for v in values]
        if log:
            chart.note = "log scale"
    else:
        categories = list(dict.fromkeys(x for x, _, _ in kept))
        step = (chart.plot_right - chart.left) / len(categories)
        where = {c: chart.left + step * (i + 0.5) for i, c in enumerate(categories)}
        chart.x_ticks = [(where[c], c if len(c) <= 14 else c[:13] + "…") for c in categories]
        xs = [where[x] for x, _, _ in kept]
    for x_px, (_, y, color) in zip(xs, kept, strict=True):
        chart.series.append(Series("", color, [(x_px, y_scale(y))], line=False))
    return chart
