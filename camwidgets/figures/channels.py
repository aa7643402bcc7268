"""One channel k of the layer: its activation A^k and its contribution alpha_k A^k."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .grid import grid_part
from .part import Part, compose


def default_channel(weights: np.ndarray) -> int:
    """The channel shown before any click: the one with the largest alpha."""
    return int(np.argmax(weights))


def activation_part(activations: np.ndarray, channel: int) -> Part:
    """A^k on the layer's grid."""
    _check(activations, channel)
    return grid_part(activations[channel], f"activation A<sup>{channel}</sup>", "A", "Viridis")


def contribution_part(activations: np.ndarray, weights: np.ndarray, channel: int) -> Part:
    """alpha_k A^k: what channel k adds to the coarse map (same colours as the coarse map)."""
    _check(activations, channel)
    if weights.shape != activations.shape[:1]:
        raise ValueError(f"weights {weights.shape} do not match activations {activations.shape}")
    alpha = weights[channel]
    return grid_part(
        alpha * activations[channel],
        f"contribution α<sub>{channel}</sub>A<sup>{channel}</sup>, α = {alpha:.3g}",
        "α·A",
        "RdBu_r",
        zmid=0.0,
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
