"""What every metric does first: the engine protocol, the maps as tensors, and the targets.

Shared by the curves, the random baseline, the confidence change and the pointing game; the
names here are internal to ``camwidgets.metrics`` (the package re-exports ``Scorer`` and
``Saliency`` for type hints).
"""

from __future__ import annotations

import operator
from typing import Any, Protocol, SupportsIndex, cast

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.classnames import check_index, resolve_class
from ..engine.inputs import Prepared
from ..engine.result import CamResult

Saliency = torch.Tensor | np.ndarray | CamResult


class Scorer(Protocol):
    """What the metrics need of an engine (``camwidgets.GradCAM`` has it)."""

    classes: list[str]

    def prepare(self, image: Any) -> Prepared: ...

    def scores(self, batch: torch.Tensor) -> torch.Tensor: ...


def pair(value: Any, what: str) -> tuple[int, int]:
    """A (height, width) of positive ints."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(f"{what} must be (height, width) of positive ints, got {value!r}")
    return int(value[0]), int(value[1])


def check_batch_size(batch_size: object) -> None:
    """Refuse anything but a positive int."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def as_maps(value: Any, what: str) -> torch.Tensor:
    """Maps as a float64 (N, H, W) CPU tensor from a tensor, array, list or CamResult."""
    if isinstance(value, CamResult):
        value = value.heatmap
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{what} is an empty list")
        value = torch.stack([as_maps(v, what)[0] for v in value])
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must be a tensor, a numpy array or a CamResult, got {value!r}")
    if value.dim() == 2:
        value = value.unsqueeze(0)
    if value.dim() != 3 or value.numel() == 0:
        raise ValueError(f"{what} must be (H, W) or (N, H, W), got shape {tuple(value.shape)}")
    maps: torch.Tensor = value.detach().cpu()
    return maps if maps.dtype == torch.bool else maps.double()


def class_index(engine: Scorer, target: Any) -> int:
    """One class index from an int-like or a class name."""
    if isinstance(target, str):  # the engine's resolver: the same names and words everywhere
        return resolve_class(target, engine.classes)
    if isinstance(target, bool):
        raise TypeError("target must be a class index or name, got a bool")
    try:
        index = operator.index(cast(SupportsIndex, target))
    except TypeError:
        raise TypeError(
            f"target must be a class index, a class name or None, got {type(target).__name__}"
        ) from None
    return check_index(index, len(engine.classes))


def prepare_inputs(
    engine: Scorer, image: Any, saliency: Saliency, target: Any
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...] | None, bool]:
    """Model-input batch, ReLU'd maps at its size on its device, one target per image (None:
    the top-1, resolved by :func:`top1` once every argument has been checked)."""
    prepared = engine.prepare(image)
    x = prepared.tensor
    n = x.shape[0]
    if isinstance(saliency, CamResult) and target is None:
        target = saliency.target
    maps = as_maps(saliency, "saliency")
    if maps.shape[0] != n:
        raise ValueError(f"got {maps.shape[0]} saliency map(s) for {n} image(s)")
    if not torch.isfinite(maps).all():
        raise ValueError("saliency maps contain NaN or infinite values")
    if tuple(maps.shape[-2:]) != prepared.size:
        maps = F.interpolate(
            maps.unsqueeze(1), size=prepared.size, mode="bilinear", align_corners=False
        )[:, 0]
    if isinstance(target, (list, tuple)):
        if len(target) != n:
            raise ValueError(f"got {len(target)} targets for {n} image(s)")
        targets = tuple(class_index(engine, t) for t in target)
    elif target is None:
        return x, maps.clamp_min(0).float().to(x.device), None, prepared.batched
    else:
        targets = (class_index(engine, target),) * n
    return x, maps.clamp_min(0).float().to(x.device), targets, prepared.batched


def top1(engine: Scorer, x: torch.Tensor, targets: tuple[int, ...] | None) -> tuple[int, ...]:
    """The given targets, or each image's top-1 class (one forward)."""
    if targets is not None:
        return targets
    return tuple(int(i) for i in engine.scores(x).argmax(dim=1))


def probabilities(engine: Scorer, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax class probabilities (M, classes), float64 on the CPU, in batches."""
    parts = [
        engine.scores(batch[first : first + batch_size]).double().softmax(dim=1).cpu()
        for first in range(0, len(batch), batch_size)
    ]
    return torch.cat(parts)
