"""One panel of a figure (its traces, axes and title) and how panels become a figure.

Every figure in this package is made of ``Part``s. The same Part serves three uses: a standalone
``go.Figure``, one subplot of a composed figure, and an in-place update of an existing figure
(``apply``), so what a widget shows after an update is exactly what a fresh build would show.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import BaseFigure, Undefined
from plotly.subplots import make_subplots

Props = dict[str, Any]


@dataclass(frozen=True)
class Part:
    """Traces (plotly dicts with ``type``), their axes' properties and a title.

    Attributes:
        traces: trace dicts; their count and types must not change between updates.
        xaxis: properties of the x axis (ranges, ticks), without anchors.
        yaxis: properties of the y axis.
        title: the panel's title (HTML subset that plotly understands).
        square: pixels are square: the y axis is scale-anchored to the x axis.
        colorbar: index into ``traces`` of the trace whose colour bar is shown, if any.
    """

    traces: list[Props]
    xaxis: Props = field(default_factory=dict)
    yaxis: Props = field(default_factory=dict)
    title: str = ""
    square: bool = False
    colorbar: int | None = None


def compose(parts: Sequence[Part], top: int, height: int | None = None) -> go.Figure:
    """Lay out ``parts``: the first ``top`` side by side, each later one full-width below.

    Args:
        parts: the panels, in order; trace order in the figure follows it.
        top: how many parts share the first row.
        height: figure height in pixels (default: 320 per row).

    Returns:
        A complete ``go.Figure`` (build it whole, then wrap it in a FigureWidget once).
    """
    if not 1 <= top <= len(parts):
        raise ValueError(f"top must be between 1 and {len(parts)}, got {top}")
    rows = 1 + len(parts) - top
    if len(parts) == 1:
        fig = go.Figure(layout={"title": {"text": parts[0].title, "x": 0.5, "font": {"size": 14}}})
    else:
        specs: list[list[dict[str, Any] | None]] = [[{} for _ in range(top)]]
        specs += [[{"colspan": top}] + [None] * (top - 1) for _ in range(rows - 1)]
        fig = make_subplots(
            rows=rows,
            cols=top,
            specs=specs,
            subplot_titles=[p.title or " " for p in parts],
            row_heights=[0.62] + [0.38 / (rows - 1)] * (rows - 1) if rows > 1 else None,
            horizontal_spacing=0.05,
            vertical_spacing=0.16,
        )
    fig.update_layout(
        height=height or 320 * rows,
        margin={"l": 40, "r": 20, "t": 40, "b": 30},
        showlegend=False,
        plot_bgcolor="white",
    )
    traces: list[Props] = []
    for number, part in enumerate(parts, start=1):
        suffix = "" if number == 1 else str(number)
        axes = _axes(fig, part, suffix)
        for index, trace in enumerate(part.traces):
            placed = {**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
            if index == part.colorbar:
                placed["colorbar"] = _colorbar(fig, suffix, alone=len(parts) == 1)
            elif trace["type"] == "heatmap":
                placed["showscale"] = False
            traces.append(placed)
        fig.update_layout(axes)
    # Traces go in through the constructor: a FigureWidget shows them in Voila, traces added
    # to a widget after it was created do not (see notes/environment.md).
    return go.Figure(data=traces, layout=fig.layout)


def apply(fig: BaseFigure, parts: Sequence[Part], shown: Sequence[Part] | None = None) -> None:
    """Update ``fig`` (built by ``compose`` from parts of the same shape) to show ``parts``.

    All changes go to plotly as one ``plotly_update`` (one message to a FigureWidget's views).

    Args:
        fig: a figure or FigureWidget made by ``compose``.
        parts: what to show now.
        shown: the parts the figure shows at present, if known: then only the values that
            differ are handed to plotly. Setting every property through plotly's validating
            setters costs about 40 ms, too slow for a slider; the values here have the types
            that were validated when the figure was built.
    """
    count = sum(len(p.traces) for p in parts)
    if count != len(fig.data):
        raise ValueError(f"the figure has {len(fig.data)} traces, the parts give {count}")
    if shown is not None and [len(p.traces) for p in shown] != [len(p.traces) for p in parts]:
        raise ValueError("the shown parts do not have the shape of the parts to show")
    restyle: dict[str, list[Any]] = {}
    relayout: Props = {}
    index = 0
    for number, part in enumerate(parts, start=1):
        old = shown[number - 1] if shown is not None else None
        suffix = "" if number == 1 else str(number)
        for position, trace in enumerate(part.traces):
            before = old.traces[position] if old is not None else {}
            for path, value in _changes(trace, before):
                if path != "type":
                    checked = _validated(fig.data[index], path, value)
                    restyle.setdefault(path, [Undefined] * count)[index] = checked
            index += 1
        for axis in ("xaxis", "yaxis"):
            before = getattr(old, axis) if old is not None else {}
            for path, value in _changes(getattr(part, axis), before):
                relayout[f"{axis}{suffix}.{path}"] = value
        if old is None or part.title != old.title:
            key = "title.text" if len(parts) == 1 else f"annotations[{number - 1}].text"
            relayout[key] = part.title or " "
    if restyle or relayout:
        fig.plotly_update(
            restyle_data=restyle, relayout_data=relayout, trace_indexes=list(range(count))
        )


def _changes(new: Props, old: Props, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every leaf of ``new`` that differs from ``old``'s."""
    found: list[tuple[str, Any]] = []
    for key, value in new.items():
        previous = old.get(key, _MISSING)
        if isinstance(value, dict):
            found += _changes(
                value, previous if isinstance(previous, dict) else {}, f"{prefix}{key}."
            )
        elif previous is _MISSING or not _same(value, previous):
            found.append((f"{prefix}{key}", value))
    return found


_MISSING = object()


def _validated(trace: Any, path: str, value: Any) -> Any:
    """``value`` as plotly's validator for ``path`` makes it (arrays pass: their dtype is set)."""
    if isinstance(value, np.ndarray):
        return value
    *parents, name = path.split(".")
    for parent in parents:
        trace = trace[parent]
    return trace._get_validator(name).validate_coerce(value)


def _same(a: Any, b: Any) -> bool:
    """Deep equality that handles numpy arrays (same dtype, shape and values)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and np.array_equal(a, b)
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return (
            isinstance(b, (list, tuple))
            and len(a) == len(b)
            and all(_same(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def _axes(fig: go.Figure, part: Part, suffix: str) -> Props:
    """Layout entries for one part's axes, with anchors for square pixels."""
    xaxis: Props = {"showgrid": False, "zeroline": False, **part.xaxis}
    yaxis: Props = {"showgrid": False, "zeroline": False, **part.yaxis}
    if part.square:
        yaxis.update(scaleanchor=f"x{suffix}", constrain="domain")
        xaxis.update(constrain="domain")
    return {f"xaxis{suffix}": xaxis, f"yaxis{suffix}": yaxis}


def _colorbar(fig: go.Figure, suffix: str, alone: bool) -> Props:
    """A thin horizontal colour bar under the subplot (vertical at the right when alone)."""
    if alone:
        return {"thickness": 12, "len": 0.9}
    x0, x1 = fig.layout[f"xaxis{suffix}"].domain
    y0, _ = fig.layout[f"yaxis{suffix}"].domain
    return {
        "orientation": "h",
        "x": (x0 + x1) / 2,
        "xanchor": "center",
        "y": y0 - 0.02,
        "yanchor": "top",
        "len": (x1 - x0) * 0.9,
        "thickness": 8,
        "tickfont": {"size": 9},
    }
