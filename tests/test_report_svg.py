"""The SVG chart helpers: axes, pens, and what a chart draws for given numbers."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from harness.report.svg import Pen, bar_chart, line_chart, nice_axis, pens


@pytest.mark.parametrize(
    ("maximum", "axis"),
    [
        (0, (1, 1)),
        (1, (1, 1)),
        (4, (4, 1)),
        (6, (6, 1)),
        (7, (8, 2)),
        (12, (12, 2)),
        (13, (15, 5)),
        (31, (40, 10)),
        (99, (100, 20)),
        (101, (120, 20)),
        (2.5, (3, 1)),
    ],
)
def test_nice_axis_covers_the_maximum_in_1_2_5_steps(maximum: float, axis: tuple[int, int]) -> None:
    assert nice_axis(maximum) == axis


def test_bundled_variants_keep_their_pen_whatever_else_is_drawn() -> None:
    alone = pens(["keepalive-fixed"])
    mixed = pens(["mine.py:factory", "keepalive-fixed", "baseline", "other:f"])
    assert alone["keepalive-fixed"] == mixed["keepalive-fixed"] == Pen("#009E73", "3 3", 2.5)
    assert mixed["baseline"] == Pen("#0072B2", "", 5.0)
    colours = [pen.colour for pen in mixed.values()]
    assert len(set(colours)) == 4


def test_an_async_twin_is_its_sync_twins_colour_dotted() -> None:
    drawn = pens(["keepalive-fixed-async", "keepalive-fixed", "mine:f"])
    assert drawn["keepalive-fixed-async"] == Pen("#009E73", "1 4", 2.5)
    assert drawn["mine:f"] == Pen("#882255", "12 4 3 4", 2.0)  # the first after the bundled


def _svg(text: str) -> ET.Element:
    # Inline SVG in HTML carries no namespace; parse it as plain XML to read the geometry.
    return ET.fromstring(text)


def test_line_chart_escapes_names_and_notes_identical_lines() -> None:
    chart = _svg(
        line_chart(
            {"a<b>&c": [0, 0], "twin": [0, 0], "empty": []},
            {
                "a<b>&c": Pen("#000", "", 2),
                "twin": Pen("#111", "2 2", 2),
                "empty": Pen("#222", "", 2),
            },
            title="t",
            x_label="turn",
            y_label="n",
        )
    )
    assert [p.get("data-variant") for p in chart.iter("polyline")] == ["a<b>&c", "twin"]
    legend = [t.text for t in chart.iter("text")][-3:]
    assert legend == ["a<b>&c", "twin (same as a<b>&c)", "empty (no turns sampled)"]


def test_bar_chart_bars_are_proportional_to_their_values() -> None:
    chart = _svg(
        bar_chart(
            {"v1": (("errors", 9), ("retries", 3)), "v2": (("errors", 0), ("retries", 6))},
            {"v1": Pen("#000", "", 2), "v2": Pen("#111", "", 2)},
            title="t",
            y_label="count",
        )
    )
    bars = [
        (r.get("data-variant"), r.get("data-kind"), float(r.get("height", "")))
        for r in chart.iter("rect")
        if r.get("data-variant")
    ]
    assert [(v, k) for v, k, _ in bars] == [
        ("v1", "errors"),
        ("v1", "retries"),
        ("v2", "errors"),
        ("v2", "retries"),
    ]
    unit = bars[0][2] / 9
    assert unit > 0
    assert [h for _, _, h in bars] == pytest.approx([9 * unit, 3 * unit, 0, 6 * unit])
    labels = [t.text for t in chart.iter("text")]
    assert labels[labels.index("v1") - 2 : labels.index("v1")] == ["9", "3"]
    assert not re.search(r"https?:", ET.tostring(chart, "unicode"))
