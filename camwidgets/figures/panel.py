"""The Explorer's whole view as one figure: overlay, coarse map, channel k, and the weights.

The layout follows the width the figure is drawn at: four maps in a row on wide screens, two
rows of two below ``WRAP_BELOW`` pixels, each map square with its titled colour bar beside it,
and the height chosen so nothing is squeezed or cut off. ``panel_layout`` gives the layout for
a width; a widget that learns its width from the front end re-lays itself out with it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import BaseFigure

from .channels import activation_part, contribution_part, default_channel
from .coarse import coarse_part
from .overlay import overlay_part
from .part import (
    COUNTERFACTUAL_COLOR,
    NORMAL_COLOR,
    Box,
    Part,
    apply,
    figure_title,
    place,
    relayout_boxes,
)
from .scales import emptiness, magnitude, peak
from .weights import weights_part

DEFAULT_WIDTH = 1200  # for a figure drawn before (or without) a front end reporting its width
WRAP_BELOW = 1100  # narrower than this: the four maps go in two rows of two
MARGIN = {"l": 56, "r": 24, "t": 40, "b": 40}
NORMAL_PAPER, COUNTERFACTUAL_PAPER = "#ffffff", "#eef4fb"
WARNING_COLOR = "#b00020"


class TraceRole(IntEnum):
    """What each trace of a panel figure shows; the value is its index in ``fig.data``.

    The figure builder owns the order: ``panel_parts`` checks that the parts give the traces in
    this order, and every trace carries its role's name as its plotly ``name`` (front-end code
    and browser tests find traces by name, never by position).
    """

    PICTURE = 0
    HEATMAP = 1
    COARSE = 2
    ACTIVATION = 3
    CONTRIBUTION = 4
    BARS = 5

    @property
    def label(self) -> str:
        """The trace's plotly ``name``: the role in lower case (``"heatmap"``)."""
        return self.name.lower()


# The roles of each part's traces, in figure order.
_LAYOUT: tuple[tuple[TraceRole, ...], ...] = (
    (TraceRole.PICTURE, TraceRole.HEATMAP),
    (TraceRole.COARSE,),
    (TraceRole.ACTIVATION,),
    (TraceRole.CONTRIBUTION,),
    (TraceRole.BARS,),
)


@dataclass(frozen=True)
class PanelView:
    """What the panel draws, as numpy arrays and words (the widget converts the engine's tensors).

    Attributes:
        picture: (H, W, 3) uint8 pixels aligned with the heat map, or their PNG data URI.
        heatmap: (H, W) ReLU'd, resized map.
        coarse: (h, w) signed map sum_k alpha_k A^k.
        weights: (K,) alpha.
        activations: (K, h, w) the layer output A.
        channel: the channel shown on its own; None: the one with the largest alpha.
        top: how many bars the weights chart shows.
        opacity: of the heat map over the picture.
        colorscale: of the heat map.
        caption: the figure's title: what is explained (class, prediction, layer, method).
        counterfactual: whether the maps are the counterfactual's (titles and colours say so).
        heat_max: top of the heat map's colour range when shared; None: its own maximum.
        coarse_max: the coarse map's colour range (+-) when shared; None: its own.
        contribution_max: alpha_k A^k's colour range (+-) when shared; None: its own.
        hint: words after the bar chart's title (e.g. "click a bar"); "" in exports.
        names: one name per channel ("" for unnamed) when channel names are shown.
        guided: (H, W, 3) uint8 Guided Grad-CAM picture, shown in place of the overlay.
    """

    picture: np.ndarray | str
    heatmap: np.ndarray
    coarse: np.ndarray
    weights: np.ndarray
    activations: np.ndarray
    channel: int | None = None
    top: int = 20
    opacity: float = 0.5
    colorscale: str = "Jet"
    caption: str = ""
    counterfactual: bool = False
    heat_max: float | None = None
    coarse_max: float | None = None
    contribution_max: float | None = None
    hint: str = ""
    names: tuple[str, ...] | None = None
    guided: np.ndarray | None = None

    @property
    def shown_channel(self) -> int:
        """The channel actually drawn."""
        return default_channel(self.weights) if self.channel is None else self.channel

    @property
    def shared(self) -> bool:
        """Whether the maps use shared colour ranges."""
        return self.heat_max is not None

    @property
    def heat_note(self) -> str | None:
        """Words for an empty or near-empty heat map (None when it is not)."""
        if self.shared:
            assert self.heat_max is not None
            return emptiness(peak(self.heatmap), self.heat_max, "the shared range")
        return emptiness(peak(self.heatmap), magnitude(self.coarse), "the signed map's |max|")

    @classmethod
    def blank(cls) -> PanelView:
        """A placeholder (one black pixel, one channel) before any image is explained."""
        return cls(
            picture=np.zeros((1, 1, 3), np.uint8),
            heatmap=np.zeros((1, 1), np.float32),
            coarse=np.zeros((1, 1), np.float32),
            weights=np.zeros(1, np.float32),
            activations=np.zeros((1, 1, 1), np.float32),
            caption="Loading: computing the first explanation…",
        )


def panel_parts(view: PanelView, max_side: int | None = None) -> list[Part]:
    """The five parts, in figure order (``TraceRole`` names their traces)."""
    channel = view.shown_channel
    scale = "shared" if view.shared else ""
    height, width = view.heatmap.shape
    mode = "counterfactual " if view.counterfactual else ""
    color = COUNTERFACTUAL_COLOR if view.counterfactual else NORMAL_COLOR
    if view.guided is not None:
        title = (
            f"<span style='color:{color}'>{mode}Guided Grad-CAM</span> · "
            f"guided backprop × heat map, {height}×{width}"
        )
    else:
        title = f"<span style='color:{color}'>{mode}heat map</span> · ReLU, {height}×{width}"
    note = view.heat_note
    if note is not None:
        title += f"<br><span style='color:{WARNING_COLOR}'>{note}</span>"
    name = view.names[channel] if view.names is not None else ""
    parts = [
        overlay_part(
            view.picture,
            view.heatmap,
            view.opacity,
            view.colorscale,
            max_side,
            zmax=view.heat_max,
            title=title,
            scale=scale,
            guided=view.guided,
        ),
        coarse_part(view.coarse, view.coarse_max, scale),
        activation_part(view.activations, channel, name),
        contribution_part(view.activations, view.weights, channel, view.contribution_max, scale),
        weights_part(view.weights, view.top, channel, view.hint, view.names),
    ]
    return [_named(part, roles) for part, roles in zip(parts, _LAYOUT, strict=True)]


def _named(part: Part, roles: tuple[TraceRole, ...]) -> Part:
    """``part`` with each trace named after its role (and its trace count checked)."""
    if len(part.traces) != len(roles):
        raise ValueError(f"a part gave {len(part.traces)} traces for roles {roles}")
    traces = [{**t, "name": r.label} for t, r in zip(part.traces, roles, strict=True)]
    return replace(part, traces=traces)


@dataclass(frozen=True)
class PanelLayout:
    """Where the five parts go at a given width: boxes (paper fractions) and the height."""

    width: int
    height: int
    columns: int
    boxes: tuple[Box, ...]


def panel_layout(width: int | None = None) -> PanelLayout:
    """Square maps, each with room for its colour bar, then the bar chart, at ``width`` px.

    Four maps in a row from ``WRAP_BELOW`` px, else two rows of two; maps are as large as the
    width allows (120 to 420 px a side) and the height follows, so nothing is squeezed.
    """
    width = max(int(width or DEFAULT_WIDTH), 480)
    columns = 4 if width >= WRAP_BELOW else 2
    rows = 4 // columns
    inner = width - MARGIN["l"] - MARGIN["r"]
    # Right of each map: its colour bar, ticks and title; between maps; above each (its title,
    # two lines); below each (its x tick labels).
    bar_room, gap, title_room, tick_room = 84, 24, 44, 22
    side = (inner - columns * bar_room - (columns - 1) * gap) / columns
    side = float(min(max(side, 120.0), 420.0))
    used = columns * (side + bar_room) + (columns - 1) * gap
    left = max(0.0, (inner - used) / 2)
    bars_height, bars_ticks = 220, 28
    row = title_room + side + tick_room
    plot = rows * row + title_room + bars_height + bars_ticks
    height = round(plot + MARGIN["t"] + MARGIN["b"])
    boxes: list[Box] = []
    for index in range(4):
        line, col = divmod(index, columns)
        x0 = left + col * (side + bar_room + gap)
        top = line * row + title_room
        boxes.append(Box(x0 / inner, (x0 + side) / inner, 1 - (top + side) / plot, 1 - top / plot))
    bars_top = rows * row + title_room
    boxes.append(Box(0.0, 1.0, 1 - (bars_top + bars_height) / plot, 1 - bars_top / plot))
    return PanelLayout(width, height, columns, tuple(boxes))


def _title(view: PanelView) -> dict[str, Any]:
    return figure_title(view.caption, view.counterfactual)


def panel_figure(
    view: PanelView, max_side: int | None = None, width: int | None = None, fixed: bool = False
) -> go.Figure:
    """Overlay, coarse map, A^k and alpha_k A^k, each with its colour bar; the weights below.

    ``TraceRole`` names each trace's place in ``fig.data``.

    Args:
        view: what to show.
        max_side: draw the heat map over the picture from at most this many pixels per axis.
        width: the width to lay out for (default ``DEFAULT_WIDTH``).
        fixed: give the figure that width; otherwise the front end sizes it to its container
            and the widget lays it out again for the width it reports.
    """
    layout = panel_layout(width)
    fig = place(
        panel_parts(view, max_side),
        layout.boxes,
        layout.height,
        MARGIN,
        title=_title(view),
        width=layout.width if fixed else None,
    )
    fig.update_layout(paper_bgcolor=_paper(view))
    return fig


def _paper(view: PanelView) -> str:
    return COUNTERFACTUAL_PAPER if view.counterfactual else NORMAL_PAPER


def update_panel(
    fig: BaseFigure, view: PanelView, max_side: int | None = None, shown: list[Part] | None = None
) -> list[Part]:
    """Show ``view`` in a figure built by ``panel_figure``, in place, in one message.

    Args:
        fig: the figure (or FigureWidget) to update.
        view: what to show.
        max_side: as for ``panel_figure``.
        shown: the parts returned by the previous call (or ``panel_parts`` of the view the
            figure was built from); only what differs from them is sent.

    Returns:
        The parts now shown, for the next call's ``shown``.
    """
    parts = panel_parts(view, max_side)
    title = _title(view)
    layout: dict[str, Any] = {}
    if fig.layout.title.text != title["text"]:
        layout["title.text"] = title["text"]
    if fig.layout.title.font.color != title["font"]["color"]:
        layout["title.font.color"] = title["font"]["color"]
    if fig.layout.paper_bgcolor != _paper(view):
        layout["paper_bgcolor"] = _paper(view)
    apply(fig, parts, shown, layout)
    return parts


def relayout_panel(fig: BaseFigure, width: int) -> PanelLayout:
    """Lay a panel figure out again for ``width`` px (front end reported), in one message."""
    layout = panel_layout(width)
    relayout_boxes(fig, layout.boxes, layout.width, layout.height, MARGIN)
    return layout
