"""Maps as (x, y, z) columns: the form in which plotly sends a heat map as binary.

plotly's FigureWidget serialiser turns a 2-D numpy array into a nested JSON list (a 224x224
float map is about 1 MB of text) but sends a 1-D numeric array (except int64) as a binary buffer.
A heat map given as three 1-D columns (x, y, z of every cell) is drawn the same by plotly.js, so
the values travel as float32 binary, and x, y, which depend only on the grid, are sent again only
when the grid changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .part import Part


def positions(size: int, max_count: int | None = None) -> np.ndarray:
    """Evenly spread integer positions in ``0..size-1``: all of them, or at most ``max_count``.

    Args:
        size: the number of pixels (or cells) along the axis.
        max_count: keep at most this many positions (both ends included); None keeps all.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if max_count is not None and max_count < 2:
        raise ValueError(f"max_count must be at least 2, got {max_count}")
    if max_count is None or size <= max_count:
        return np.arange(size)
    return np.unique(np.round(np.linspace(0, size - 1, max_count)).astype(np.int64))


def columns(
    values: np.ndarray, rows: np.ndarray | None = None, cols: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (x, y, z) columns of ``values`` sampled at ``rows`` x ``cols`` (default: every cell).

    Values are copied exactly (as float32, the engine's dtype); only the sampling is chosen.
    Coordinates use the smallest unsigned dtype that holds them, to keep messages small.
    """
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {values.shape}")
    rows = np.arange(values.shape[0]) if rows is None else rows
    cols = np.arange(values.shape[1]) if cols is None else cols
    dtype = np.uint8 if max(values.shape) <= 256 else np.uint16
    y, x = np.meshgrid(rows.astype(dtype), cols.astype(dtype), indexing="ij")
    z = np.ascontiguousarray(values[np.ix_(rows, cols)], dtype=np.float32)
    return x.ravel(), y.ravel(), z.ravel()


def to_grid(
    x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Undo ``columns``: the row positions, the column positions and the 2-D values."""
    rows, r = np.unique(np.asarray(y), return_inverse=True)
    cols, c = np.unique(np.asarray(x), return_inverse=True)
    grid = np.full((rows.size, cols.size), np.nan, dtype=np.asarray(z).dtype)
    grid[r, c] = z
    return rows, cols, grid


def grid_part(
    values: np.ndarray,
    title: str,
    hover: str,
    colorscale: str,
    colorbar_title: str = "",
    **trace: Any,
) -> Part:
    """A map drawn cell by cell on its own (h, w) grid, row 0 at the top, exact hover values.

    Args:
        values: the (h, w) map.
        title: the subplot title.
        hover: what a cell's value is called in the hover label (e.g. "A").
        colorscale: plotly colour scale name.
        colorbar_title: what the colour bar measures (default: ``hover``).
        **trace: further heatmap properties (``zmid=0.0`` for signed maps, cell labels, gaps).
    """
    height, width = values.shape
    x, y, z = columns(values)
    heatmap = {
        "type": "heatmap",
        "x": x,
        "y": y,
        "z": z,
        "colorscale": colorscale,
        **trace,
        "hovertemplate": f"row %{{y}}, col %{{x}}<br>{hover} = %{{z:.4g}}<extra></extra>",
    }
    return Part(
        traces=[heatmap],
        xaxis={"range": [-0.5, width - 0.5]},
        yaxis={"range": [height - 0.5, -0.5]},
        title=title,
        square=True,
        colorbar=0,
        colorbar_title=colorbar_title or hover,
    )
