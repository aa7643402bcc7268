"""Dataset-scale Grad-CAM: where does the model look, class by class, over a whole dataset?

``audit(data, model, out)`` explains every image (locally in batches, or on Ray Data with
``backend="ray"``) and writes one Parquet row per image as it goes; ``Audit(out)`` reads it
back with per-class average maps and outliers; ``write_report`` makes a standalone HTML page.

>>> from camwidgets.audit import audit
>>> result = audit("zoo:scenes:200:mark=correct", "zoo:shortcut", "audit.parquet")  # doctest: +SKIP
>>> [(s.name, s.peak) for s in result.summary()]                                 # doctest: +SKIP

Nothing here imports plotly or ipywidgets at module level: figures and the gallery load on use.
"""

from __future__ import annotations

from .compute import Settings
from .results import Audit, ClassSummary
from .run import EngineSpec, audit
from .sources import (
    DatasetSource,
    FolderSource,
    Item,
    LoaderSource,
    PathsSource,
    RayDatasetSource,
    ScenesSource,
    as_source,
)
from .stats import grid_regions, regions_from

__all__ = [
    "Audit",
    "ClassSummary",
    "DatasetSource",
    "EngineSpec",
    "FolderSource",
    "Item",
    "LoaderSource",
    "PathsSource",
    "RayDatasetSource",
    "ScenesSource",
    "Settings",
    "as_source",
    "audit",
    "grid_regions",
    "regions_from",
    "report_figures",
    "write_report",
]


def __getattr__(name: str) -> object:
    # The report needs plotly: import it only when asked for.
    if name in ("report_figures", "write_report"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module 'camwidgets.audit' has no attribute {name!r}")
