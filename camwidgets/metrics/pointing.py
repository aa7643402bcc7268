"""Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV 2016).

A hit when the map's maximum lies on the object's mask, or within ``tolerance`` pixels of it
(the paper used 15).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .inputs import Saliency, as_maps


@dataclass(frozen=True)
class PointingGame:
    """Pointing-game outcome over N maps.

    Attributes:
        hits: per map, whether its maximum is on the mask (within the tolerance).
        empty: per map, whether it was constant (no maximum to point with: counted a miss).
        tolerance: in pixels (Euclidean distance to the nearest mask pixel).
    """

    hits: tuple[bool, ...]
    empty: tuple[bool, ...]
    tolerance: float

    @property
    def accuracy(self) -> float:
        """Share of maps that hit: hits / N."""
        return sum(self.hits) / len(self.hits)


def pointing_game(
    saliency: Saliency | Sequence[torch.Tensor | np.ndarray],
    mask: torch.Tensor | np.ndarray | Sequence[torch.Tensor | np.ndarray],
    *,
    tolerance: float = 0.0,
) -> PointingGame:
    """Pointing game (Zhang et al.): does each map's maximum fall on its object?

    Args:
        saliency: (H, W) or (N, H, W) maps, a list of (H, W) maps, or a CamResult.
        mask: boolean (H, W) or (N, H, W) (or a list), the same size as the maps; one (H, W)
            mask is used for every map.
        tolerance: a hit may lie up to this many pixels (Euclidean) from the mask.

    The maximum is the first one in row-major order when several pixels share it; a constant
    map (all zero, say) has none and counts as a miss (``empty``).
    """
    maps = as_maps(saliency, "saliency")
    masks = as_maps(mask, "mask")
    if masks.shape[0] == 1 and maps.shape[0] > 1:
        masks = masks.expand(maps.shape[0], -1, -1)
    if masks.shape != maps.shape:
        raise ValueError(
            f"mask shape {tuple(masks.shape)} does not match the maps' {tuple(maps.shape)}; "
            "resize the map or the mask so they cover the same pixels"
        )
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or tolerance < 0:
        raise ValueError(f"tolerance must be a number >= 0 (pixels), got {tolerance!r}")
    if not torch.isfinite(maps).all():
        raise ValueError("saliency maps contain NaN or infinite values")
    hits: list[bool] = []
    empty: list[bool] = []
    width = maps.shape[-1]
    for one, where in zip(maps, masks != 0, strict=True):
        if float(one.max()) == float(one.min()):
            hits.append(False)
            empty.append(True)
            continue
        row, col = divmod(int(one.flatten().argmax()), width)
        empty.append(False)
        if tolerance == 0 or bool(where[row, col]):
            hits.append(bool(where[row, col]))
            continue
        points = where.nonzero().double()
        if len(points) == 0:
            hits.append(False)
            continue
        distance = ((points - torch.tensor([row, col], dtype=torch.float64)) ** 2).sum(1).min()
        hits.append(bool(distance.sqrt() <= tolerance))
    return PointingGame(tuple(hits), tuple(empty), float(tolerance))
