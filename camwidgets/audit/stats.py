"""Where a heat map's mass lies: peak, shares on regions and inside objects, pointing game.

Pure numpy on batches of heat maps ``(N, H, W)`` (non-negative: Grad-CAM's ReLU'd maps at the
model-input size). Regions and boxes are given in fractions of the image, ``(top, left, bottom,
right)`` in [0, 1], so one definition serves any input size; object boxes and masks that come
with an image are in its own pixels and are scaled to the map by :func:`scale_boxes` /
:func:`resize_mask`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Box",
    "Regions",
    "boxes_mask",
    "grid_regions",
    "peaks",
    "pointing_hits",
    "region_pixels",
    "region_shares",
    "regions_from",
    "resize_mask",
    "scale_boxes",
    "shares_inside",
]

Box = tuple[float, float, float, float]
"""``(top, left, bottom, right)``; end-exclusive when in pixels, fractions of the side otherwise."""

Regions = tuple[tuple[str, Box], ...]
"""Named fractional boxes, in the order their shares are stored."""


def grid_regions(rows: int, cols: int | None = None) -> Regions:
    """A ``rows x cols`` grid of equal cells named ``"r{i}c{j}"``, row-major.

    >>> [name for name, _ in grid_regions(2)]
    ['r0c0', 'r0c1', 'r1c0', 'r1c1']
    """
    cols = rows if cols is None else cols
    for value, what in ((rows, "rows"), (cols, "cols")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"grid {what} must be a positive int, got {value!r}")
    return tuple(
        (f"r{i}c{j}", (i / rows, j / cols, (i + 1) / rows, (j + 1) / cols))
        for i in range(rows)
        for j in range(cols)
    )


def regions_from(spec: int | tuple[int, int] | Mapping[str, Sequence[float]]) -> Regions:
    """Normalise a regions argument: ``4`` (4 x 4 grid), ``(2, 3)``, or ``{name: box}``.

    Raises:
        ValueError: a box that is not four fractions with top < bottom and left < right.
        TypeError: anything else.
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        return grid_regions(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(v, int) for v in spec):
        return grid_regions(spec[0], spec[1])
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError("regions must name at least one box")
        out: list[tuple[str, Box]] = []
        for name, box in spec.items():
            values = tuple(float(v) for v in box)
            if len(values) != 4 or not all(0.0 <= v <= 1.0 for v in values):
                raise ValueError(
                    f"region {name!r}: expected (top, left, bottom, right) as fractions of the "
                    f"image in [0, 1], got {tuple(box)!r}"
                )
            top, left, bottom, right = values
            if not (top < bottom and left < right):
                raise ValueError(
                    f"region {name!r} is empty: {values!r} (need top<bottom, left<right)"
                )
            out.append((str(name), (top, left, bottom, right)))
        return tuple(out)
    raise TypeError(
        "regions must be an int (an n x n grid), a (rows, cols) pair, or a mapping "
        f"name -> (top, left, bottom, right) in fractions of the image; got {spec!r}"
    )


def region_pixels(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """A fractional box as end-exclusive pixel bounds; never empty for a non-empty box."""
    top, left, bottom, right = box
    t, b = round(top * height), round(bottom * height)
    lft, r = round(left * width), round(right * width)
    return t, lft, max(b, t + 1), max(r, lft + 1)


def peaks(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each map's maximum (the first in row-major order on ties)."""
    n, _, width = maps.shape
    flat = maps.reshape(n, -1).argmax(axis=1)
    return flat // width, flat % width


def _totals(maps: np.ndarray) -> np.ndarray:
    """Each map's total mass, in float64 so shares of large maps add up."""
    totals: np.ndarray = maps.reshape(maps.shape[0], -1).sum(axis=1, dtype=np.float64)
    return totals


def region_shares(maps: np.ndarray, regions: Regions) -> np.ndarray:
    """``(N, R)`` share of each map's mass inside each region; rows of empty maps are 0."""
    n, height, width = maps.shape
    totals = _totals(maps)
    safe = np.where(totals > 0, totals, 1.0)
    out = np.zeros((n, len(regions)), dtype=np.float64)
    for k, (_, box) in enumerate(regions):
        t, lft, b, r = region_pixels(box, height, width)
        out[:, k] = maps[:, t:b, lft:r].reshape(n, -1).sum(axis=1, dtype=np.float64) / safe
    return out


def shares_inside(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``(N,)`` share of each map's mass on its boolean mask ``(N, H, W)``; 0 for empty maps."""
    if masks.shape != maps.shape:
        raise ValueError(f"masks of shape {masks.shape} do not match maps of shape {maps.shape}")
    totals = _totals(maps)
    inside = (maps * masks).reshape(maps.shape[0], -1).sum(axis=1, dtype=np.float64)
    return np.where(totals > 0, inside / np.where(totals > 0, totals, 1.0), 0.0)


def pointing_hits(
    rows: np.ndarray, cols: np.ndarray, masks: np.ndarray, tolerance: float = 0.0
) -> np.ndarray:
    """Pointing game: whether each peak lies on its mask or within ``tolerance`` pixels of it."""
    n = masks.shape[0]
    hits = np.zeros(n, dtype=bool)
    for i in range(n):
        if masks[i, rows[i], cols[i]]:
            hits[i] = True
        elif tolerance > 0:
            ys, xs = np.nonzero(masks[i])
            if ys.size:
                d2 = (ys - rows[i]) ** 2 + (xs - cols[i]) ** 2
                hits[i] = bool(d2.min() <= tolerance**2)
    return hits


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a boolean ``(h, w)`` mask to ``(height, width)``."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (H, W), got shape {mask.shape}")
    mask = mask.astype(bool)
    if mask.shape == (height, width):
        return mask
    # Pixel centres of the target grid mapped back onto the source grid.
    ys = np.minimum(
        ((np.arange(height) + 0.5) * mask.shape[0] / height).astype(int), mask.shape[0] - 1
    )
    xs = np.minimum(
        ((np.arange(width) + 0.5) * mask.shape[1] / width).astype(int), mask.shape[1] - 1
    )
    out: np.ndarray = mask[ys[:, None], xs[None, :]]
    return out


def scale_boxes(boxes: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """Pixel boxes ``(M, 4)`` of a ``source`` (H, W) image rescaled to a ``target`` (H, W) one."""
    sy, sx = target[0] / source[0], target[1] / source[1]
    scaled: np.ndarray = np.asarray(boxes, dtype=np.float64) * np.array([sy, sx, sy, sx])
    return scaled


def boxes_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Union of pixel boxes ``(M, 4)`` (top, left, bottom, right; end-exclusive) as a mask."""
    mask = np.zeros((height, width), dtype=bool)
    for top, left, bottom, right in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        t, lft = max(int(np.floor(top)), 0), max(int(np.floor(left)), 0)
        b, r = min(int(np.ceil(bottom)), height), min(int(np.ceil(right)), width)
        mask[t:b, lft:r] = True
    return mask


@dataclass(frozen=True)
class ClassSummary:
    """What one class's maps have in common.

    Attributes:
        index: the class index; name: its name.
        count: images explained for this class; empty: how many of them had an all-zero map.
        average: the class-average map at the layer's resolution, (h, w), sums to 1.
        peak: where the average peaks, (row, col) in model-input pixels (bilinear upsampling).
        regions: mean share of mass per region, (R,).
        in_mask, hit_mask, in_boxes, hit_boxes: means over images that had a mask / boxes
            (None when none had).
        accuracy: share of labelled images whose top-1 is the label (None without labels).
    """

    index: int
    name: str
    count: int
    empty: int
    average: np.ndarray
    peak: tuple[int, int]
    regions: np.ndarray
    in_mask: float | None
    hit_mask: float | None
    in_boxes: float | None
    hit_boxes: float | None
    accuracy: float | None
