"""Average drop and increase in confidence (Chattopadhay et al., "Grad-CAM++", WACV 2018).

The model sees only the explanation, E = x * L / max(L), with Y the class probability on x and
O on E: average drop = 100/N sum_i max(0, Y_i - O_i) / Y_i; increase in confidence =
100/N sum_i [O_i > Y_i].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .inputs import Saliency, Scorer, check_batch_size, prepare_inputs, probabilities, top1


@dataclass(frozen=True)
class ConfidenceChange:
    """Average drop and increase in confidence (Chattopadhay et al.) over a batch.

    Attributes:
        average_drop: 100/N sum max(0, Y - O) / Y, in percent (lower is better).
        increase: percentage of images whose confidence rose (O > Y) (higher is better).
        original: Y, the class probability on each original image, (N,).
        explained: O, the class probability on each explanation image x * L / max(L), (N,).
        targets: the class scored for each image.
    """

    average_drop: float
    increase: float
    original: torch.Tensor
    explained: torch.Tensor
    targets: tuple[int, ...]


def confidence_change(
    engine: Scorer,
    image: Any,
    saliency: Saliency,
    target: Any = None,
    *,
    batch_size: int = 64,
) -> ConfidenceChange:
    """Average drop and increase in confidence (Chattopadhay et al.) over one image or a batch.

    The explanation image is ``x * L / max(L)`` in the model-input space, with L the map (ReLU'd;
    an all-zero map hides everything). Y and O are softmax probabilities of the target class.

    Args:
        engine, image, saliency, target, batch_size: as for :func:`deletion`.
    """
    check_batch_size(batch_size)
    x, maps, given, _ = prepare_inputs(engine, image, saliency, target)
    targets = top1(engine, x, given)
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    weights = torch.where(peak > 0, maps / torch.where(peak > 0, peak, 1.0), 0.0)
    explained_images = x * weights.unsqueeze(1).to(x.dtype)
    rows = torch.arange(len(targets))
    index = torch.tensor(targets)
    original = probabilities(engine, x, batch_size)[rows, index]
    explained = probabilities(engine, explained_images, batch_size)[rows, index]
    drop = (original - explained).clamp_min(0) / original
    return ConfidenceChange(
        average_drop=float(100 * drop.mean()),
        increase=float(100 * (explained > original).double().mean()),
        original=original,
        explained=explained,
        targets=targets,
    )
