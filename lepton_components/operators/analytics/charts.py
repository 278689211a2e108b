"""Geometry of the analytics charts, drawn by the page as inline SVG (no script, no CDN).

The console's CSP allows no external or inline script, and the figures are a few
dozen numbers, so the server computes bar rectangles and line points here and the
template writes them as SVG elements (colours come from classes in console.css).
Each mark carries a `<title>` text, so hovering or a screen reader gives its value.
"""

import datetime
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Text, Tuple

from lepton_components.operators.analytics.figures import Figures, Report

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22


@dataclass(frozen=True)
class Mark:
    """A bar (x, y, width, height) or a point (x, y) with its series class and value text."""

    x: float
    y: float
    width: float = 0.0
    height: float = 0.0
    series: Text = "a"
    title: Text = ""


@dataclass(frozen=True)
class Chart:
    key: Text
    title: Text
    width: int = WIDTH
    height: int = HEIGHT
    bars: List[Mark] = field(default_factory=list)
    points: List[Mark] = field(default_factory=list)
    # Polyline point lists ("x,y x,y"); a day without data breaks the line.
    lines: List[Text] = field(default_factory=list)
    y_ticks: List[Tuple[float, Text]] = field(default_factory=list)
    x_labels: List[Tuple[float, Text]] = field(default_factory=list)
    legend: List[Tuple[Text, Text]] = field(default_factory=list)
    empty: bool = True


def _plot_height() -> float:
    return HEIGHT - TOP - BOTTOM


def _slot(count: int) -> float:
    return (WIDTH - LEFT - RIGHT) / max(count, 1)


def _x_labels(days: Sequence[datetime.date]) -> List[Tuple[float, Text]]:
    step = max(1, len(days) // 8)
    slot = _slot(len(days))
    return [(LEFT + slot * (index + 0.5), day.strftime("%d %b")) for index, day in enumerate(days) if index % step == 0]


def _nice_top(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least `value`."""
    top, factors, step = 1, (2, 2.5, 2), 0
    while top < value:
        top, step = int(top * factors[step % 3]), step + 1
    return top


def _y(value: float, top: float) -> float:
    return TOP + _plot_height() * (1 - value / top)


def bar_chart(
    key: Text,
    title: Text,
    days: Sequence[datetime.date],
    series: Sequence[Tuple[Text, Text, Callable[[Figures], int]]],
    report: Report,
) -> Chart:
    """Bars per day for one or more count series (side by side), e.g. conversations."""
    values = [[pick(report.per_day[day]) for day in days] for _, _, pick in series]
    top = _nice_top(max([value for row in values for value in row] + [1]))
    slot = _slot(len(days))
    width = slot * 0.8 / len(series)
    bars = []
    for number, ((css, label, _), row) in enumerate(zip(series, values)):
        for index, (day, value) in enumerate(zip(days, row)):
            y = _y(value, top)
            bars.append(
                Mark(
                    LEFT + slot * index + slot * 0.1 + width * number,
                    y,
                    width,
                    TOP + _plot_height() - y,
                    css,
                    f"{day.isoformat()}: {value} {label.lower()}",
                )
            )
    return Chart(
        key,
        title,
        bars=bars,
        y_ticks=[(_y(tick, top), str(tick)) for tick in sorted({0, top // 2, top})],
        x_labels=_x_labels(days),
        legend=[(css, label) for css, label, _ in series] if len(series) > 1 else [],
        empty=not any(value for row in values for value in row),
    )


def rate_chart(
    key: Text, title: Text, days: Sequence[datetime.date], pick: Callable[[Figures], Optional[float]], report: Report
) -> Chart:
    """A line of a daily share (0-100 %), broken on days with nothing to divide."""
    slot = _slot(len(days))
    points, lines, current = [], [], []
    for index, day in enumerate(days):
        value = pick(report.per_day[day])
        if value is None:
            if current:
                lines.append(" ".join(current))
            current = []
            continue
        x, y = LEFT + slot * (index + 0.5), _y(value, 1.0)
        current.append(f"{x:.1f},{y:.1f}")
        points.append(Mark(x, y, series="a", title=f"{day.isoformat()}: {value * 100:.1f} %"))
    if current:
        lines.append(" ".join(current))
    return Chart(
        key,
        title,
        points=points,
        lines=lines,
        y_ticks=[(_y(tick, 1.0), f"{int(tick * 100)} %") for tick in (0.0, 0.5, 1.0)],
        x_labels=_x_labels(days),
        empty=not points,
    )


def charts(report: Report) -> List[Chart]:
    """The page's charts, in the order it shows them."""
    days = report.daily
    return [
        bar_chart("conversations", "Conversations", days, [("a", "Conversations", lambda f: f.conversations)], report),
        rate_chart("containment", "Containment (resolved without a person)", days, lambda f: f.containment, report),
        rate_chart("fallback_rate", "Fallback rate", days, lambda f: f.fallback_rate, report),
        rate_chart("kb_answer_rate", "Knowledge-base answer rate", days, lambda f: f.kb_answer_rate, report),
        rate_chart("handoff_rate", "Handoff rate", days, lambda f: f.handoff_rate, report),
        bar_chart(
            "feedback",
            "Customer feedback",
            days,
            [("up", "Thumbs up", lambda f: f.feedback_up), ("down", "Thumbs down", lambda f: f.feedback_down)],
            report,
        ),
    ]
