"""Several models' maps of one picture side by side, their signed difference, and their
channel weights as grouped bars: the figure of ``camwidgets.Compare``.

Every model's heat map is drawn over the same picture on ONE colour range (the largest value
of any of them), so "brighter" means the same thing in every square. The difference map is
``heat[a] - heat[b]`` on the same range, signed (red: model a looks there more, blue: less).
The bars show alpha per channel; when every layer has the same width the channels are matched
by index (grouped bars of the same ``#k``), otherwise each model shows its own top channels.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import BaseFigure

from .grid import columns, positions
from .overlay import overlay_part
from .part import (
    TICK_FONT,
    TICK_FORMAT,
    Box,
    Part,
    apply,
    figure_title,
    place,
    relayout_boxes,
)
from .scales import emptiness, peak, positive_range

DEFAULT_WIDTH = 1200
MARGIN = {"l": 56, "r": 24, "t": 48, "b": 40}
MIN_SIDE, MAX_SIDE = 150.0, 420.0
DIFF_COLORSCALE = "RdBu_r"
MODEL_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


@dataclass(frozen=True)
class CompareView:
    """What the compare figure draws, as numpy arrays and words.

    Attributes:
        picture: (H, W, 3) uint8 pixels aligned with the heat maps, or their PNG data URI.
        names: the models' names, in order.
        heatmaps: one (H, W) heat map per model (ReLU'd, resized, not normalised).
        weights: one alpha vector (K_i,) per model; None for a method without channel weights.
        titles: one subplot title per model (layer, class probability).
        pair: the difference shown is ``heatmaps[pair[0]] - heatmaps[pair[1]]``.
        top: how many channels the bars show.
        opacity: of the heat maps over the picture.
        colorscale: of the heat maps.
        caption: the figure's title.
        counterfactual: whether the maps are counterfactual ones.
    """

    picture: np.ndarray | str
    names: tuple[str, ...]
    heatmaps: tuple[np.ndarray, ...]
    weights: tuple[np.ndarray | None, ...]
    titles: tuple[str, ...] = ()
    pair: tuple[int, int] = (1, 0)
    top: int = 12
    opacity: float = 0.5
    colorscale: str = "Jet"
    caption: str = ""
    counterfactual: bool = False

    def __post_init__(self) -> None:
        count = len(self.names)
        if count < 2 or len(self.heatmaps) != count or len(self.weights) != count:
            raise ValueError("a compare view needs two or more names, heat maps and weights")
        shapes = {h.shape for h in self.heatmaps}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise ValueError(f"heat maps must be (H, W) of one size, got {sorted(shapes)}")
        a, b = self.pair
        if not (0 <= a < count and 0 <= b < count and a != b):
            raise ValueError(f"pair must be two different model indices, got {self.pair}")

    @property
    def zmax(self) -> float:
        """The shared colour range's top: the largest value of any model's heat map."""
        return positive_range(max(peak(h) for h in self.heatmaps))

    @property
    def difference(self) -> np.ndarray:
        """``heatmaps[a] - heatmaps[b]`` (signed)."""
        a, b = self.pair
        return np.asarray(self.heatmaps[a], np.float32) - np.asarray(self.heatmaps[b], np.float32)

    @property
    def matched(self) -> bool:
        """Whether channels are matched by index (every layer has weights of one width)."""
        widths = {w.size if w is not None else -1 for w in self.weights}
        return len(widths) == 1 and -1 not in widths

    @classmethod
    def blank(cls, names: tuple[str, ...]) -> CompareView:
        """A placeholder before any image is explained."""
        zero = np.zeros((1, 1), np.float32)
        return cls(
            picture=np.zeros((1, 1, 3), np.uint8),
            names=names,
            heatmaps=tuple(zero for _ in names),
            weights=tuple(np.zeros(1, np.float32) for _ in names),
            caption="Loading: computing the first explanations…",
        )


def compare_parts(view: CompareView, max_side: int | None = None) -> list[Part]:
    """One overlay per model, the difference map, then the grouped bars (figure order).

    Each model's overlay has two traces (picture, heat map), the difference two (picture,
    signed map), the bars one trace per model; every trace is named after its role
    (``heatmap:NAME``, ``difference``, ``bars:NAME``).
    """
    zmax = view.zmax
    parts: list[Part] = []
    last = len(view.names) - 1
    for index, (name, heat) in enumerate(zip(view.names, view.heatmaps, strict=True)):
        title = view.titles[index] if index < len(view.titles) else name
        note = emptiness(peak(heat), zmax, "the shared range")
        if note is not None:
            title += f"<br><span style='color:#b00020'>{note}</span>"
        part = overlay_part(
            view.picture,
            heat,
            view.opacity,
            view.colorscale,
            max_side,
            zmax=zmax,
            title=f"<b>{html.escape(name)}</b> · {title}",
            scale="shared",
        )
        # One colour bar for all models (the range is shared): beside the last one.
        part = replace(part, colorbar=1 if index == last else None)
        traces = [{**part.traces[0], "name": f"picture:{name}"}]
        # zauto off explicitly: a map without its own colour bar must still use the shared range.
        traces.append({**part.traces[1], "name": f"heatmap:{name}", "zauto": False})
        parts.append(replace(part, traces=traces))
    parts.append(_difference_part(view, zmax, max_side))
    parts.append(_bars_part(view))
    return parts


def _difference_part(view: CompareView, zmax: float, max_side: int | None) -> Part:
    """The signed difference of the pair over the picture, on ±the shared range."""
    a, b = view.pair
    diff = view.difference
    height, width = diff.shape
    x, y, z = columns(diff, positions(height, max_side), positions(width, max_side))
    picture = overlay_part(view.picture, view.heatmaps[0], max_side=max_side).traces[0]
    first, second = html.escape(view.names[a]), html.escape(view.names[b])
    heat = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": z,
        "zmin": -zmax,
        "zmax": zmax,
        "zauto": False,
        "zsmooth": "best",
        "opacity": 0.75,
        "colorscale": DIFF_COLORSCALE,
        "hovertemplate": (
            f"pixel x=%{{x}}, y=%{{y}}<br>{first} − {second} = %{{z:.4g}}<extra></extra>"
        ),
        "name": "difference",
    }
    top = float(np.abs(diff).max(initial=0.0))
    return Part(
        traces=[{**picture, "name": "picture:difference"}, heat],
        xaxis={"range": [-0.5, width - 0.5], "showticklabels": False},
        yaxis={"range": [height - 0.5, -0.5], "showticklabels": False},
        title=(
            f"difference <b>{first}</b> − <b>{second}</b> · largest |Δ| {top:.3g}"
            f"<br><span style='font-size:11px'>red: {first} looks more · blue: less</span>"
        ),
        square=True,
        colorbar=1,
        colorbar_title="Δ heat · shared",
    )


def _bars_part(view: CompareView) -> Part:
    """alpha of each model as bars: matched channels grouped by index, or each model's own."""
    count = max(1, view.top)
    traces: list[dict[str, Any]] = []
    if view.matched:
        stacked = np.stack([np.asarray(w, np.float32) for w in view.weights if w is not None])
        strength = np.abs(stacked).max(axis=0)
        k = min(count, strength.size)
        channels = np.argsort(-strength, kind="stable")[:k]
        channels = channels[np.argsort(-stacked[0][channels], kind="stable")]
        title = f"channel weights α · top {k} of {strength.size} channels by |α|, matched by index"
    else:
        channels = np.zeros(0, np.int64)
        title = "channel weights α · each model's own top channels (layers of different widths)"
    for index, (name, weights) in enumerate(zip(view.names, view.weights, strict=True)):
        values = np.zeros(0, np.float32) if weights is None else np.asarray(weights, np.float32)
        if view.matched:
            shown = channels
            labels = np.array([f"#{c}" for c in shown])
        else:
            k = min(max(1, count // len(view.names)), values.size)
            shown = np.argsort(-np.abs(values), kind="stable")[:k]
            labels = np.array([f"{name} #{c}" for c in shown])
        traces.append(
            {
                "type": "bar",
                "x": labels,
                "y": np.ascontiguousarray(values[shown], dtype=np.float32),
                "customdata": shown.astype(np.int32),
                "marker": {"color": MODEL_COLORS[index % len(MODEL_COLORS)]},
                "hovertemplate": (
                    f"{html.escape(name)} · channel %{{customdata}}<br>"
                    "α = %{y:.4g}<extra></extra>"
                ),
                "name": f"bars:{name}",
            }
        )
    if any(w is None for w in view.weights):
        title += " · a method without channel weights draws no bars"
    key = " ".join(
        f"<span style='color:{MODEL_COLORS[i % len(MODEL_COLORS)]}'>■</span> {html.escape(n)}"
        for i, n in enumerate(view.names)
    )
    title += f"<br>{key}"
    return Part(
        traces=traces,
        xaxis={"type": "category", "tickfont": {"size": TICK_FONT}},
        yaxis={
            "title": {"text": "α<sub>k</sub>"},
            "zeroline": True,
            "zerolinecolor": "#999",
            "tickformat": TICK_FORMAT,
            "tickfont": {"size": TICK_FONT},
        },
        title=title,
    )


@dataclass(frozen=True)
class CompareLayout:
    """Where the parts go at a width: boxes (paper fractions) and the figure height."""

    width: int
    height: int
    columns: int
    boxes: tuple[Box, ...]


def compare_layout(maps: int, width: int | None = None) -> CompareLayout:
    """``maps`` square maps in rows (as many per row as fit at >= 150 px), the bars below."""
    width = max(int(width or DEFAULT_WIDTH), 480)
    inner = width - MARGIN["l"] - MARGIN["r"]
    bar_room, gap, title_room, tick_room = 84, 24, 58, 12
    columns = maps
    while columns > 1 and (inner - columns * bar_room - (columns - 1) * gap) / columns < MIN_SIDE:
        columns -= 1
    rows = -(-maps // columns)
    side = (inner - columns * bar_room - (columns - 1) * gap) / columns
    side = float(min(max(side, 100.0), MAX_SIDE))
    used = columns * (side + bar_room) + (columns - 1) * gap
    left = max(0.0, (inner - used) / 2)
    bars_height, bars_ticks = 240, 40
    row = title_room + side + tick_room
    plot = rows * row + title_room + bars_height + bars_ticks
    boxes: list[Box] = []
    for index in range(maps):
        line, col = divmod(index, columns)
        x0 = left + col * (side + bar_room + gap)
        top = line * row + title_room
        boxes.append(Box(x0 / inner, (x0 + side) / inner, 1 - (top + side) / plot, 1 - top / plot))
    bars_top = rows * row + title_room
    boxes.append(Box(0.0, 1.0, 1 - (bars_top + bars_height) / plot, 1 - bars_top / plot))
    height = round(plot + MARGIN["t"] + MARGIN["b"])
    return CompareLayout(width, height, columns, tuple(boxes))


def _title(view: CompareView) -> dict[str, Any]:
    return figure_title(view.caption, view.counterfactual)


def compare_figure(
    view: CompareView, max_side: int | None = None, width: int | None = None, fixed: bool = False
) -> go.Figure:
    """The whole compare figure (build it whole, then wrap it in a FigureWidget once).

    Args:
        view: what to show.
        max_side: draw the maps from at most this many pixels per axis (None: all).
        width: the width to lay out for (default ``DEFAULT_WIDTH``).
        fixed: give the figure that width; otherwise the front end sizes it.
    """
    parts = compare_parts(view, max_side)
    layout = compare_layout(len(parts) - 1, width)
    fig = place(
        parts,
        layout.boxes,
        layout.height,
        MARGIN,
        title=_title(view),
        width=layout.width if fixed else None,
    )
    fig.update_layout(barmode="group")
    return fig


def update_compare(
    fig: BaseFigure, view: CompareView, max_side: int | None = None, shown: list[Part] | None = None
) -> list[Part]:
    """Show ``view`` in a figure built by ``compare_figure`` for as many models, in place.

    Returns:
        The parts now shown (pass them as ``shown`` next time: only changes are sent).
    """
    parts = compare_parts(view, max_side)
    title = _title(view)
    layout: dict[str, Any] = {}
    if fig.layout.title.text != title["text"]:
        layout["title.text"] = title["text"]
    if fig.layout.title.font.color != title["font"]["color"]:
        layout["title.font.color"] = title["font"]["color"]
    apply(fig, parts, shown, layout)
    return parts


def relayout_compare(fig: BaseFigure, width: int) -> CompareLayout:
    """Lay a compare figure out again for ``width`` px (as the front end reports it)."""
    maps = sum(1 for t in fig.data if t.type == "image")
    layout = compare_layout(maps, width)
    relayout_boxes(fig, layout.boxes, layout.width, layout.height, MARGIN)
    return layout
