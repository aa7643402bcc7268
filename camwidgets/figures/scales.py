"""Colour ranges that tell the truth, and saying in words when a map is (nearly) empty."""

from __future__ import annotations

import math

import numpy as np

# A map whose peak is below this share of its reference is called near-empty: its colours
# would otherwise be stretched over values too small to matter.
NEAR_EMPTY = 0.02


def peak(values: np.ndarray) -> float:
    """The largest value (0 for an empty array)."""
    return float(np.max(values)) if values.size else 0.0


def magnitude(values: np.ndarray) -> float:
    """The largest absolute value (0 for an empty array)."""
    return float(np.max(np.abs(values))) if values.size else 0.0


def emptiness(top: float, reference: float, what: str = "the signed map") -> str | None:
    """Words for a map whose largest value is ``top``, or None if it is not (nearly) empty.

    Args:
        top: the map's largest value (heat maps are >= 0).
        reference: what "near" is measured against (e.g. the largest |value| of the signed
            map, or the shared range); <= 0 means there is nothing to compare with.
        what: how the reference is named in the words.
    """
    if not math.isfinite(top) or not math.isfinite(reference):
        raise ValueError(f"peak {top} and reference {reference} must be finite")
    if top <= 0.0:
        return "empty: every value is 0"
    if reference > 0.0 and top < NEAR_EMPTY * reference:
        return f"near-empty: peak {top:.2g} is {top / reference:.1%} of {what} ({reference:.2g})"
    return None


def positive_range(top: float) -> float:
    """The upper end of a colour range from 0 (1 for an all-zero map, so it can be drawn)."""
    return top if top > 0.0 else 1.0
