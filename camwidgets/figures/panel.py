"""The Explorer's whole view as one figure: overlay, coarse map, channel k, and the weights."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import BaseFigure

from .channels import activation_part, contribution_part, default_channel
from .coarse import coarse_part
from .overlay import overlay_part
from .part import Part, apply, compose
from .weights import weights_part

HEIGHT = 660
# A fixed width: JupyterLab leaves a FigureWidget at plotly's 700 px default, where the four
# subplot titles of the top row run into each other (Voila stretches it to the page).
WIDTH = 1100


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
    """What the panel draws, as numpy arrays (the widget converts the engine's tensors).

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

    @property
    def shown_channel(self) -> int:
        """The channel actually drawn."""
        return default_channel(self.weights) if self.channel is None else self.channel

    @classmethod
    def blank(cls) -> PanelView:
        """A placeholder (one black pixel, one channel) before any image is explained."""
        return cls(
            picture=np.zeros((1, 1, 3), np.uint8),
            heatmap=np.zeros((1, 1), np.float32),
            coarse=np.zeros((1, 1), np.float32),
            weights=np.zeros(1, np.float32),
            activations=np.zeros((1, 1, 1), np.float32),
        )


def panel_parts(view: PanelView, max_side: int | None = None) -> list[Part]:
    """The five parts, in figure order (see ``panel_figure``)."""
    channel = view.shown_channel
    parts = [
        overlay_part(view.picture, view.heatmap, view.opacity, view.colorscale, max_side),
        coarse_part(view.coarse),
        activation_part(view.activations, channel),
        contribution_part(view.activations, view.weights, channel),
        weights_part(view.weights, view.top, channel),
    ]
    return [_named(part, roles) for part, roles in zip(parts, _LAYOUT, strict=True)]


def _named(part: Part, roles: tuple[TraceRole, ...]) -> Part:
    """``part`` with each trace named after its role (and its trace count checked)."""
    if len(part.traces) != len(roles):
        raise ValueError(f"a part gave {len(part.traces)} traces for roles {roles}")
    traces = [{**t, "name": r.label} for t, r in zip(part.traces, roles, strict=True)]
    return replace(part, traces=traces)


def panel_figure(view: PanelView, max_side: int | None = None) -> go.Figure:
    """Overlay, coarse map, A^k and alpha_k A^k in a row; the weights bar chart below.

    ``TraceRole`` names each trace's place in ``fig.data``.
    """
    fig = compose(panel_parts(view, max_side), top=4, height=HEIGHT)
    fig.update_layout(width=WIDTH)
    return fig


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
    apply(fig, parts, shown)
    return parts
