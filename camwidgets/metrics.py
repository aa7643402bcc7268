"""Faithfulness metrics for saliency maps: deletion / insertion, confidence change, pointing game.

* **Deletion and insertion** (Petsiuk et al., "RISE", BMVC 2018, arXiv:1806.07421). Pixels are
  ranked by saliency, highest first. Deletion replaces them, ``pixels_per_step`` at a time, by a
  baseline (zeros of the model input, i.e. the normalisation mean); insertion starts from a
  blurred copy and puts the original pixels back in the same order. The curve is the class
  probability after each step, against the fraction of pixels changed; its area (trapezoid
  rule on [0, 1]) is the score: low is good for deletion, high for insertion.
* **Average drop and increase in confidence** (Chattopadhay et al., "Grad-CAM++", WACV 2018).
  The model sees only the explanation, E = x * L / max(L), with Y the class probability on x
  and O on E: average drop = 100/N sum_i max(0, Y_i - O_i) / Y_i; increase in confidence =
  100/N sum_i [O_i > Y_i].
* **Pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", ECCV
  2016): a hit when the map's maximum lies on the object's mask, or within ``tolerance``
  pixels of it (the paper used 15).

Every perturbed image goes through ``engine.scores`` in batches of ``batch_size`` (no
gradients, eval mode); long runs show a progress bar (after a second, or ``progress=True``).
All perturbations happen in the model-input space (after the transform's normalisation), as in
RISE's code, so "zero" is the dataset mean colour, not black.

Example:
    >>> from camwidgets import GradCAM, metrics, zoo
    >>> shapes = zoo.load("shapes")
    >>> engine = GradCAM(shapes.model, transform=shapes.transform, classes=shapes.classes)
    >>> scene = zoo.sample_scenes(1)[0]
    >>> res = engine.explain(scene.image, target=scene.labels[0])
    >>> curves = metrics.faithfulness(engine, scene.image, res, progress=False)
    >>> 0.0 <= curves.deletion.auc <= curves.insertion.auc <= 1.0
    True
    >>> metrics.pointing_game(res.heatmap, scene.masks[0], tolerance=4).accuracy
    1.0
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, SupportsIndex, cast

import numpy as np
import torch
import torch.nn.functional as F

from .engine.classnames import check_index, resolve_class
from .engine.inputs import Prepared
from .engine.progress import progress_bar
from .engine.result import CamResult

__all__ = [
    "ConfidenceChange",
    "Curve",
    "Faithfulness",
    "PointingGame",
    "RandomBaseline",
    "auc",
    "blur",
    "confidence_change",
    "deletion",
    "faithfulness",
    "insertion",
    "pointing_game",
    "random_baseline",
    "random_map",
]

Baseline = Literal["zero", "blur", "mean"] | float | torch.Tensor | Callable[[torch.Tensor], Any]
"""What replaces pixels: "zero" (the model-input zero), "blur" (a Gaussian-blurred copy),
"mean" (each image's per-channel mean), a number, a tensor broadcastable to the batch, or a
callable batch (N, C, H, W) -> tensor of the same shape."""

Saliency = torch.Tensor | np.ndarray | CamResult
Kind = Literal["deletion", "insertion"]


class Scorer(Protocol):
    """What the metrics need of an engine (``camwidgets.GradCAM`` has it)."""

    classes: list[str]

    def prepare(self, image: Any) -> Prepared: ...

    def scores(self, batch: torch.Tensor) -> torch.Tensor: ...


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


@dataclass(frozen=True)
class RandomBaseline:
    """Mean and standard deviation of the AUCs of ``runs`` random maps of one image."""

    deletion: float
    deletion_std: float
    insertion: float
    insertion_std: float
    runs: int


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


# -- curves ----------------------------------------------------------------------------------


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
    (deletions, insertions), batched = _curves(
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
    height, width = _pair(size, "size")
    cells = (height, width) if grid is None else _pair(grid, "grid")
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
    (dels, inss), _ = _curves(
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
    )


# -- confidence change -----------------------------------------------------------------------


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
    _check_batch_size(batch_size)
    x, maps, given, _ = _inputs(engine, image, saliency, target)
    targets = _top1(engine, x, given)
    peak = maps.amax(dim=(-2, -1), keepdim=True)
    weights = torch.where(peak > 0, maps / torch.where(peak > 0, peak, 1.0), 0.0)
    explained_images = x * weights.unsqueeze(1).to(x.dtype)
    rows = torch.arange(len(targets))
    index = torch.tensor(targets)
    original = _probabilities(engine, x, batch_size)[rows, index]
    explained = _probabilities(engine, explained_images, batch_size)[rows, index]
    drop = (original - explained).clamp_min(0) / original
    return ConfidenceChange(
        average_drop=float(100 * drop.mean()),
        increase=float(100 * (explained > original).double().mean()),
        original=original,
        explained=explained,
        targets=targets,
    )


# -- pointing game ---------------------------------------------------------------------------


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
    maps = _as_maps(saliency, "saliency")
    masks = _as_maps(mask, "mask")
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


# -- internals -------------------------------------------------------------------------------


def _pair(value: Any, what: str) -> tuple[int, int]:
    """A (height, width) of positive ints."""
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise ValueError(f"{what} must be (height, width) of positive ints, got {value!r}")
    return int(value[0]), int(value[1])


def _check_batch_size(batch_size: object) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _as_maps(value: Any, what: str) -> torch.Tensor:
    """Maps as a float64 (N, H, W) CPU tensor from a tensor, array, list or CamResult."""
    if isinstance(value, CamResult):
        value = value.heatmap
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{what} is an empty list")
        value = torch.stack([_as_maps(v, what)[0] for v in value])
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


def _class_index(engine: Scorer, target: Any) -> int:
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


def _inputs(
    engine: Scorer, image: Any, saliency: Saliency, target: Any
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...] | None, bool]:
    """Model-input batch, ReLU'd maps at its size on its device, one target per image (None:
    the top-1, resolved by :func:`_top1` once every argument has been checked)."""
    prepared = engine.prepare(image)
    x = prepared.tensor
    n = x.shape[0]
    if isinstance(saliency, CamResult) and target is None:
        target = saliency.target
    maps = _as_maps(saliency, "saliency")
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
        targets = tuple(_class_index(engine, t) for t in target)
    elif target is None:
        return x, maps.clamp_min(0).float().to(x.device), None, prepared.batched
    else:
        targets = (_class_index(engine, target),) * n
    return x, maps.clamp_min(0).float().to(x.device), targets, prepared.batched


def _top1(engine: Scorer, x: torch.Tensor, targets: tuple[int, ...] | None) -> tuple[int, ...]:
    """The given targets, or each image's top-1 class (one forward)."""
    if targets is not None:
        return targets
    return tuple(int(i) for i in engine.scores(x).argmax(dim=1))


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


def _probabilities(engine: Scorer, batch: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax class probabilities (M, classes), float64 on the CPU, in batches."""
    parts = [
        engine.scores(batch[first : first + batch_size]).double().softmax(dim=1).cpu()
        for first in range(0, len(batch), batch_size)
    ]
    return torch.cat(parts)


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
    (curves,), batched = _curves(
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


def _curves(
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
    _check_batch_size(batch_size)
    x, maps, given, batched = _inputs(engine, image, saliency, target)
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
    targets = _top1(engine, x, given)
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
