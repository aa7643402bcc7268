"""Random maps and the AUCs they reach: the baseline a saliency map must beat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..engine.result import CamResult
from .curves import Faithfulness, perturbation_curves
from .inputs import Scorer, pair


@dataclass(frozen=True)
class RandomBaseline:
    """Mean and standard deviation of the AUCs of ``runs`` random maps of one image.

    ``curves`` holds each random map's deletion and insertion curves (seed order), so the
    band they span can be drawn next to a map's own curves.
    """

    deletion: float
    deletion_std: float
    insertion: float
    insertion_std: float
    runs: int
    curves: tuple[Faithfulness, ...] = field(default=(), repr=False)


def random_map(
    size: tuple[int, int],
    *,
    grid: tuple[int, int] | None = None,
    seed: int = 0,
    count: int | None = None,
) -> torch.Tensor:
    """A random saliency map: uniform noise per pixel, or drawn on a coarse ``grid`` (e.g. the
    layer's h x w) and bilinearly resized, for a baseline as smooth as a CAM.

    Returns:
        (H, W), or (count, H, W) when ``count`` is given; float32 in [0, 1].
    """
    height, width = pair(size, "size")
    cells = (height, width) if grid is None else pair(grid, "grid")
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.rand((count or 1, 1, *cells), generator=generator)
    if cells != (height, width):
        noise = F.interpolate(noise, size=(height, width), mode="bilinear", align_corners=False)
    maps = noise[:, 0]
    return maps if count is not None else maps[0]


def random_baseline(
    engine: Scorer,
    image: Any,
    target: Any = None,
    *,
    runs: int = 3,
    grid: tuple[int, int] | None = None,
    seed: int = 0,
    steps: int = 100,
    score: Literal["probability", "logit"] = "probability",
    batch_size: int = 64,
    progress: bool | None = None,
) -> RandomBaseline:
    """Deletion and insertion AUCs of ``runs`` random maps of one image: what a map must beat.

    Args:
        engine, image, target, steps, score, batch_size, progress: as for :func:`deletion`
            (a single image; ``target`` may also be a CamResult's ``target``).
        runs: how many random maps (seeds ``seed .. seed + runs - 1``).
        grid: draw the noise on this coarse grid (see :func:`random_map`); None: per pixel.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive int, got {runs!r}")
    prepared = engine.prepare(image)
    if prepared.tensor.shape[0] != 1:
        raise ValueError("random_baseline takes a single image")
    if isinstance(target, CamResult):
        target = target.target
    size = prepared.size
    maps = torch.stack([random_map(size, grid=grid, seed=seed + r) for r in range(runs)])
    batch = prepared.tensor.expand(runs, *prepared.tensor.shape[1:])
    targets = None if target is None else [target] * runs
    (dels, inss), _ = perturbation_curves(
        engine,
        batch,
        maps,
        targets,
        ("deletion", "insertion"),
        ("zero", "blur"),
        steps=steps,
        score=score,
        batch_size=batch_size,
        progress=progress,
    )
    d = torch.tensor([c.auc for c in dels], dtype=torch.float64)
    i = torch.tensor([c.auc for c in inss], dtype=torch.float64)
    return RandomBaseline(
        deletion=float(d.mean()),
        deletion_std=float(d.std()) if runs > 1 else 0.0,
        insertion=float(i.mean()),
        insertion_std=float(i.std()) if runs > 1 else 0.0,
        runs=runs,
        curves=tuple(Faithfulness(a, b) for a, b in zip(dels, inss, strict=True)),
    )
