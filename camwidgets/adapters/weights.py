"""torchvision weights enums: ``W.transforms()`` and ``W.meta["categories"]`` (no download:
both are metadata of the enum)."""

from __future__ import annotations

from typing import Any

from .base import Transform


def read(weights: object) -> tuple[Transform, list[str] | None]:
    """The transform and class names of a torchvision weights enum, checked."""
    transforms = getattr(weights, "transforms", None)
    meta = getattr(weights, "meta", None)
    if not callable(transforms) or not isinstance(meta, dict):
        raise TypeError(
            "weights must be a torchvision weights enum (e.g. ResNet50_Weights.DEFAULT), with "
            f"transforms() and meta, got {type(weights).__name__}"
        )
    transform: Any = transforms()
    categories = meta.get("categories")
    names = [str(c) for c in categories] if isinstance(categories, (list, tuple)) else None
    return transform, names
