"""Reading an audit back: the table, the maps, per-class summaries and the outliers.

Pure numpy/pyarrow (pandas on request); no plotting here (see :mod:`camwidgets.audit.report`).
The class-average map of class c is the mean of its images' maps, each ReLU'd and scaled to
sum 1 so that every image weighs the same:

    P_i = ReLU(coarse_i) / sum ReLU(coarse_i)          avg_c = mean_{i: target_i = c} P_i

and an image's distance to its class is the share of its map's mass that would have to move
to match the average (total variation, in [0, 1]):

    d_i = 0.5 * sum_ij |P_i - avg_c|
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .sources import IndexedSource, ScenesSource, Source
from .stats import ClassSummary, Regions, peaks
from .store import read_config, require_pyarrow

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Audit", "ClassSummary", "report_figures", "upsample", "write_report"]

_MEANS = ("in_mask", "hit_mask", "in_boxes", "hit_boxes", "correct")
"""Nullable columns averaged per class (booleans as rates)."""


def _mean_of(values: np.ndarray, rows: np.ndarray) -> float | None:
    """Mean of the non-NaN ``values`` on ``rows``; None when there are none."""
    picked = values[rows]
    picked = picked[~np.isnan(picked)]
    return float(picked.mean()) if picked.size else None


def upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D map with half-pixel centres (torch's ``align_corners=False``)."""
    h, w = grid.shape

    def axis(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, size - 1)
        return low, high, pos - low

    y0, y1, fy = axis(height, h)
    x0, x1, fx = axis(width, w)
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x1] * fx
    bottom = grid[y1][:, x0] * (1 - fx) + grid[y1][:, x1] * fx
    out: np.ndarray = top * (1 - fy)[:, None] + bottom * fy[:, None]
    return out


class Audit:
    """An audit folder, read back.

    Args:
        path: the folder ``audit(...)`` wrote.
        source: the data it was run on, to show the pictures (needed only for torch datasets
            and loaders; folders, path lists and zoo scenes are found again by themselves).

    Example:
        >>> from camwidgets.audit import Audit
        >>> result = Audit("audit.parquet")                # doctest: +SKIP
        >>> [(s.name, s.peak) for s in result.summary()]    # doctest: +SKIP
    """

    def __init__(self, path: str | Path, source: Source | None = None) -> None:
        require_pyarrow()
        self.path = Path(path)
        self.config: dict[str, Any] = read_config(self.path)
        self.source = source

    def __repr__(self) -> str:
        return (
            f"Audit({str(self.path)!r}: {len(self)} images, {self.config['model_name']} "
            f"{self.config['layer']} {self.config['method']}, target={self.config['target']!r})"
        )

    @property
    def classes(self) -> list[str]:
        """The model's class names."""
        return list(self.config["classes"])

    @property
    def regions(self) -> Regions:
        """The named fractional boxes of the ``regions`` column."""
        return tuple((str(n), (b[0], b[1], b[2], b[3])) for n, b in self.config["regions"])

    @cached_property
    def table(self) -> pa.Table:
        """Every row, ordered by index (then id): the same order whatever the backend."""
        import pyarrow.parquet as pq

        from .store import schema

        parts = sorted(self.path.glob("part-*.parquet"))
        if not parts:
            return schema().empty_table()
        table = pq.read_table(parts[0].parent, schema=schema())
        return table.sort_by([("index", "ascending"), ("id", "ascending")])

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def frame(self, maps: bool = False) -> pd.DataFrame:
        """The table as pandas (without the ``coarse`` maps unless ``maps``)."""
        try:
            import pandas  # noqa: F401
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError(
                'reading an audit as a table needs pandas: pip install "camwidgets[audit]"'
            ) from None
        table = self.table if maps else self.table.drop_columns(["coarse"])
        return table.to_pandas()

    @cached_property
    def coarse(self) -> np.ndarray:
        """The signed coarse maps, float32 (N, h, w)."""
        table = self.table
        if table.num_rows == 0:
            shape = self.config.get("layer_shape", [0, 0, 0])[1:]
            return np.zeros((0, *shape), dtype=np.float32)
        heights = table.column("coarse_h").to_numpy()
        widths = table.column("coarse_w").to_numpy()
        if len(set(heights)) > 1 or len(set(widths)) > 1:
            raise ValueError(
                "the audited maps have different sizes (inputs of different sizes); class "
                "averages need one input size: give the model a transform that resizes"
            )
        values = table.column("coarse").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        maps: np.ndarray = values.astype(np.float32)
        return maps.reshape(len(heights), int(heights[0]), int(widths[0]))

    @cached_property
    def maps(self) -> np.ndarray:
        """ReLU'd maps scaled to sum 1 (all-zero maps stay zero), (N, h, w)."""
        positive = np.maximum(self.coarse, 0.0)
        totals = positive.reshape(len(positive), -1).sum(axis=1)
        scale = np.where(totals > 0, totals, 1.0)
        out: np.ndarray = positive / scale[:, None, None]
        return out

    def _column(self, name: str) -> np.ndarray:
        """A column as a numpy array (nulls as NaN / None)."""
        values: np.ndarray = self.table.column(name).to_numpy(zero_copy_only=False)
        return values

    def summary(self) -> list[ClassSummary]:
        """One :class:`ClassSummary` per explained class, in class order."""
        return list(self._summaries)

    @cached_property
    def _summaries(self) -> tuple[ClassSummary, ...]:
        """The per-class summaries, computed once (an audit read back does not change)."""
        targets = self._column("target").astype(np.int64)
        maps = self.maps
        nonempty = maps.reshape(len(maps), -1).sum(axis=1) > 0
        regions = self._list_column("regions", len(self.regions))
        means = {name: self._nullable(name) for name in _MEANS}
        height, width = self._input_size()
        out = []
        for c in np.unique(targets).tolist():
            rows = targets == c
            good = rows & nonempty
            average = maps[good].mean(axis=0) if good.any() else np.zeros(maps.shape[1:])
            peak_row, peak_col = peaks(upsample(average, height, width)[None])
            averaged = {name: _mean_of(values, rows) for name, values in means.items()}
            out.append(
                ClassSummary(
                    index=int(c),
                    name=self.classes[int(c)],
                    count=int(rows.sum()),
                    empty=int((rows & ~nonempty).sum()),
                    average=average,
                    peak=(int(peak_row[0]), int(peak_col[0])),
                    regions=(
                        regions[good].mean(axis=0) if good.any() else np.zeros(len(self.regions))
                    ),
                    in_mask=averaged["in_mask"],
                    hit_mask=averaged["hit_mask"],
                    in_boxes=averaged["in_boxes"],
                    hit_boxes=averaged["hit_boxes"],
                    accuracy=averaged["correct"],
                )
            )
        return tuple(out)

    def _nullable(self, name: str) -> np.ndarray:
        """A nullable numeric or boolean column as float64, nulls as NaN."""
        column = self.table.column(name).combine_chunks()
        values = column.cast("float64").fill_null(float("nan"))
        array: np.ndarray = values.to_numpy(zero_copy_only=False)
        return array

    def _list_column(self, name: str, width: int) -> np.ndarray:
        """A nullable list column of fixed length as (N, width) float64, null rows as NaN."""
        column = self.table.column(name).combine_chunks()
        out = np.full((len(column), width), np.nan)
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        if valid.any():
            values = column.drop_null().flatten().to_numpy(zero_copy_only=False)
            out[valid] = values.astype(np.float64).reshape(int(valid.sum()), width)
        return out

    def _input_size(self) -> tuple[int, int]:
        """The model-input size of the rows (the first row's)."""
        if len(self) == 0:
            return (1, 1)
        return int(self.table.column("input_h")[0].as_py()), int(
            self.table.column("input_w")[0].as_py()
        )

    def distances(self) -> np.ndarray:
        """Each image's distance to its class average, in [0, 1]; NaN for all-zero maps."""
        targets = self._column("target").astype(np.int64)
        maps = self.maps
        out = np.full(len(maps), np.nan)
        for summary in self.summary():
            rows = (targets == summary.index) & (maps.reshape(len(maps), -1).sum(axis=1) > 0)
            if not rows.any():
                continue  # every map of this class is empty: nothing to compare
            diff = np.abs(maps[rows] - summary.average[None]).reshape(int(rows.sum()), -1)
            out[rows] = 0.5 * diff.sum(axis=1)
        return out

    def outliers(self, k: int = 12, per_class: bool = False) -> pd.DataFrame:
        """The ``k`` images whose maps are furthest from their class's (per class if asked)."""
        frame = self.frame()
        frame["distance"] = self.distances()
        frame = frame[frame["distance"].notna()].sort_values("distance", ascending=False)
        if per_class:
            return frame.groupby("target", sort=True).head(k)
        return frame.head(k)

    def figures(
        self,
        outliers: int = 12,
        classes: Sequence[int | str] | None = None,
        max_classes: int = 24,
    ) -> dict[str, Any]:
        """The report's plotly figures (see :func:`camwidgets.audit.report.build_figures`)."""
        from .report import build_figures

        return build_figures(self, outliers, classes, max_classes)

    def write_report(
        self,
        path: str | Path,
        title: str | None = None,
        outliers: int = 12,
        classes: Sequence[int | str] | None = None,
        max_classes: int = 24,
    ) -> Path:
        """A standalone HTML report (see :func:`camwidgets.audit.report.write_html`)."""
        from .report import write_html

        return write_html(self, path, title, outliers, classes, max_classes)

    def __getattr__(self, name: str) -> Any:
        if name == "gallery":
            # The audit never imports the widgets: the gallery composes the audit.
            raise AttributeError(
                "Audit has no gallery method: the gallery is a widget built on the audit, "
                "use `from camwidgets.widgets import Gallery; Gallery(audit)`"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def image(self, item_id: str) -> Any:
        """The picture behind ``item_id`` (anything the engine takes), from the source."""
        source = self.source if self.source is not None else self._reopen()
        if isinstance(source, IndexedSource):
            return source.load(source.index_of(item_id)).image
        if source is None and Path(item_id).is_file():
            return item_id
        raise ValueError(
            f"cannot find the picture of {item_id!r}: this audit's source "
            f"({self.config['source'].get('kind')}) cannot be reopened; pass source= to Audit"
        )

    def _reopen(self) -> Source | None:
        """The source again, from its stored description, when that is enough."""
        described = self.config.get("source", {})
        if described.get("kind") == "zoo-scenes":
            return ScenesSource(
                described["n"],
                described["seed"],
                described["mark"],
                described["objects"],
                described["size"],
            )
        return None


def report_figures(
    result: Audit | str | Path,
    outliers: int = 12,
    classes: Sequence[int | str] | None = None,
    max_classes: int = 24,
) -> dict[str, Any]:
    """The report's figures of an audit or the folder it was written to (see
    :func:`camwidgets.audit.report.build_figures`)."""
    audit = result if isinstance(result, Audit) else Audit(result)
    return audit.figures(outliers, classes, max_classes)


def write_report(
    result: Audit | str | Path,
    path: str | Path,
    title: str | None = None,
    outliers: int = 12,
    classes: Sequence[int | str] | None = None,
    max_classes: int = 24,
) -> Path:
    """Write the standalone HTML report of an audit or the folder it was written to (see
    :func:`camwidgets.audit.report.write_html`)."""
    audit = result if isinstance(result, Audit) else Audit(result)
    return audit.write_report(path, title, outliers, classes, max_classes)
