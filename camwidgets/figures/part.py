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
        colorbar_title: what the colour bar measures (e.g. "heat"), written beside it.
    """

    traces: list[Props]
    xaxis: Props = field(default_factory=dict)
    yaxis: Props = field(default_factory=dict)
    title: str = ""
    square: bool = False
    colorbar: int | None = None
    colorbar_title: str = ""


# Readable sizes (issue 13: 7-9 px labels were unreadable).
FONT = 12
TITLE_FONT = 13
# Title ink: the counterfactual is named in its colour wherever a figure explains one.
NORMAL_COLOR, COUNTERFACTUAL_COLOR = "#222222", "#1f5fa8"
TICK_FONT = 11
# d3 number format for colour bars and value axes: "5e-5", not plotly's SI "50µ".
TICK_FORMAT = ".3~g"


@dataclass(frozen=True)
class Box:
    """Where a part sits, in paper fractions (0..1 over the plotting area)."""

    x0: float
    x1: float
    y0: float
    y1: float


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
            horizontal_spacing=0.09,
            vertical_spacing=0.16,
        )
    fig.update_layout(
        height=height or 320 * rows,
        margin={"l": 48, "r": 20, "t": 48, "b": 36},
        showlegend=False,
        plot_bgcolor="white",
        font={"size": FONT},
    )
    fig.update_annotations(font_size=TITLE_FONT)
    traces: list[Props] = []
    for number, part in enumerate(parts, start=1):
        suffix = "" if number == 1 else str(number)
        axes = _axes(fig, part, suffix)
        for index, trace in enumerate(part.traces):
            placed = {**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
            if index == part.colorbar:
                placed["colorbar"] = _colorbar(
                    _box(fig, suffix), part.colorbar_title, alone=len(parts) == 1
                )
            elif trace["type"] == "heatmap":
                placed["showscale"] = False
            traces.append(placed)
        fig.update_layout(axes)
    # Traces go in through the constructor: a FigureWidget shows them in Voila, traces added
    # to a widget after it was created do not (see notes/environment.md).
    return go.Figure(data=traces, layout=fig.layout)


def place(
    parts: Sequence[Part],
    boxes: Sequence[Box],
    height: int,
    margin: Props,
    title: Props | None = None,
    width: int | None = None,
) -> go.Figure:
    """Lay ``parts`` out in the given boxes, each colour bar beside its map.

    Args:
        parts: the panels, in order; trace order in the figure follows it.
        boxes: one per part, in paper fractions; titles go just above each box.
        height: figure height in pixels.
        margin: plotly margins (l, r, t, b) in pixels.
        title: the figure's title (plotly ``layout.title``), if any.
        width: figure width in pixels; None lets the front end size it to its container.
    """
    if len(parts) != len(boxes):
        raise ValueError(f"got {len(parts)} parts for {len(boxes)} boxes")
    plot_height = max(1, height - margin["t"] - margin["b"])
    layout: Props = {
        "height": height,
        "margin": margin,
        "showlegend": False,
        "plot_bgcolor": "white",
        "font": {"size": FONT},
        "annotations": [],
    }
    if width is not None:
        layout["width"] = width
    if title is not None:
        layout["title"] = title
    traces: list[Props] = []
    for number, (part, box) in enumerate(zip(parts, boxes, strict=True), start=1):
        suffix = "" if number == 1 else str(number)
        xaxis: Props = {"showgrid": False, "zeroline": False, **part.xaxis}
        yaxis: Props = {"showgrid": False, "zeroline": False, **part.yaxis}
        xaxis.update(domain=[box.x0, box.x1], anchor=f"y{suffix}")
        yaxis.update(domain=[box.y0, box.y1], anchor=f"x{suffix}")
        if part.square:
            # The map hugs its colour bar on the right when the box is wider than the map.
            xaxis.update(constrain="domain", constraintoward="right")
            yaxis.update(scaleanchor=f"x{suffix}", constrain="domain")
        layout[f"xaxis{suffix}"] = xaxis
        layout[f"yaxis{suffix}"] = yaxis
        layout["annotations"].append(
            {
                "text": part.title or " ",
                "x": (box.x0 + box.x1) / 2,
                "y": box.y1 + 6 / plot_height,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": TITLE_FONT},
            }
        )
        for index, trace in enumerate(part.traces):
            placed = {**trace, "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
            if index == part.colorbar:
                placed["colorbar"] = _colorbar(box, part.colorbar_title, alone=False)
            elif trace["type"] == "heatmap":
                placed["showscale"] = False
            traces.append(placed)
    return go.Figure(data=traces, layout=layout)


def apply(
    fig: BaseFigure,
    parts: Sequence[Part],
    shown: Sequence[Part] | None = None,
    layout: Props | None = None,
) -> None:
    """Update ``fig`` (built by ``compose`` from parts of the same shape) to show ``parts``.

    All changes go to plotly as one ``plotly_update`` (one message to a FigureWidget's views).

    Args:
        fig: a figure or FigureWidget made by ``compose``.
        parts: what to show now.
        shown: the parts the figure shows at present, if known: then only the values that
            differ are handed to plotly. Setting every property through plotly's validating
            setters costs about 40 ms, too slow for a slider; the values here have the types
            that were validated when the figure was built.
        layout: further layout changes (dotted paths, e.g. ``"title.text"``) to send in the
            same message.
    """
    count = sum(len(p.traces) for p in parts)
    if count != len(fig.data):
        raise ValueError(f"the figure has {len(fig.data)} traces, the parts give {count}")
    if shown is not None and [len(p.traces) for p in shown] != [len(p.traces) for p in parts]:
        raise ValueError("the shown parts do not have the shape of the parts to show")
    restyle: dict[str, list[Any]] = {}
    relayout: Props = dict(layout or {})
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
            if position == part.colorbar and (
                old is None or old.colorbar_title != part.colorbar_title
            ):
                path = "colorbar.title.text"
                restyle.setdefault(path, [Undefined] * count)[index] = part.colorbar_title
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


def figure_title(caption: str | None, counterfactual: bool) -> dict[str, Any]:
    """The figure's title over all its parts, inked by whether it explains a counterfactual."""
    color = COUNTERFACTUAL_COLOR if counterfactual else NORMAL_COLOR
    return {
        "text": caption or " ",
        "x": 0.5,
        "xanchor": "center",
        "y": 0.99,
        "yanchor": "top",
        "yref": "container",
        "font": {"size": TITLE_FONT + 2, "color": color},
    }


def relayout_boxes(
    fig: BaseFigure, boxes: Sequence[Box], width: int, height: int, margin: Props
) -> None:
    """Move a ``place``-built figure's parts to ``boxes`` at ``width`` x ``height`` px, their
    titles and colour bars with them, in one message."""
    inner = max(1, height - margin["t"] - margin["b"])
    relayout: Props = {"width": width, "height": height}
    count = len(fig.data)
    restyle: dict[str, list[Any]] = {}
    for number, box in enumerate(boxes, start=1):
        suffix = "" if number == 1 else str(number)
        relayout[f"xaxis{suffix}.domain"] = [box.x0, box.x1]
        relayout[f"yaxis{suffix}.domain"] = [box.y0, box.y1]
        relayout[f"annotations[{number - 1}].x"] = (box.x0 + box.x1) / 2
        relayout[f"annotations[{number - 1}].y"] = box.y1 + 6 / inner
        for index, trace in enumerate(fig.data):
            if (
                trace.xaxis == f"x{suffix}"
                and trace.type == "heatmap"
                and trace.showscale is not False
            ):
                for key, value in (
                    ("colorbar.x", box.x1 + 0.006),
                    ("colorbar.y", (box.y0 + box.y1) / 2),
                    ("colorbar.len", box.y1 - box.y0),
                ):
                    restyle.setdefault(key, [Undefined] * count)[index] = value
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


def _box(fig: go.Figure, suffix: str) -> Box:
    """The paper box of subplot ``suffix`` of a ``make_subplots`` figure."""
    x0, x1 = fig.layout[f"xaxis{suffix}"].domain or (0.0, 1.0)
    y0, y1 = fig.layout[f"yaxis{suffix}"].domain or (0.0, 1.0)
    return Box(x0, x1, y0, y1)


def _colorbar(box: Box, title: str, alone: bool) -> Props:
    """A titled vertical colour bar just right of its map, as tall as the map's box."""
    bar: Props = {
        "thickness": 12,
        "outlinewidth": 0,
        "tickfont": {"size": TICK_FONT},
        "tickformat": TICK_FORMAT,
        "title": {"text": title, "side": "right", "font": {"size": FONT}},
    }
    if alone:
        return {**bar, "len": 0.9}
    return {
        **bar,
        "x": box.x1 + 0.006,
        "xanchor": "left",
        "y": (box.y0 + box.y1) / 2,
        "yanchor": "middle",
        "len": box.y1 - box.y0,
        "lenmode": "fraction",
    }
