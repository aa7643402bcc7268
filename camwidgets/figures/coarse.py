"""The coarse map sum_k alpha_k A^k on the layer's own grid, before ReLU and resizing."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .grid import grid_part
from .part import Part, compose
from .scales import magnitude, positive_range

# Cell values are printed only while they stay legible (e.g. ResNet layer4 at 224: 7x7).
MAX_LABELLED_SIDE = 10


def coarse_part(coarse: np.ndarray, limit: float | None = None, scale: str = "") -> Part:
    """The signed coarse map cell by cell, red positive and blue negative, values on the cells.

    Args:
        coarse: the (h, w) map.
        limit: colours span -limit..limit (a shared range); None: the map's own largest |value|.
        scale: a word for the colour bar's title (e.g. "shared").
    """
    if coarse.ndim != 2:
        raise ValueError(f"coarse must be (h, w), got shape {coarse.shape}")
    height, width = coarse.shape
    span = positive_range(magnitude(coarse) if limit is None else float(limit))
    return grid_part(
        coarse,
        f"coarse Σ α<sub>k</sub>A<sup>k</sup> · {height}×{width}, signed",
        "Σ α·A",
        "RdBu_r",
        colorbar_title=f"Σ α·A · {scale}" if scale else "Σ α·A",
        zmin=-span,
        zmax=span,
        xgap=1,
        ygap=1,
        texttemplate="%{z:.2g}" if max(height, width) <= MAX_LABELLED_SIDE else "",
        textfont={"size": 11},
    )


def coarse_figure(coarse: np.ndarray) -> go.Figure:
    """A standalone figure of ``coarse_part``."""
    return compose([coarse_part(coarse)], top=1)
