"""The input picture with the Grad-CAM heat map drawn over it."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .grid import columns, positions
from .part import Part, compose
from .png import png_data_uri

COLORSCALES = ("Jet", "Turbo", "Viridis", "Inferno", "Hot", "Greys")


def overlay_part(
    picture: np.ndarray | str,
    heatmap: np.ndarray,
    opacity: float = 0.5,
    colorscale: str = "Jet",
    max_side: int | None = None,
) -> Part:
    """The picture under a semi-transparent heat map; hovering shows the map's value.

    Args:
        picture: (H, W, 3) uint8 pixels aligned with ``heatmap``, or their PNG data URI.
        heatmap: (H, W) map at the model-input size, as the engine returns it.
        opacity: of the heat map, 0..1.
        colorscale: a plotly colour-scale name.
        max_side: draw the map from at most this many pixels per axis (None: every pixel).
            The values at the drawn pixels are the map's own; plotly.js interpolates between
            them (``zsmooth="best"``), which for a bilinearly resized coarse map is close to
            exact. This keeps widget updates small (see ``camwidgets.widgets.panel``).
    """
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {heatmap.shape}")
    height, width = heatmap.shape
    if isinstance(picture, np.ndarray) and picture.shape[:2] != heatmap.shape:
        raise ValueError(f"picture {picture.shape[:2]} and heatmap {heatmap.shape} differ in size")
    source = picture if isinstance(picture, str) else png_data_uri(picture)
    x, y, z = columns(heatmap, positions(height, max_side), positions(width, max_side))
    top = float(z.max(initial=0.0))
    image = {"type": "image", "source": source, "hoverinfo": "skip"}
    heat = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": z,
        # The colour range is the only normalisation: hover keeps the raw values.
        "zmin": 0.0,
        "zmax": top if top > 0 else 1.0,
        "zsmooth": "best",
        "opacity": float(opacity),
        "colorscale": colorscale,
        "hovertemplate": "pixel x=%{x}, y=%{y}<br>heat %{z:.4g}<extra></extra>",
    }
    return Part(
        traces=[image, heat],
        xaxis={"range": [-0.5, width - 0.5], "showticklabels": False},
        yaxis={"range": [height - 0.5, -0.5], "showticklabels": False},
        title=f"heat map: ReLU, resized to {height}×{width}",
        square=True,
        colorbar=1,
    )


def overlay_figure(
    picture: np.ndarray | str,
    heatmap: np.ndarray,
    opacity: float = 0.5,
    colorscale: str = "Jet",
    max_side: int | None = None,
) -> go.Figure:
    """A standalone figure of ``overlay_part`` (same arguments)."""
    return compose([overlay_part(picture, heatmap, opacity, colorscale, max_side)], top=1)
