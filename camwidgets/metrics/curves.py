"""Deletion and insertion curves (Petsiuk et al., "RISE", BMVC 2018, arXiv:1806.07421).

Pixels are ranked by saliency, highest first. Deletion replaces them, ``pixels_per_step`` at a
time, by a baseline (zeros of the model input, i.e. the normalisation mean); insertion starts
from a blurred copy and puts the original pixels back in the same order. The curve is the class
probability after each step, against the fraction of pixels changed; its area (trapezoid rule
on [0, 1]) is the score: low is good for deletion, high for insertion.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..engine.progress import progress_bar
from .inputs import Saliency, Scorer, check_batch_size, prepare_inputs, top1

Baseline = Literal["zero", "blur", "mean"] | float | torch.Tensor | Callable[[torch.Tensor], Any]
"""What replaces pixels: "zero" (the model-input zero), "blur" (a Gaussian-blurred copy),
"mean" (each image's per-channel mean), a number, a tensor broadcastable to the batch, or a
callable batch (N, C, H, W) -> tensor of the same shape."""
Kind = Literal["deletion", "insertion"]


@dataclass(frozen=True)
class Curve:
    """One deletion or insertion curve of one image.

    Attributes:
        kind: "deletion" or "insertion".
        fractions: share of pixels deleted / inserted at each step, (S + 1,), from 0 to 1.
        scores: the class probability (or raw score) after each step, (S + 1,).
        auc: area under the curve over [0, 1] (trapezoid rule).
        target: the class index scored.
    """

    kind: str
    fractions: torch.Tensor
    scores: torch.Tensor
    auc: float
    target: int


@dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion curves of one map (lower deletion AUC and higher insertion AUC
    mean a more faithful map)."""

    deletion: Curve
    insertion: Curve


def auc(fractions: torch.Tensor, scores: torch.Tensor) -> float:
    """Area under a curve by the trapezoid rule (RISE's ``auc`` for evenly spaced steps)."""
    x = torch.as_tensor(fractions, dtype=torch.float64)
    y = torch.as_tensor(scores, dtype=torch.float64)
    if x.dim() != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError("auc needs two 1-D sequences of the same length >= 2")
    return float(((y[1:] + y[:-1]) / 2 * (x[1:] - x[:-1])).sum())


def blur(batch: torch.Tensor, sigma: float = 5.0) -> torch.Tensor:
    """Separable Gaussian blur of an (N, C, H, W) batch; kernel radius ceil(3 sigma), reflected
    borders (RISE used an 11 x 11 kernel, sigma 5, zero padding)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(batch.device, batch.dtype)
    n, c, h, w = batch.shape
    x = batch.reshape(n * c, 1, h, w)
    # Reflection needs the pad to be smaller than the side; replicate beyond that.
    mode = "reflect" if radius < min(h, w) else "replicate"
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode=mode), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode=mode), kernel.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


def deletion(
    engine: Scorer,
    image: Any,
    saliency: Saliency,
    target: Any = None,
    *,
    steps: int = 100,
    baseline: Baseline = "zero",
    score: Literal["probability", "logit"] = "probability",
    batch_size: int = 64,
    progress: bool | None = None,
) -> Curve | list[Curve]:
    """Deletion curve (Petsiuk et al.): remove the most salient pixels first.

    Args:
        engine: a ``GradCAM`` (anything with ``prepare``, ``scores`` and ``classes``).
        image: what ``engine.prepare`` accepts; a batch gives one curve per image.
        saliency: a map at the model-input size, (H, W) or (N, H, W) (any other size is
            resized bilinearly), or a CamResult (its heatmap, and its target when
            ``target`` is None).
        target: class index or name, one per image, or None (the CamResult's target, else
            the top-1 class of the unperturbed image).
        steps: number of perturbation steps; ``ceil(H*W / steps)`` pixels change per step.
        baseline: what deleted pixels become (see ``Baseline``); RISE used zeros.
        score: "probability" (softmax, as in RISE) or "logit" (the raw score).
        batch_size: perturbed images per forward.
        progress: progress bar: None shows one when the run takes more than a second.

    Returns:
        A Curve, or a list of Curves for a batch.
    """
    return _single_kind(
        "deletion", engine, image, saliency, target, steps, baseline, score, batch_size, progress
    )


def insertion(
    engine: Scorer,
    image: Any,
    saliency: Saliency,
    target: Any = None,
    *,
    steps: int = 100,
    baseline: Baseline = "blur",
    score: Literal["probability", "logit"] = "probability",
    batch_size: int = 64,
    progress: bool | None = None,
) -> Curve | list[Curve]:
    """Insertion curve (Petsiuk et al.): from ``baseline`` (default a blurred copy), put the
    most salient pixels back first. Arguments as for :func:`deletion`."""
    return _single_kind(
        "insertion", engine, image, saliency, target, steps, baseline, score, batch_size, progress
    )


def faithfulness(
    engine: Scorer,
    image: Any,
    saliency: Saliency,
    target: Any = None,
    *,
    steps: int = 100,
    deletion_baseline: Baseline = "zero",
    insertion_baseline: Baseline = "blur",
    score: Literal["probability", "logit"] = "probability",
    batch_size: int = 64,
    progress: bool | None = None,
) -> Faithfulness | list[Faithfulness]:
    """Both curves of a map in one stream of batches (see :func:`deletion`).

    Returns:
        Faithfulness(deletion, insertion), or a list of them for a batch.
    """
    kinds: tuple[Kind, Kind] = ("deletion", "insertion")
    (deletions, insertions), batched = perturbation_curves(
        engine,
        image,
        saliency,
        target,
        kinds,
        (deletion_baseline, insertion_baseline),
        steps=steps,
        score=score,
        batch_size=batch_size,
        progress=progress,
    )
    pairs = [Faithfulness(d, i) for d, i in zip(deletions, insertions, strict=True)]
    return pairs if batched else pairs[0]


def _substrate(baseline: Baseline, x: torch.Tensor) -> torch.Tensor:
    """The fully perturbed batch for ``baseline``."""
    if isinstance(baseline, str):
        if baseline == "zero":
            return torch.zeros_like(x)
        if baseline == "blur":
            return blur(x)
        if baseline == "mean":
            return x.mean(dim=(-2, -1), keepdim=True).expand_as(x).clone()
        raise ValueError(
            f"unknown baseline {baseline!r}; use 'zero', 'blur', 'mean', a number, "
            "a tensor or a callable"
        )
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(x.device, x.dtype).expand_as(x).clone()
        except RuntimeError:
            raise ValueError(
                f"baseline tensor of shape {tuple(baseline.shape)} does not broadcast to the "
                f"input {tuple(x.shape)}"
            ) from None
    if callable(baseline):
        out = baseline(x)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise ValueError("a callable baseline must return a tensor shaped like its input")
        return out.to(x.dtype)
    raise TypeError(f"baseline must be a name, a number, a tensor or a callable, got {baseline!r}")


def _single_kind(
    kind: Kind,
    engine: Scorer,
    image: Any,
    saliency: Saliency,
    target: Any,
    steps: int,
    baseline: Baseline,
    score: Literal["probability", "logit"],
    batch_size: int,
    progress: bool | None,
) -> Curve | list[Curve]:
    (curves,), batched = perturbation_curves(
        engine,
        image,
        saliency,
        target,
        (kind,),
        (baseline,),
        steps=steps,
        score=score,
        batch_size=batch_size,
        progress=progress,
    )
    return curves if batched else curves[0]


def perturbation_curves(
    engine: Scorer,
    image: Any,
    saliency: Saliency,
    target: Any,
    kinds: tuple[Kind, ...],
    baselines: tuple[Baseline, ...],
    *,
    steps: int,
    score: Literal["probability", "logit"],
    batch_size: int,
    progress: bool | None,
) -> tuple[list[list[Curve]], bool]:
    """Curves of each kind for every image, all perturbed inputs streamed in shared batches."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if score not in ("probability", "logit"):
        raise ValueError(f"score must be 'probability' or 'logit', got {score!r}")
    check_batch_size(batch_size)
    x, maps, given, batched = prepare_inputs(engine, image, saliency, target)
    n, _, height, width = x.shape
    pixels = height * width
    per_step = math.ceil(pixels / steps)
    counts = torch.tensor(
        [min(i * per_step, pixels) for i in range(math.ceil(pixels / per_step) + 1)]
    )
    # rank[p] = position of pixel p when sorted by decreasing saliency; ties keep raster order.
    order = torch.argsort(-maps.reshape(n, pixels), dim=1, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=order.device).expand(n, -1))
    rank = rank.reshape(n, 1, height, width)
    ends = [
        (x, _substrate(b, x)) if k == "deletion" else (_substrate(b, x), x)
        for k, b in zip(kinds, baselines, strict=True)
    ]
    targets = top1(engine, x, given)
    # One job = (kind, image, step); the perturbed input is built when its batch is due.
    jobs = [(k, i, s) for k in range(len(kinds)) for i in range(n) for s in range(len(counts))]
    values = torch.empty(len(jobs), dtype=torch.float64)
    counts_dev = counts.to(x.device)
    bar = progress_bar(len(jobs), "deletion/insertion", progress, unit="img")
    try:
        for first in range(0, len(jobs), batch_size):
            chunk = jobs[first : first + batch_size]
            i_idx = torch.tensor([i for _, i, _ in chunk], device=x.device)
            s_idx = torch.tensor([s for _, _, s in chunk], device=x.device)
            start = torch.stack([ends[k][0][i] for k, i, _ in chunk])
            finish = torch.stack([ends[k][1][i] for k, i, _ in chunk])
            changed = rank[i_idx] < counts_dev[s_idx].view(-1, 1, 1, 1)
            batch = torch.where(changed, finish, start)
            raw = engine.scores(batch).double()
            if score == "probability":
                raw = raw.softmax(dim=1)
            wanted = torch.tensor([targets[i] for _, i, _ in chunk], device=raw.device)
            values[first : first + len(chunk)] = raw[torch.arange(len(chunk)), wanted].cpu()
            bar.update(len(chunk))
    finally:
        bar.close()
    fractions = counts.double() / pixels
    values = values.reshape(len(kinds), n, len(counts))
    curves = [
        [
            Curve(
                kind=kinds[k],
                fractions=fractions,
                scores=values[k, i],
                auc=auc(fractions, values[k, i]),
                target=targets[i],
            )
            for i in range(n)
        ]
        for k in range(len(kinds))
    ]
    return curves, batched
