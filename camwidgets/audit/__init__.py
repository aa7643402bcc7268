"""Dataset-scale Grad-CAM: where does the model look, class by class, over a whole dataset?

``audit(data, model, out)`` explains every image (locally in batches, or on Ray Data with
``backend="ray"``) and writes one Parquet row per image as it goes; ``Audit(out)`` reads it
back with per-class average maps and outliers; ``write_report`` makes a standalone HTML page
and ``camwidgets.widgets.Gallery(audit)`` opens outliers in the Explorer (the gallery composes
the audit; the audit never imports the widgets).

>>> from camwidgets.audit import audit
>>> result = audit("zoo:scenes:200:mark=correct", "zoo:shortcut", "audit.parquet")  # doctest: +SKIP
>>> [(s.name, s.peak) for s in result.summary()]                                 # doctest: +SKIP

Imports are lazy: ``camwidgets.audit.command`` (the CLI hook) loads without torch, and nothing
here imports plotly or ipywidgets until a figure or the gallery is asked for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compute import Settings
    from .results import Audit, ClassSummary, report_figures, write_report
    from .run import audit
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
    from .spec import EngineSpec
    from .stats import grid_regions, regions_from

_LAZY: dict[str, str] = {
    "Audit": ".results",
    "ClassSummary": ".results",
    "DatasetSource": ".sources",
    "EngineSpec": ".spec",
    "FolderSource": ".sources",
    "Item": ".sources",
    "LoaderSource": ".sources",
    "PathsSource": ".sources",
    "RayDatasetSource": ".sources",
    "ScenesSource": ".sources",
    "Settings": ".compute",
    "as_source": ".sources",
    "audit": ".run",
    "grid_regions": ".stats",
    "regions_from": ".stats",
    "report_figures": ".results",
    "write_report": ".results",
}

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


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'camwidgets.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
