"""One channel k of the layer: its activation A^k and its contribution alpha_k A^k."""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from .grid import grid_part
from .part import Part, compose
from .scales import magnitude, positive_range


def default_channel(weights: np.ndarray) -> int:
    """The channel shown before any click: the one with the largest alpha."""
    return int(np.argmax(weights))


def activation_part(activations: np.ndarray, channel: int, name: str = "") -> Part:
    """A^k on the layer's grid (``name``: what the channel detects, if known)."""
    _check(activations, channel)
    named = f" · <i>{html.escape(name)}</i>" if name else ""
    return grid_part(
        activations[channel], f"activation A<sup>{channel}</sup>{named}", "A", "Viridis"
    )


def contribution_part(
    activations: np.ndarray,
    weights: np.ndarray,
    channel: int,
    limit: float | None = None,
    scale: str = "",
) -> Part:
    """alpha_k A^k: what channel k adds to the coarse map (same colours as the coarse map).

    Args:
        limit: colours span -limit..limit (a shared range); None: the map's own largest |value|.
        scale: a word for the colour bar's title (e.g. "shared").
    """
    _check(activations, channel)
    if weights.shape != activations.shape[:1]:
        raise ValueError(f"weights {weights.shape} do not match activations {activations.shape}")
    alpha = weights[channel]
    values = alpha * activations[channel]
    span = positive_range(magnitude(values) if limit is None else float(limit))
    return grid_part(
        values,
        f"contribution α<sub>{channel}</sub>A<sup>{channel}</sup> · α = {alpha:.3g}",
        "α·A",
        "RdBu_r",
        colorbar_title=f"α·A · {scale}" if scale else "α·A",
        zmin=-span,
        zmax=span,
    )


def channel_figure(activations: np.ndarray, weights: np.ndarray, channel: int) -> go.Figure:
    """A^k and alpha_k A^k side by side."""
    parts = [
        activation_part(activations, channel),
        contribution_part(activations, weights, channel),
    ]
    return compose(parts, top=2, height=360)


def _check(activations: np.ndarray, channel: int) -> tuple[int, int]:
    """Validate (K, h, w) activations and a channel index; return (h, w)."""
    if activations.ndim != 3:
        raise ValueError(f"activations must be (K, h, w), got shape {activations.shape}")
    if not 0 <= channel < activations.shape[0]:
        raise ValueError(f"channel {channel} is out of range 0..{activations.shape[0] - 1}")
    return int(activations.shape[1]), int(activations.shape[2])
