"""The audit report: plotly figures for a notebook, and one standalone HTML page.

Data come from :class:`~camwidgets.audit.results.Audit`; drawing is done by the torch-free
builders in :mod:`camwidgets.figures.audit`, imported here on use so that
``import camwidgets.audit`` never loads plotly.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .stats import ClassSummary, Regions, grid_regions

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go
    import pyarrow as pa

__all__ = ["AuditData", "build_figures", "grid_shape", "picture", "write_html"]


class AuditData(Protocol):
    """What the report reads of an audit (``camwidgets.audit.Audit`` has it); a protocol, so
    that the report composes the results without the results importing it back."""

    path: Path
    config: dict[str, Any]

    @property
    def table(self) -> pa.Table:
        """Every row."""
        ...

    @property
    def coarse(self) -> np.ndarray:
        """The signed coarse maps, (N, h, w)."""
        ...

    @property
    def regions(self) -> Regions:
        """The named fractional boxes of the region shares."""
        ...

    def __len__(self) -> int: ...

    def summary(self) -> list[ClassSummary]:
        """One summary per explained class."""
        ...

    def outliers(self, k: int = 12, per_class: bool = False) -> pd.DataFrame:
        """The ``k`` images furthest from their class's average."""
        ...

    def image(self, item_id: str) -> Any:
        """The picture behind ``item_id``."""
        ...


def grid_shape(regions: Regions) -> tuple[int, int] | None:
    """(rows, cols) when ``regions`` are exactly ``grid_regions(rows, cols)``, else None."""
    count = len(regions)
    for rows in range(1, count + 1):
        if count % rows == 0 and grid_regions(rows, count // rows) == tuple(
            (n, tuple(float(v) for v in b)) for n, b in regions
        ):
            return rows, count // rows
    return None


def picture(image: Any, size: tuple[int, int]) -> np.ndarray:
    """An image the engine takes -> uint8 (H, W, 3) at the model-input ``size``, for display."""
    import torch
    from PIL import Image

    from camwidgets.engine.inputs import to_pil

    if isinstance(image, torch.Tensor):
        # Preprocessed: its normalisation is unknown here, so stretch it to the full range.
        pixels = image.detach().float().cpu()
        pixels = pixels[0] if pixels.dim() == 4 else pixels
        pixels = pixels[:3] if pixels.shape[0] >= 3 else pixels[:1].expand(3, -1, -1)
        low, high = float(pixels.min()), float(pixels.max())
        scaled = (pixels - low) / max(high - low, 1e-12)
        array = (scaled.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        pil = Image.fromarray(array)
    else:
        pil = to_pil(image)
    resized = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _inside_measures(summaries: list[ClassSummary]) -> dict[str, list[float | None]]:
    """The per-class object measures that some image had data for."""
    measures = {
        "mass inside masks": [s.in_mask for s in summaries],
        "pointing hits (masks)": [s.hit_mask for s in summaries],
        "mass inside boxes": [s.in_boxes for s in summaries],
        "pointing hits (boxes)": [s.hit_boxes for s in summaries],
    }
    return {k: v for k, v in measures.items() if any(x is not None for x in v)}


def build_figures(
    result: AuditData,
    outliers: int = 12,
    classes: Sequence[int | str] | None = None,
    max_classes: int = 24,
) -> dict[str, go.Figure]:
    """The report's figures: ``averages``, ``regions``, ``inside`` (with masks/boxes), ``outliers``.

    Args:
        result: an audit (``camwidgets.audit.Audit``).
        outliers: how many outlier images to show.
        classes: the classes to draw (indices or names); default: all, or the ``max_classes``
            most frequent when there are more (a 1000-class audit would draw 1000 panels).
        max_classes: the most classes drawn when ``classes`` is not given.
    """
    from camwidgets.figures.audit import (
        class_average_figure,
        inside_figure,
        outlier_figure,
        region_share_figure,
    )

    summaries = _chosen(result.summary(), classes, max_classes)
    if not summaries:
        raise ValueError(f"the audit at {str(result.path)!r} has no rows yet")
    names = [s.name for s in summaries]
    size = (
        int(result.table.column("input_h")[0].as_py()),
        int(result.table.column("input_w")[0].as_py()),
    )
    figures: dict[str, go.Figure] = {
        "averages": class_average_figure(
            names,
            np.stack([s.average for s in summaries]),
            [s.peak for s in summaries],
            size,
            [s.count for s in summaries],
        ),
        "regions": region_share_figure(
            names,
            np.stack([s.regions for s in summaries]),
            [n for n, _ in result.regions],
            grid_shape(result.regions),
        ),
    }
    measures = _inside_measures(summaries)
    if measures:
        figures["inside"] = inside_figure(names, measures)
    worst = result.outliers(outliers)
    if len(worst):
        positions = worst.index.to_numpy()
        pictures: list[np.ndarray | None] = []
        for item_id in worst["id"]:
            try:
                pictures.append(picture(result.image(str(item_id)), size))
            except (ValueError, KeyError, OSError):
                pictures.append(None)
        titles = [
            f"{_short(str(i))}: {t} d={d:.2f}"
            for i, t, d in zip(worst["id"], worst["target_name"], worst["distance"], strict=True)
        ]
        figures["outliers"] = outlier_figure(
            titles, np.maximum(result.coarse[positions], 0.0), pictures
        )
    return figures


def _chosen(
    summaries: list[ClassSummary], classes: Sequence[int | str] | None, max_classes: int
) -> list[ClassSummary]:
    """The summaries to draw: the asked classes, else the most frequent ones, in class order."""
    if classes is not None:
        wanted = {str(c) for c in classes}
        known = {s.name for s in summaries} | {str(s.index) for s in summaries}
        missing = sorted(wanted - known)
        if missing:
            raise ValueError(f"classes not in this audit's explained targets: {missing}")
        return [s for s in summaries if s.name in wanted or str(s.index) in wanted]
    if not isinstance(max_classes, int) or max_classes < 1:
        raise ValueError(f"max_classes must be a positive int, got {max_classes!r}")
    if len(summaries) <= max_classes:
        return summaries
    frequent = sorted(summaries, key=lambda s: (-s.count, s.index))[:max_classes]
    return sorted(frequent, key=lambda s: s.index)


def _short(text: str, limit: int = 18) -> str:
    """A long id (a path) cut to its end."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _fmt(value: float | None, percent: bool = True) -> str:
    """A table cell."""
    if value is None:
        return "–"
    return f"{value:.1%}" if percent else f"{value:.3g}"


def write_html(
    result: AuditData,
    path: str | Path,
    title: str | None = None,
    outliers: int = 12,
    classes: Sequence[int | str] | None = None,
    max_classes: int = 24,
) -> Path:
    """Write a standalone HTML report (plotly.js inlined: it opens offline).

    Args:
        result: an audit (``camwidgets.audit.Audit``).
        path: the HTML file to write.
        title: page title (default: model, layer and method).
        outliers: how many outlier images to show.
        classes, max_classes: which classes the figures draw (see ``build_figures``); the
            table lists every class.
    """
    figures = build_figures(result, outliers, classes, max_classes)
    config = result.config
    title = title or (
        f"Grad-CAM audit: {config['model_name']}, {config['layer']}, {config['method']}"
    )
    summaries = result.summary()
    rows = "\n".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(c))}</td>"
            for c in (
                s.name,
                s.count,
                s.empty,
                _fmt(s.accuracy),
                f"({s.peak[1]}, {s.peak[0]})",
                _fmt(s.in_mask),
                _fmt(s.hit_mask),
                _fmt(s.in_boxes),
                _fmt(s.hit_boxes),
            )
        )
        + "</tr>"
        for s in summaries
    )
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "class",
            "images",
            "empty maps",
            "top-1 = label",
            "average's peak (x, y) px",
            "mass in masks",
            "hits (masks)",
            "mass in boxes",
            "hits (boxes)",
        )
    )
    settings = (
        f"{len(result)} images; target {config['target']!r}; layer {config['layer']} "
        f"{tuple(config['layer_shape'])}; method {config['method']}"
        f"{' (counterfactual)' if config['counterfactual'] else ''}; "
        f"source {config['source'].get('kind')}; backend {config['backend']}"
    )
    parts = [
        fig.to_html(
            full_html=False,
            include_plotlyjs=i == 0,
            div_id=f"audit-{name}",
            # The page's width, also after a resize (the figures set no width of their own).
            config={"responsive": True},
            default_width="100%",
        )
        for i, (name, fig) in enumerate(figures.items())
    ]
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(settings)}</p>
<p>Each image's map is ReLU'd and scaled to sum 1; a class's average map is the mean over the
images explained as that class. Outliers are the images whose maps differ most from their class
average (d = half the L1 distance: the share of mass that would have to move).</p>
<table><tr>{header}</tr>
{rows}
</table>
{"".join(parts)}
</body></html>
"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
