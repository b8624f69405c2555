"""Inline SVG charts for report.html: a line chart per turn and a grouped bar chart.

Pure functions from numbers to SVG text; no files, no scripts, no external references, so the
report stays one self-contained file that renders offline. Every variant keeps one
:class:`Pen` (colour and dash) in every chart of a report, so a reader matches lines, bars and
table rows by colour. The palette is Okabe-Ito (distinguishable with colour-blindness), and
dashes and widths differ too, because healthy variants often draw the very same line.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from harness.variants import BUNDLED

__all__ = ["DASHES", "Pen", "bar_chart", "line_chart", "nice_axis", "pens"]

# Seven bundled variant families first, then colours for other specs (Okabe-Ito, then Tol's).
_PALETTE = (
    *("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"),
    *("#882255", "#44AA99", "#999933", "#AA4499", "#661100"),
)
DASHES = ("", "9 5", "3 3", "12 4 3 4")
_ASYNC, _ASYNC_DASH = "-async", "1 4"
_WIDTHS = (5.0, 3.5, 2.5, 2.0)
_FONT = 'font-family="system-ui, sans-serif" font-size="12" fill="#222"'
_CHAR_W = 7.0  # estimated width of one 12 px character, for laying out legend text


@dataclass(frozen=True)
class Pen:
    """How one variant is drawn."""

    colour: str
    dash: str  # stroke-dasharray, "" for solid
    width: float


def pens(variants: Iterable[str]) -> dict[str, Pen]:
    """A pen per variant: bundled variants always get the same one; others take the rest.

    A bundled async twin (``*-async``) is drawn in its sync twin's colour, dotted.
    """
    names = list(dict.fromkeys(variants))
    bundled = [name for name in BUNDLED if not name.endswith(_ASYNC)]
    spare = itertools.count(len(bundled))  # other specs: the colours after the bundled ones
    out: dict[str, Pen] = {}
    for name in names:
        twin = name.removesuffix(_ASYNC)
        slot = bundled.index(twin) if name in BUNDLED else next(spare)
        out[name] = Pen(
            _PALETTE[slot % len(_PALETTE)],
            _ASYNC_DASH if twin != name and name in BUNDLED else DASHES[slot % len(DASHES)],
            _WIDTHS[min(slot, len(_WIDTHS) - 1)],
        )
    return out


def nice_axis(maximum: float, *, max_ticks: int = 6) -> tuple[int, int]:
    """(top, step): an integer axis from 0 to ``top`` >= ``maximum``, in 1-2-5 steps."""
    peak = max(math.ceil(maximum), 1)
    step, factors = 1, itertools.cycle((2.0, 2.5, 2.0))  # 1, 2, 5, 10, 20, 50, 100, ...
    while peak / step > max_ticks:
        step = round(step * next(factors))
    return -(-peak // step) * step, step


@dataclass(frozen=True)
class _Frame:
    width: float
    height: float
    left: float = 56
    right: float = 16
    top: float = 34
    bottom: float = 44

    @property
    def plot_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> float:
        return self.height - self.top - self.bottom

    def y(self, value: float, top_value: int) -> float:
        return self.top + self.plot_h * (1 - value / top_value)


def _text(x: float, y: float, text: str, *, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {_FONT}{extra}>{escape(text)}</text>'
    )


def _legend(
    names: Sequence[str],
    pen_of: Mapping[str, Pen],
    y0: float,
    width: float,
    notes: Mapping[str, str],
) -> tuple[list[str], float]:
    """Legend entries flowed in rows under the chart; returns the parts and the height."""
    parts, x, y = [], 12.0, y0 + 14
    for name in names:
        pen = pen_of[name]
        label = f"{name} {notes[name]}" if name in notes else name
        need = 34 + _CHAR_W * len(label) + 18
        if x + need > width and x > 12:
            x, y = 12.0, y + 20
        dash = f' stroke-dasharray="{pen.dash}"' if pen.dash else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="{y - 4:.1f}" x2="{x + 28:.1f}" y2="{y - 4:.1f}" '
            f'stroke="{pen.colour}" stroke-width="{min(pen.width, 4):.1f}"{dash}/>'
        )
        parts.append(_text(x + 34, y, label, anchor="start"))
        x += need
    return parts, y + 10 - y0


def _y_axis(frame: _Frame, top: int, step: int, label: str) -> list[str]:
    parts = []
    for value in range(0, top + 1, step):
        y = frame.y(value, top)
        parts.append(
            f'<line x1="{frame.left:.1f}" y1="{y:.1f}" '
            f'x2="{frame.left + frame.plot_w:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(_text(frame.left - 8, y + 4, str(value), anchor="end"))
    mid = frame.top + frame.plot_h / 2
    parts.append(_text(14, mid, label, extra=f' transform="rotate(-90 14 {mid:.1f})"'))
    base = frame.top + frame.plot_h
    parts.append(
        f'<line x1="{frame.left:.1f}" y1="{frame.top:.1f}" x2="{frame.left:.1f}" '
        f'y2="{base:.1f}" stroke="#444"/>'
    )
    parts.append(
        f'<line x1="{frame.left:.1f}" y1="{base:.1f}" '
        f'x2="{frame.left + frame.plot_w:.1f}" y2="{base:.1f}" stroke="#444"/>'
    )
    return parts


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="{escape(title)}">'
        + _text(width / 2, 18, title, extra=' font-weight="bold"')
        + "".join(body)
        + "</svg>"
    )


def line_chart(
    series: Mapping[str, Sequence[int]],
    pen_of: Mapping[str, Pen],
    *,
    title: str,
    x_label: str,
    y_label: str,
    width: float = 560,
    height: float = 300,
) -> str:
    """One polyline per variant with samples (``data-variant`` names it), x = 1..n."""
    frame = _Frame(width, height)
    turns = max((len(v) for v in series.values()), default=0)
    top, step = nice_axis(max((max(v, default=0) for v in series.values()), default=0))
    parts = _y_axis(frame, top, step, y_label)

    def x_of(turn: int) -> float:
        return frame.left + frame.plot_w * ((turn - 0.5) / max(turns, 1))

    x_step = max(1, -(-turns // 12))
    for turn in range(1, turns + 1):
        if turn == 1 or turn % x_step == 0:
            parts.append(_text(x_of(turn), frame.top + frame.plot_h + 16, str(turn)))
    parts.append(_text(frame.left + frame.plot_w / 2, frame.top + frame.plot_h + 34, x_label))
    for name, values in series.items():
        if not values:
            continue
        pen = pen_of[name]
        points = " ".join(
            f"{x_of(i):.2f},{frame.y(v, top):.2f}" for i, v in enumerate(values, start=1)
        )
        dash = f' stroke-dasharray="{pen.dash}"' if pen.dash else ""
        shown = " ".join(str(v) for v in values)
        parts.append(
            f'<polyline data-variant="{escape(name)}" points="{points}" fill="none" '
            f'stroke="{pen.colour}" stroke-width="{pen.width:.1f}"{dash} '
            f'stroke-linejoin="round"><title>{escape(name)}: {shown}</title>'
            f"</polyline>"
        )
    legend, legend_h = _legend(list(series), pen_of, height, width, _line_notes(series))
    return _svg(width, height + legend_h, title, parts + legend)


def _line_notes(series: Mapping[str, Sequence[int]]) -> dict[str, str]:
    # Healthy variants often draw the very same line, one hiding the other: say so.
    notes: dict[str, str] = {}
    seen: dict[tuple[int, ...], str] = {}
    for name, values in series.items():
        key = tuple(values)
        if not key:
            notes[name] = "(no turns sampled)"
        elif key in seen:
            notes[name] = f"(same as {seen[key]})"
        else:
            seen[key] = name
    return notes


def _wrap(name: str, fits: int, rows: int = 3) -> list[str]:
    """At most ``rows`` lines of at most ``fits`` characters, broken only after a separator
    (``-_.:/``), never inside a word; a word longer than a line ends in ``…``. The full name
    stays in the bar's tooltip and the table."""
    words, word = [], ""
    for c in name:
        word += c
        if c in "-_.:/":
            words.append(word)
            word = ""
    if word:
        words.append(word)
    lines: list[str] = []
    for w in words:
        if lines and len(lines[-1]) + len(w) <= fits:
            lines[-1] += w
        else:
            lines.append(w if len(w) <= fits else w[: fits - 1] + "…")
    if len(lines) > rows:
        last = "".join(lines[rows - 1 :])
        lines = [*lines[: rows - 1], last[: fits - 1] + "…"]
    return lines


# bar fill opacity by position in a group: solid, light, outline only (with a dashed edge)
_BAR_STYLES = (("1", ""), ("0.35", ""), ("0", ' stroke-dasharray="3 2"'))


def bar_chart(
    groups: Mapping[str, Sequence[tuple[str, int]]],
    pen_of: Mapping[str, Pen],
    *,
    title: str,
    y_label: str,
    width: float = 560,
    height: float = 300,
) -> str:
    """Per variant a group of bars, one per (label, value); the first bar solid, the rest
    light, with the value above each bar and a key for the bar labels."""
    width = max(width, 56 + 16 + 96 * len(groups))  # room for a 12-character label line
    frame = _Frame(width, height, bottom=58)
    top, step = nice_axis(max((v for bars in groups.values() for _, v in bars), default=0))
    parts = _y_axis(frame, top, step, y_label)
    slot = frame.plot_w / max(len(groups), 1)
    base = frame.top + frame.plot_h
    for g, (name, bars) in enumerate(groups.items()):
        pen = pen_of[name]
        bar_w = min(48.0, slot * 0.8 / max(len(bars), 1))
        x0 = frame.left + slot * g + (slot - bar_w * len(bars)) / 2
        for b, (label, value) in enumerate(bars):
            x, y = x0 + b * bar_w, frame.y(value, top)
            opacity, edge = _BAR_STYLES[min(b, len(_BAR_STYLES) - 1)]
            parts.append(
                f'<rect data-variant="{escape(name)}" data-kind="{escape(label)}" '
                f'x="{x + 2:.2f}" y="{y:.2f}" width="{bar_w - 4:.2f}" '
                f'height="{base - y:.2f}" fill="{pen.colour}" fill-opacity="{opacity}" '
                f'stroke="{pen.colour}" stroke-width="1.5"{edge}><title>{escape(name)} '
                f"{escape(label)}: {value}</title></rect>"
            )
            parts.append(_text(x + bar_w / 2, y - 4, str(value)))
        for row, line in enumerate(_wrap(name, max(int(slot / _CHAR_W) - 1, 3))):
            parts.append(_text(frame.left + slot * (g + 0.5), base + 16 + 14 * row, line))
    labels = list(dict.fromkeys(label for bars in groups.values() for label, _ in bars))
    key_y = height + 4
    key = [
        f'<rect x="{12 + 110 * i:.1f}" y="{key_y:.1f}" width="28" height="11" fill="#555" '
        f'fill-opacity="{style[0]}" stroke="#555" stroke-width="1.5"{style[1]}/>'
        + _text(46 + 110 * i, key_y + 10, label, anchor="start")
        for i, label in enumerate(labels)
        for style in [_BAR_STYLES[min(i, len(_BAR_STYLES) - 1)]]
    ]
    return _svg(width, height + 24, title, parts + key)
