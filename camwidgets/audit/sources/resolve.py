"""What the user passed as data -> a source."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from .base import ACCEPTED, IndexedSource, Source
from .datasets import DatasetSource, LoaderSource, RayDatasetSource
from .files import FolderSource, PathsSource
from .scenes import ScenesSource


def as_source(data: Any) -> Source:
    """Turn what the user passed as data into a source.

    Raises:
        ValueError: a path that does not exist or holds no images, an empty list, a bad spec.
        TypeError: something that is not a kind of data the audit reads.
    """
    if isinstance(data, (IndexedSource, LoaderSource, RayDatasetSource)):
        return data
    kind = type(data)
    if kind.__module__.startswith("ray.data") and hasattr(data, "map_batches"):
        return RayDatasetSource(data)
    if isinstance(data, (str, Path)):
        text = str(data)
        if text.startswith("zoo:"):
            return ScenesSource.parse(text)
        path = Path(text)
        if path.is_dir():
            return FolderSource(path)
        if path.is_file() and path.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in path.read_text().splitlines()]
            base = path.parent
            listed = [ln for ln in lines if ln and not ln.startswith("#")]
            return PathsSource([p if Path(p).is_absolute() else str(base / p) for p in listed])
        if path.is_file():
            return PathsSource([path])
        raise ValueError(f"data {text!r} does not exist; accepted: {ACCEPTED}")
    if isinstance(data, Sequence) and data and all(isinstance(p, (str, Path)) for p in data):
        return PathsSource(list(data))
    if isinstance(data, Sequence) and not data:
        raise ValueError(f"got no data to audit (an empty list); accepted: {ACCEPTED}")
    if isinstance(data, torch.utils.data.DataLoader):
        return LoaderSource(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, Mapping):
        return DatasetSource(data)
    raise TypeError(f"cannot audit a {type(data).__name__}; accepted: {ACCEPTED}")
