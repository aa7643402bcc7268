"""Figures of a dataset audit: class-average maps, region shares, mass on objects, outliers.

Pure functions of numpy arrays (no torch): :mod:`camwidgets.audit.report` gathers the data.
Maps are drawn at the layer's resolution, on axes in model-input pixels (cell centres), so a
peak marker given in input pixels lands where the upsampled map peaks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .png import png_data_uri

__all__ = [
    "class_average_figure",
    "inside_figure",
    "outlier_figure",
    "region_share_figure",
]


# Jet whose low end fades out, so a map drawn over a picture leaves the picture visible where
# the map is weak (a uniform opacity tints the whole picture blue).
FADING_JET = [
    [0.0, "rgba(0,0,131,0)"],
    [0.15, "rgba(0,60,170,0.35)"],
    [0.35, "rgba(5,255,255,0.6)"],
    [0.6, "rgba(255,255,0,0.75)"],
    [0.85, "rgba(250,0,0,0.85)"],
    [1.0, "rgba(128,0,0,0.9)"],
]


SHARE_BAR = {"title": {"text": "share of mass"}, "tickformat": ".0%", "len": 0.8}
"""Colour bar of the region shares: in percent, the unit of the numbers written in the cells."""


def _grid(count: int, max_cols: int) -> tuple[int, int]:
    """Rows and columns of a small-multiples grid for ``count`` panels."""
    cols = max(1, min(count, max_cols))
    return max(1, math.ceil(count / cols)), cols


def _centres(cells: int, pixels: int) -> np.ndarray:
    """Input-pixel coordinates of the centres of ``cells`` equal cells across ``pixels``."""
    return (np.arange(cells) + 0.5) * pixels / cells - 0.5


def _square_axes(fig: go.Figure, rows: int, cols: int, height: int, width: int) -> None:
    """Image-like axes on every subplot: y downwards, no ticks, equal scale."""
    for k in range(rows * cols):
        suffix = "" if k == 0 else str(k + 1)
        fig.layout[f"xaxis{suffix}"].update(
            range=[-0.5, width - 0.5], showticklabels=False, showgrid=False, zeroline=False
        )
        fig.layout[f"yaxis{suffix}"].update(
            range=[height - 0.5, -0.5],
            showticklabels=False,
            showgrid=False,
            zeroline=False,
            scaleanchor=f"x{suffix}",
        )


def class_average_figure(
    names: Sequence[str],
    averages: np.ndarray,
    peaks: Sequence[tuple[int, int]],
    input_size: tuple[int, int],
    counts: Sequence[int] | None = None,
    max_cols: int = 6,
) -> go.Figure:
    """Where the model looks for each class: the class-average maps, peak marked.

    Args:
        names: class names, one per map.
        averages: (C, h, w) average maps (each image's map scaled to sum 1 first).
        peaks: (row, col) of each average's peak in model-input pixels.
        input_size: model-input (H, W) the axes are drawn in.
        counts: images behind each average, shown in the titles.
        max_cols: panels per row.
    """
    averages = np.asarray(averages, dtype=np.float64)
    if averages.ndim != 3 or len(names) != averages.shape[0] or len(peaks) != len(names):
        raise ValueError("need one (h, w) average map and one peak per class name")
    height, width = input_size
    rows, cols = _grid(len(names), max_cols)
    titles = [f"{n} (n={counts[i]})" if counts is not None else n for i, n in enumerate(names)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles or None,
                        horizontal_spacing=0.02, vertical_spacing=0.08)  # fmt: skip
    top = float(averages.max(initial=0.0)) or 1.0
    for i, (average, (prow, pcol)) in enumerate(zip(averages, peaks, strict=True)):
        r, c = divmod(i, cols)
        fig.add_trace(
            go.Heatmap(
                z=average,
                x=_centres(average.shape[1], width),
                y=_centres(average.shape[0], height),
                zmin=0.0,
                zmax=top,
                colorscale="Jet",
                showscale=i == 0,
                colorbar={"title": {"text": "share"}, "len": 0.8},
                name=names[i],
                hovertemplate=(
                    "x=%{x:.0f}px y=%{y:.0f}px<br>share %{z:.4f}<extra>%{fullData.name}</extra>"
                ),
            ),
            row=r + 1,
            col=c + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=[pcol],
                y=[prow],
                mode="markers",
                marker={"symbol": "x", "size": 10, "color": "white", "line": {"width": 2}},
                name=f"{names[i]} peak",
                showlegend=False,
                hovertemplate=f"peak at x={pcol}px, y={prow}px<extra></extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
    _square_axes(fig, rows, cols, height, width)
    fig.update_layout(
        title="Class-average maps: where the model looks for each class (x: peak)",
        height=220 * rows + 90,
        autosize=True,  # the page's width: the report and notebooks set none
        margin={"l": 20, "r": 20, "t": 80, "b": 20},
    )
    return fig


def region_share_figure(
    names: Sequence[str],
    shares: np.ndarray,
    region_names: Sequence[str],
    grid: tuple[int, int] | None = None,
    max_cols: int = 6,
) -> go.Figure:
    """Mean share of each class's map mass per region.

    With ``grid=(rows, cols)`` (regions a row-major grid), one small grid per class, laid out
    like the image; otherwise one heat map of classes x regions.
    """
    shares = np.asarray(shares, dtype=np.float64)
    if shares.shape != (len(names), len(region_names)):
        raise ValueError(f"shares must be (classes, regions) = {(len(names), len(region_names))}")
    if grid is None:
        fig = go.Figure(
            go.Heatmap(
                z=shares,
                x=list(region_names),
                y=list(names),
                zmin=0.0,
                zmax=1.0,
                colorscale="Viridis",
                colorbar=SHARE_BAR,
                text=np.round(shares * 100).astype(int),
                texttemplate="%{text}%",
                hovertemplate="%{y} / %{x}: %{z:.1%}<extra></extra>",
            )
        )
        fig.update_layout(
            title="Share of the map's mass per region",
            yaxis={"autorange": "reversed"},
            height=120 + 28 * len(names),
            autosize=True,
        )
        return fig
    grows, gcols = grid
    if grows * gcols != len(region_names):
        raise ValueError(f"a {grows}x{gcols} grid needs {grows * gcols} regions")
    rows, cols = _grid(len(names), max_cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(names),
                        horizontal_spacing=0.02, vertical_spacing=0.1)  # fmt: skip
    for i, name in enumerate(names):
        r, c = divmod(i, cols)
        cells = shares[i].reshape(grows, gcols)
        fig.add_trace(
            go.Heatmap(
                z=cells,
                zmin=0.0,
                zmax=1.0,
                colorscale="Viridis",
                showscale=i == 0,
                colorbar=SHARE_BAR,
                text=np.round(cells * 100).astype(int),
                texttemplate="%{text}",
                name=name,
                hovertemplate="row %{y}, col %{x}: %{z:.1%}<extra>%{fullData.name}</extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
    _square_axes(fig, rows, cols, grows, gcols)
    fig.update_layout(
        title=f"Share of the map's mass on a {grows}x{gcols} grid (percent)",
        height=200 * rows + 90,
        autosize=True,  # the page's width: the report and notebooks set none
        margin={"l": 20, "r": 20, "t": 80, "b": 20},
    )
    return fig


def inside_figure(
    names: Sequence[str],
    measures: Mapping[str, Sequence[float | None]],
) -> go.Figure:
    """Per class, the mean share of mass inside the objects and the pointing-game hit rate.

    Args:
        names: class names.
        measures: label -> one value per class in [0, 1] (None where unknown), e.g.
            ``{"mass inside masks": [...], "pointing hits (masks)": [...]}``.
    """
    fig = go.Figure()
    for label, values in measures.items():
        if len(values) != len(names):
            raise ValueError(f"{label!r} has {len(values)} values for {len(names)} classes")
        if all(v is None for v in values):
            continue
        ys = [float("nan") if v is None else float(v) for v in values]
        fig.add_trace(
            go.Bar(
                x=list(names),
                y=ys,
                name=label,
                text=[f"{v:.0%}" if v == v else "" for v in ys],
                textposition="outside",
                hovertemplate="%{x}: %{y:.1%}<extra>" + label + "</extra>",
            )
        )
    fig.update_layout(
        title="On the objects? Share of map mass inside them, and pointing-game hits",
        barmode="group",
        yaxis={"range": [0, 1.1], "tickformat": ".0%"},
        height=380,
        autosize=True,
    )
    return fig


def outlier_figure(
    titles: Sequence[str],
    maps: np.ndarray,
    pictures: Sequence[np.ndarray | None] | None = None,
    max_cols: int = 6,
) -> go.Figure:
    """The images whose maps are furthest from their class average, map over the picture.

    Args:
        titles: one per image (id, class, distance).
        maps: (N, h, w) maps to draw (at the layer's resolution).
        pictures: uint8 (H, W, 3) picture per image, or None to draw the map alone.
        max_cols: panels per row.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or maps.shape[0] != len(titles):
        raise ValueError("need one (h, w) map per title")
    pictures = list(pictures) if pictures is not None else [None] * len(titles)
    rows, cols = _grid(max(len(titles), 1), max_cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) or None,
                        horizontal_spacing=0.02, vertical_spacing=0.1)  # fmt: skip
    size = (maps.shape[1], maps.shape[2])
    for i, (heat, picture) in enumerate(zip(maps, pictures, strict=True)):
        r, c = divmod(i, cols)
        height, width = picture.shape[:2] if picture is not None else heat.shape
        size = (height, width)
        if picture is not None:
            fig.add_trace(
                go.Image(source=png_data_uri(picture), hoverinfo="skip"), row=r + 1, col=c + 1
            )
        top = float(heat.max(initial=0.0)) or 1.0
        fig.add_trace(
            go.Heatmap(
                z=heat,
                x=_centres(heat.shape[1], width),
                y=_centres(heat.shape[0], height),
                zmin=0.0,
                zmax=top,
                zsmooth="best",
                colorscale=FADING_JET if picture is not None else "Jet",
                showscale=False,
                hovertemplate="x=%{x:.0f} y=%{y:.0f}: %{z:.3g}<extra></extra>",
            ),
            row=r + 1,
            col=c + 1,
        )
    _square_axes(fig, rows, cols, *size)
    fig.update_layout(
        title="Outliers: maps furthest from their class average",
        height=210 * rows + 90,
        autosize=True,  # the page's width: the report and notebooks set none
        margin={"l": 20, "r": 20, "t": 80, "b": 20},
        font={"size": 10},
    )
    return fig
