"""The input picture with the Grad-CAM heat map drawn over it."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .grid import columns, positions
from .part import Part, compose
from .png import png_data_uri
from .scales import positive_range

COLORSCALES = ("Jet", "Turbo", "Viridis", "Inferno", "Hot", "Greys")


def guided_picture(guided: np.ndarray) -> np.ndarray:
    """A (3, H, W) guided gradient as an (H, W, 3) uint8 picture.

    The usual rendering (Springenberg et al.; pytorch-grad-cam's ``deprocess_image``): centre,
    scale to unit standard deviation, then 0.5 + 0.1 * g clipped to [0, 1], so grey is zero.
    """
    if guided.ndim != 3 or guided.shape[0] != 3:
        raise ValueError(f"guided must be (3, H, W), got shape {guided.shape}")
    g = guided.astype(np.float64)
    g = (g - g.mean()) / (g.std() + 1e-12)
    rgb = np.clip(0.5 + 0.1 * g, 0.0, 1.0).transpose(1, 2, 0)
    picture: np.ndarray = np.round(rgb * 255).astype(np.uint8)
    return picture


def overlay_part(
    picture: np.ndarray | str,
    heatmap: np.ndarray,
    opacity: float = 0.5,
    colorscale: str = "Jet",
    max_side: int | None = None,
    zmax: float | None = None,
    title: str | None = None,
    scale: str = "",
    guided: np.ndarray | None = None,
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
        zmax: the top of the colour range (a shared range); None: the map's own maximum.
        title: the subplot title (default: what the map is).
        scale: a word for the colour bar's title (e.g. "shared").
        guided: an (H, W, 3) uint8 Guided Grad-CAM picture to show instead of the picture
            under the heat map (the heat map is then hidden; hover still gives its values).
    """
    if heatmap.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got shape {heatmap.shape}")
    height, width = heatmap.shape
    if isinstance(picture, np.ndarray) and picture.shape[:2] != heatmap.shape:
        raise ValueError(f"picture {picture.shape[:2]} and heatmap {heatmap.shape} differ in size")
    if guided is not None:
        source = png_data_uri(guided)
    else:
        source = picture if isinstance(picture, str) else png_data_uri(picture)
    x, y, z = columns(heatmap, positions(height, max_side), positions(width, max_side))
    top = positive_range(float(heatmap.max(initial=0.0))) if zmax is None else float(zmax)
    if not top > 0.0:
        raise ValueError(f"zmax must be positive, got {zmax}")
    image = {"type": "image", "source": source, "hoverinfo": "skip"}
    heat = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": z,
        # The colour range is the only normalisation: hover keeps the raw values.
        "zmin": 0.0,
        "zmax": top,
        "zsmooth": "best",
        # Always present, so the trace keeps one set of keys across in-place updates.
        "opacity": float(opacity) if guided is None else 0.0,
        "colorscale": colorscale,
        "hovertemplate": "pixel x=%{x}, y=%{y}<br>heat %{z:.4g}<extra></extra>",
    }
    return Part(
        traces=[image, heat],
        xaxis={"range": [-0.5, width - 0.5], "showticklabels": False},
        yaxis={"range": [height - 0.5, -0.5], "showticklabels": False},
        title=title if title is not None else f"heat map · ReLU, resized to {height}×{width}",
        square=True,
        colorbar=1,
        colorbar_title=f"heat · {scale}" if scale else "heat",
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
