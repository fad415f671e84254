"""A small SVG chart: linear or log axes with ticks, points, lines, error bars and a legend.

Our own code so leaderboard.html stays one self-contained file (no plotting library, no CDN).
Every piece of text goes through html.escape.
"""

from __future__ import annotations

import itertools
import math
from html import escape

# Okabe-Ito: distinguishable for colour-blind readers and in greyscale print.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

_CLIP_IDS = itertools.count()


def nice_ticks(low: float, high: float, log: bool) -> list[float]:
    """Tick positions: 1-2-5 steps on a linear axis, 1-2-5 per decade on a log axis (powers only if wide)."""
    if log:
        first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
        steps = (1,) if last - first > 3 else (1, 2, 5)
        return [m * 10**e for e in range(first, last + 1) for m in steps if low <= m * 10**e <= high]
    span = high - low or 1.0
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start = math.ceil(low / step) * step
    return [round(start + i * step, 10) for i in range(int((high - start) / step + 1e-9) + 1)]


def tick_label(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


def padded_range(values: list[float], log: bool, floor: float | None = None) -> tuple[float, float]:
    """A data range with a little margin, snapped outward to decades on a log axis."""
    values = [v for v in values if v is not None and (not log or v > 0)]
    if not values:
        return (1.0, 10.0) if log else (0.0, 1.0)
    low, high = min(values), max(values)
    if log:
        low_exponent = math.floor((math.log10(low) - 0.05) * 2) / 2
        high_exponent = max(math.ceil((math.log10(high) + 0.05) * 2) / 2, low_exponent + 0.5)
        return 10**low_exponent, 10**high_exponent
    margin = (high - low) * 0.08 or max(abs(high) * 0.1, 1.0)
    low = low - margin if floor is None else max(floor, low - margin)
    return low, high + margin


class Chart:
    """One plot area; add marks in data coordinates, then ``render()`` to an <svg> string."""

    def __init__(self, title: str, x_label: str, y_label: str, x_range: tuple[float, float],
                 y_range: tuple[float, float], x_log: bool = False, y_log: bool = False,
                 width: int = 520, height: int = 380, css_class: str = "chart"):
        self.title, self.x_label, self.y_label = title, x_label, y_label
        self.x_range, self.y_range, self.x_log, self.y_log = x_range, y_range, x_log, y_log
        self.width, self.height, self.css_class = width, height, css_class
        self.left, self.right, self.top, self.bottom = 62, 16, 34, 50
        self.marks: list[str] = []
        self.legend: list[tuple[str, str]] = []

    def _scale(self, value: float, bounds: tuple[float, float], log: bool, start: float, length: float) -> float:
        low, high = bounds
        if log:
            value, low, high = math.log10(max(value, 1e-12)), math.log10(low), math.log10(high)
        return start + (value - low) / ((high - low) or 1.0) * length

    def px(self, x: float) -> float:
        return self._scale(x, self.x_range, self.x_log, self.left, self.width - self.left - self.right)

    def py(self, y: float) -> float:
        plot_height = self.height - self.top - self.bottom
        return self._scale(y, self.y_range, self.y_log, self.height - self.bottom, -plot_height)

    def point(self, x: float, y: float, color: str, tooltip: str, radius: float = 3.0, opacity: float = 0.7) -> None:
        self.marks.append(f'<circle class="pt" cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="{radius}" '
                          f'fill="{color}" fill-opacity="{opacity}"><title>{escape(tooltip)}</title></circle>')

    def line(self, points: list[tuple[float, float]], color: str, dashed: bool = False, width: float = 1.8) -> None:
        coords = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in points)
        dash = ' stroke-dasharray="5 4"' if dashed else ""
        self.marks.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="{width}"{dash}/>')

    def error_bar(self, x: float, low: float, high: float, color: str) -> None:
        x_px = self.px(x)
        self.marks.append(f'<path d="M{x_px:.1f},{self.py(low):.1f}V{self.py(high):.1f}M{x_px - 3:.1f},'
                          f'{self.py(low):.1f}h6M{x_px - 3:.1f},{self.py(high):.1f}h6" stroke="{color}" fill="none"/>')

    def note(self, text: str) -> None:
        """A centred message, for a chart with nothing to draw."""
        self.marks.append(f'<text x="{self.width / 2:.0f}" y="{self.height / 2:.0f}" text-anchor="middle" '
                          f'class="note">{escape(text)}</text>')

    def add_legend(self, name: str, color: str) -> None:
        self.legend.append((name, color))

    def _axes(self) -> list[str]:
        parts = []
        x0, x1 = self.left, self.width - self.right
        y0, y1 = self.height - self.bottom, self.top
        for tick in nice_ticks(*self.x_range, self.x_log):
            x = self.px(tick)
            parts.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y1}"/>'
                         f'<text x="{x:.1f}" y="{y0 + 16}" text-anchor="middle">{tick_label(tick)}</text>')
        for tick in nice_ticks(*self.y_range, self.y_log):
            y = self.py(tick)
            parts.append(f'<line class="grid" x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}"/>'
                         f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_label(tick)}</text>')
        parts.append(f'<rect class="frame" x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}"/>')
        parts.append(f'<text class="title" x="{x0}" y="{self.top - 12}">{escape(self.title)}</text>')
        parts.append(f'<text class="label" x="{(x0 + x1) / 2:.0f}" y="{self.height - 12}" '
                     f'text-anchor="middle">{escape(self.x_label)}</text>')
        parts.append(f'<text class="label" transform="translate(14,{(y0 + y1) / 2:.0f}) rotate(-90)" '
                     f'text-anchor="middle">{escape(self.y_label)}</text>')
        return parts

    def _legend(self) -> list[str]:
        if not self.legend:
            return []
        width = 28 + 5.6 * max(len(name) for name, _ in self.legend)
        parts = [f'<rect class="legend-box" x="{self.left + 4}" y="{self.top + 3}" width="{width:.0f}" '
                 f'height="{len(self.legend) * 15 + 6}"/>']
        for i, (name, color) in enumerate(self.legend):
            y = self.top + 12 + i * 15
            parts.append(f'<circle cx="{self.left + 12}" cy="{y - 4}" r="4" fill="{color}"/>'
                         f'<text class="legend" x="{self.left + 21}" y="{y}">{escape(name)}</text>')
        return parts

    def render(self) -> str:
        clip = f"clip{next(_CLIP_IDS)}"
        body = "".join(self.marks)
        return (f'<svg class="{self.css_class}" width="{self.width}" '
                f'height="{self.height}" viewBox="0 0 {self.width} {self.height}" role="img" '
                f'aria-label="{escape(self.title)}"><clipPath id="{clip}"><rect x="{self.left}" y="{self.top}" '
                f'width="{self.width - self.left - self.right}" height="{self.height - self.top - self.bottom}"/>'
                f'</clipPath>{"".join(self._axes())}<g clip-path="url(#{clip})">{body}</g>'
                f'{"".join(self._legend())}</svg>')
