"""FGSM and PGD in the picture's pixel space, through the engine's own transform.

For a picture x in [0, 1] (H, W, 3), the engine's transform T and the model's scores Y:

    untargeted (away from the clean top-1 o):  x' = x + a * sign(d CE(Y(T(x)), o) / dx)
    targeted (towards class t):                x' = x - a * sign(d CE(Y(T(x)), t) / dx)

then x' is projected back onto |x' - x| <= eps (L-infinity) and [0, 1]. FGSM is one step of
size eps (Goodfellow et al.); PGD repeats steps of ``step_size`` (Madry et al., from the clean
picture, no random start, so runs are reproducible). The attacked picture is rounded to the
1/255 grid a uint8 picture holds (never past eps), then fed back through the engine's real
pipeline (PIL, transform, model): ``.predicted`` and ``.success`` are what the engine sees.

The model is left exactly as found: eval mode only for the duration (each module's flag
restored), gradients with ``torch.autograd.grad`` with respect to the perturbation only (no
``.grad`` written, no hooks), and no buffer changes (eval-mode BatchNorm reads its statistics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from camwidgets.engine import GradCAM
from camwidgets.engine.capture import evaluating
from camwidgets.engine.checks import as_index, as_positive_int, describe_value
from camwidgets.engine.inputs import ACCEPTED, find_normalize, to_pil
from camwidgets.engine.layers import scores_of
from camwidgets.engine.locks import model_lock
from camwidgets.engine.progress import progress_bar

from .pixels import Replay, check_replay, differentiable
from .result import AttackResult

__all__ = ["fgsm", "pgd"]

AttackTarget = int | str | None | Sequence[int | str | None]


@dataclass(frozen=True)
class _Picture:
    """One picture to attack: float32 (H, W, 3) in [0, 1]; ``tensor`` when given preprocessed."""

    pixels: np.ndarray
    tensor: bool


def pgd(
    engine: GradCAM,
    image: Any,
    target: AttackTarget = None,
    eps: float = 8 / 255,
    steps: int = 10,
    step_size: float = 2 / 255,
    *,
    progress: bool | None = None,
) -> AttackResult:
    """Projected gradient descent within ``eps`` (L-infinity) of the picture, in [0, 1].

    Args:
        engine: the GradCAM engine of the model (its transform and class names are used).
        image: a picture (PIL, numpy HWC, path), a preprocessed tensor (C, H, W) / (N, C, H, W)
            (attacked in the pixel space its transform's ``Normalize`` undoes), or a list.
        target: None (untargeted: away from the clean top-1), a class index or name, or one
            per picture.
        eps: largest change of any pixel value, as a share of the full range (8/255 = 8 levels
            of a uint8 picture).
        steps: gradient steps.
        step_size: change per step (per pixel value).
        progress: show a progress bar: always (True), never (False), after a second (None).

    Returns:
        An :class:`AttackResult` (``.image``, ``.original``, ``.predicted``, ``.success``, ...).

    Raises:
        ValueError, TypeError: a bad argument, before any model pass.
        NotDifferentiableError: the engine's transform cannot be replayed on a picture tensor.

    Example:
        >>> from camwidgets import GradCAM, zoo
        >>> from camwidgets.attacks import pgd
        >>> z = zoo.load("shapes")                                               # doctest: +SKIP
        >>> engine = GradCAM(z.model, classes=z.classes, transform=z.transform)  # doctest: +SKIP
        >>> res = pgd(engine, zoo.make_scene(1, 0).image, eps=8 / 255)          # doctest: +SKIP
        >>> res.success, float(abs(res.perturbation).max()) <= 8 / 255          # doctest: +SKIP
        (True, True)
    """
    eps = _as_fraction(eps, "eps")
    steps = as_positive_int(steps, "steps")
    step_size = _as_fraction(step_size, "step_size")
    return _attack(engine, image, target, eps, steps, step_size, "pgd", progress)


def fgsm(
    engine: GradCAM,
    image: Any,
    target: AttackTarget = None,
    eps: float = 8 / 255,
    *,
    progress: bool | None = None,
) -> AttackResult:
    """The fast gradient sign method: one step of size ``eps`` (see :func:`pgd`).

    Example:
        >>> from camwidgets.attacks import fgsm
        >>> res = fgsm(engine, picture, eps=4 / 255)   # doctest: +SKIP
    """
    eps = _as_fraction(eps, "eps")
    return _attack(engine, image, target, eps, 1, eps, "fgsm", progress)


def _as_fraction(value: object, name: str) -> float:
    """A real number in (0, 1]: a budget on values in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in (0, 1], got {describe_value(value)}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 < number <= 1.0:
        raise ValueError(
            f"{name} must be in (0, 1] (pixel values span [0, 1]; 8/255 = {8 / 255:.4f} is a "
            f"usual budget), got {number!r}"
        )
    return number


def _pictures(engine: GradCAM, image: Any) -> tuple[list[_Picture], bool]:
    """The pictures to attack and whether the input was a batch (no model pass)."""
    if isinstance(image, torch.Tensor):
        return _tensor_pictures(engine, image), image.dim() == 4 and image.shape[0] > 1
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("got an empty list of images")
        found = [p for one in image for p in _pictures(engine, one)[0]]
        return found, True
    pixels = np.asarray(to_pil(image), dtype=np.float32) / 255.0
    return [_Picture(pixels, tensor=False)], False


def _tensor_pictures(engine: GradCAM, tensor: torch.Tensor) -> list[_Picture]:
    """Preprocessed tensors back in pixel space, through the transform's ``Normalize``."""
    if tensor.dim() not in (3, 4) or not torch.is_floating_point(tensor):
        raise ValueError(
            f"a tensor image must be a float (C, H, W) or (N, C, H, W), got "
            f"{describe_value(tensor)}; accepted: {ACCEPTED}"
        )
    normalize = find_normalize(engine.transform)
    batch = tensor.detach().float().cpu()
    batch = batch[None] if batch.dim() == 3 else batch
    if batch.shape[1] != 3:
        raise ValueError(f"tensor images must have 3 channels to attack, got {batch.shape[1]}")
    if batch.numel() == 0:
        raise ValueError(f"image is empty (shape {tuple(tensor.shape)})")
    if normalize is None:
        raise ValueError(
            "a preprocessed tensor can be attacked only when the engine's transform ends in a "
            "Normalize (to find its pixel space); pass the picture (PIL, numpy, path) instead"
        )
    mean = torch.tensor(normalize[0]).view(1, -1, 1, 1)
    std = torch.tensor(normalize[1]).view(1, -1, 1, 1)
    pixels = batch * std + mean
    if not bool(torch.isfinite(pixels).all()):
        raise ValueError("image contains NaN or infinite pixel values")
    low, high = float(pixels.min()), float(pixels.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(
            f"the tensor, its normalisation undone, spans [{low:.3g}, {high:.3g}], not the "
            "picture range [0, 1]: it was not made by the engine's transform"
        )
    hwc = pixels.clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return [_Picture(np.ascontiguousarray(p), tensor=True) for p in hwc]


def _class_of(value: object, classes: Sequence[str]) -> int | None:
    """A target: None, a class index or a class name -> an index, checked."""
    if value is None:
        return None
    if isinstance(value, str):
        if value not in classes:
            shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
            raise ValueError(f"target {value!r} is not a class name of the model ({shown})")
        return list(classes).index(value)
    index = as_index(value, "target")
    if not 0 <= index < len(classes):
        raise ValueError(
            f"target class {index} is out of range: the model has {len(classes)} classes "
            f"(0..{len(classes) - 1})"
        )
    return index


def _targets(target: AttackTarget, count: int, classes: Sequence[str]) -> list[int | None]:
    """One target per picture."""
    if isinstance(target, (list, tuple)):
        if len(target) != count:
            raise ValueError(f"got {len(target)} targets for {count} pictures; give one each")
        return [_class_of(t, classes) for t in target]
    one = _class_of(target, classes)
    return [one] * count


def _attack(
    engine: GradCAM,
    image: Any,
    target: AttackTarget,
    eps: float,
    steps: int,
    step_size: float,
    method: str,
    progress: bool | None,
) -> AttackResult:
    """Check everything, then attack the pictures group by group (one group per size)."""
    if not isinstance(engine, GradCAM):
        raise TypeError(f"engine must be a camwidgets.GradCAM, got {type(engine).__name__}")
    pictures, batched = _pictures(engine, image)
    goals = _targets(target, len(pictures), engine.classes)
    groups: dict[tuple[tuple[int, ...], bool], list[int]] = {}
    for i, picture in enumerate(pictures):
        groups.setdefault((picture.pixels.shape, picture.tensor), []).append(i)
    replay = differentiable(engine.transform) if any(not p.tensor for p in pictures) else None
    normalize = find_normalize(engine.transform)
    adversarial: dict[int, np.ndarray] = {}
    originals: dict[int, int] = {}
    predicted: dict[int, int] = {}
    with progress_bar(steps * len(groups), f"{method.upper()} attack", progress, "step") as bar:
        for (_, is_tensor), members in groups.items():
            clean = torch.from_numpy(np.stack([pictures[i].pixels for i in members]))
            clean = clean.permute(0, 3, 1, 2).contiguous()
            if is_tensor:
                assert normalize is not None  # checked in _tensor_pictures
                step_fn: Replay = _normalizer(normalize)
            else:
                assert replay is not None
                step_fn = replay
                real = torch.stack([_transformed(engine, pictures[i].pixels) for i in members])
                with torch.no_grad():
                    check_replay(step_fn(clean), real, type(engine.transform).__name__)
            found = _top1(engine, clean, is_tensor, step_fn)
            goal = [g for g in (goals[i] for i in members)]
            attacked = _run(engine, clean, step_fn, found, goal, eps, steps, step_size, bar)
            if not is_tensor:
                attacked = _on_grid(clean, attacked, eps)
            after = _top1(engine, attacked, is_tensor, step_fn)
            hwc = attacked.permute(0, 2, 3, 1).numpy()
            for j, i in enumerate(members):
                adversarial[i] = np.ascontiguousarray(hwc[j], dtype=np.float32)
                originals[i], predicted[i] = found[j], after[j]
    order = range(len(pictures))
    return AttackResult(
        images=tuple(adversarial[i] for i in order),
        original_pictures=tuple(pictures[i].pixels for i in order),
        originals=tuple(originals[i] for i in order),
        predictions=tuple(predicted[i] for i in order),
        targets=tuple(goals),
        classes=tuple(engine.classes),
        method=method,
        eps=eps,
        steps=steps,
        step_size=step_size,
        batched=batched,
    )


def _normalizer(normalize: tuple[list[float], list[float]]) -> Replay:
    """Pixel space -> the model's normalised input, for preprocessed-tensor inputs."""
    mean = torch.tensor(normalize[0]).view(1, -1, 1, 1)
    std = torch.tensor(normalize[1]).view(1, -1, 1, 1)
    return lambda x: (x - mean.to(x.device)) / std.to(x.device)


def _transformed(engine: GradCAM, pixels: np.ndarray) -> torch.Tensor:
    """The engine's own transform of a float picture (through PIL, as the engine does)."""
    out = engine.transform(to_pil(pixels))
    return out.detach().float().cpu()


def _uint8(pictures: torch.Tensor) -> list[np.ndarray]:
    """(N, 3, H, W) float pictures on the 1/255 grid -> uint8 (H, W, 3) arrays."""
    hwc = (pictures * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [np.ascontiguousarray(p) for p in hwc]


def _top1(engine: GradCAM, pictures: torch.Tensor, is_tensor: bool, replay: Replay) -> list[int]:
    """The engine's top-1 for each picture, through its real input path."""
    if is_tensor:
        batch: Any = replay(pictures)
    else:
        batch = _uint8(pictures)
    predictions: Any = engine.predict(batch if len(pictures) > 1 or is_tensor else batch[0], k=1)
    rows = predictions if len(pictures) > 1 else [predictions]
    return [int(row[0].index) for row in rows]


def _run(
    engine: GradCAM,
    clean: torch.Tensor,
    replay: Replay,
    originals: list[int],
    targets: list[int | None],
    eps: float,
    steps: int,
    step_size: float,
    bar: Any,
) -> torch.Tensor:
    """The sign-gradient steps with projection; returns the attacked pictures (CPU, float)."""
    model = engine.model
    device = engine.device
    x0 = clean.to(device)
    goal = torch.tensor([o if t is None else t for o, t in zip(originals, targets, strict=True)])
    # +1: climb the loss of the original class (untargeted); -1: descend towards the target.
    direction = torch.tensor([1.0 if t is None else -1.0 for t in targets], device=device)
    goal = goal.to(device)
    delta = torch.zeros_like(x0)
    with (
        model_lock(model),
        evaluating(model),
        torch.inference_mode(False),
        torch.enable_grad(),
    ):
        for _ in range(steps):
            delta.requires_grad_(True)
            inputs = replay(x0 + delta).to(device=device, dtype=engine.dtype)
            scores = scores_of(model(inputs), engine.score_fn).float()
            losses = F.cross_entropy(scores, goal, reduction="none")
            (grad,) = torch.autograd.grad((losses * direction).sum(), delta)
            with torch.no_grad():
                moved = (delta + step_size * grad.sign()).clamp(-eps, eps)
                delta = (x0 + moved).clamp(0.0, 1.0) - x0
            bar.update(1)
    return (x0 + delta).detach().float().cpu()


def _on_grid(clean: torch.Tensor, attacked: torch.Tensor, eps: float) -> torch.Tensor:
    """Round the change to whole 1/255 levels, never past ``eps`` (the clean picture is on it)."""
    levels = math.floor(eps * 255 + 1e-6)
    change = ((attacked - clean) * 255).round().clamp(-levels, levels)
    return ((clean * 255).round() + change).clamp(0, 255) / 255
