"""Measure the zoo models: accuracy, shortcut collapse, and Grad-CAM pointing game.

Run ``python -m camwidgets.zoo.evaluate --model shapes`` (or ``shortcut``). The Grad-CAM here is
a deliberately plain reference (one forward hook, ``torch.autograd.grad``), independent of
``camwidgets.engine``, so the zoo's figures do not depend on the code they are used to test.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from camwidgets.zoo.scenes import MarkMode, Scene, make_scene, mark_box, to_tensor

__all__ = [
    "PointingResult",
    "accuracy",
    "dilate",
    "main",
    "pointing_game",
    "reference_gradcam",
    "score_maps",
    "shortcut_report",
]

TOLERANCE = 4
"""Pointing-game tolerance: a hit may land up to this many pixels (Chebyshev) off the mask.

Half the layer4 stride: a 12x12 map resized to 96x96 peaks next to one of its cell centres,
which are 8 pixels apart, so even a perfect map may peak up to 4 pixels off a thin shape (a
star's arm, a ring's band)."""


def _batch(scenes: Sequence[Scene]) -> torch.Tensor:
    """Stack scenes into one normalised (N, 3, H, W) batch."""
    return torch.stack([to_tensor(s.image) for s in scenes])


@torch.no_grad()
def accuracy(
    model: nn.Module, seed: int, n: int, *, mark: MarkMode = "none", batch_size: int = 100
) -> float:
    """Top-1 accuracy on ``n`` fresh single-object scenes of collection ``seed``."""
    correct = 0
    for start in range(0, n, batch_size):
        scenes = [make_scene(seed, i, mark=mark) for i in range(start, min(n, start + batch_size))]
        pred = model(_batch(scenes)).argmax(1)
        correct += int((pred == torch.tensor([s.labels[0] for s in scenes])).sum())
    return correct / n


def reference_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    targets: torch.Tensor,
    *,
    counterfactual: bool = False,
) -> torch.Tensor:
    """Grad-CAM maps ``ReLU(sum_k alpha_k A^k)``, bilinear-resized to the input size.

    ``alpha_k`` is the spatial mean of ``d logit_target / d A^k``; negated for the
    counterfactual map. Returns float32 (N, H, W).
    """
    module = model.get_submodule(layer)
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
        captured.append(out)
        # Hand a copy downstream so that a later in-place op cannot alter what we captured.
        return out.clone()

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x)
            (grads,) = torch.autograd.grad(logits.gather(1, targets[:, None]).sum(), captured[0])
    finally:
        handle.remove()
    acts = captured[0].detach()
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    if counterfactual:
        alpha = -alpha
    cam = F.relu((alpha * acts).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return cam[:, 0].float()


def dilate(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Grow a boolean mask by ``pixels`` in every direction (square neighbourhood)."""
    if pixels <= 0:
        return mask.copy()
    t = torch.from_numpy(mask).float()[None, None]
    grown = F.max_pool2d(t, 2 * pixels + 1, stride=1, padding=pixels)
    return grown[0, 0].numpy() > 0


def _argmax_yx(heatmap: torch.Tensor) -> tuple[int, int]:
    """Row and column of a map's maximum."""
    flat = int(heatmap.flatten().argmax())
    return divmod(flat, heatmap.shape[-1])


@dataclass(frozen=True)
class PointingResult:
    """Pointing-game outcome over every (scene, object) pair.

    Attributes:
        n: number of maps (two per two-object scene).
        hits: maps whose maximum is on the explained object (within the tolerance).
        counterfactual_outside: counterfactual maps whose maximum is off the explained object.
        empty: Grad-CAM maps that were zero everywhere (counted as misses).
        counterfactual_empty: counterfactual maps that were zero everywhere (counted as misses).
        tolerance: dilation of the mask for the hit test, in pixels.
    """

    n: int
    hits: int
    counterfactual_outside: int
    empty: int
    counterfactual_empty: int
    tolerance: int

    @property
    def pointing(self) -> float:
        """Fraction of hits."""
        return self.hits / self.n

    @property
    def counterfactual(self) -> float:
        """Fraction of counterfactual maps peaking off the explained object."""
        return self.counterfactual_outside / self.n


def score_maps(
    scenes: Sequence[Scene],
    heatmaps: torch.Tensor,
    counterfactuals: torch.Tensor,
    *,
    tolerance: int = TOLERANCE,
) -> PointingResult:
    """Score maps laid out as scene 0 object 0, scene 0 object 1, scene 1 object 0, ..."""
    hits = outside = empty = cf_empty = 0
    masks = [m for s in scenes for m in s.masks]
    for mask, cam, cf in zip(masks, heatmaps, counterfactuals, strict=True):
        if float(cam.max()) > 0:
            hits += bool(dilate(mask, tolerance)[_argmax_yx(cam)])
        else:
            empty += 1
        if float(cf.max()) > 0:
            # Strict: the counterfactual peak must be off the object itself, no tolerance.
            outside += not bool(mask[_argmax_yx(cf)])
        else:
            cf_empty += 1
    return PointingResult(len(masks), hits, outside, empty, cf_empty, tolerance)


def pointing_game(
    model: nn.Module,
    seed: int,
    n: int,
    *,
    layer: str = "layer4",
    tolerance: int = TOLERANCE,
) -> PointingResult:
    """Explain both classes of ``n`` fresh two-object scenes; score each map."""
    scenes = [make_scene(seed, i, n_objects=2) for i in range(n)]
    x = _batch(scenes).repeat_interleave(2, dim=0)
    targets = torch.tensor([c for s in scenes for c in s.labels])
    cams = reference_gradcam(model, x, layer, targets)
    cfs = reference_gradcam(model, x, layer, targets, counterfactual=True)
    return score_maps(scenes, cams, cfs, tolerance=tolerance)


MARK_REACH = 16
"""How far (pixels) off the mark a shortcut map's peak may be: two layer4 cells of 8 pixels,
since a cell's activation reflects a mark anywhere in its receptive field."""


def shortcut_report(
    model: nn.Module, seed: int, n: int, *, layer: str = "layer4", reach: int = MARK_REACH
) -> dict[str, float]:
    """Accuracy with correct, swapped and no marks, and where Grad-CAM looks.

    Returns ``accuracy_correct``, ``accuracy_swapped``, ``accuracy_none``, ``peak_on_mark`` (maps
    whose maximum lies within ``reach`` pixels of the mark) and ``mass_on_mark`` (mean share of
    each map's total inside that region, which covers ``((6 + 2 reach) / 96)^2`` of the image).
    """
    modes: tuple[MarkMode, ...] = ("correct", "swapped", "none")
    report = {f"accuracy_{m}": accuracy(model, seed, n, mark=m) for m in modes}
    scenes = [make_scene(seed, i, mark="correct") for i in range(n)]
    x = _batch(scenes)
    with torch.no_grad():
        pred = model(x).argmax(1)
    cams = reference_gradcam(model, x, layer, pred)
    top, left, bottom, right = mark_box(x.shape[-1])
    box = np.zeros(x.shape[-2:], dtype=bool)
    box[top:bottom, left:right] = True
    near = dilate(box, reach)
    report["peak_on_mark"] = float(np.mean([near[_argmax_yx(c)] for c in cams]))
    region = torch.from_numpy(near)
    mass = cams[:, region].sum(1) / cams.flatten(1).sum(1).clamp_min(1e-12)
    report["mass_on_mark"] = float(mass.mean())
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: print the figures for one zoo model."""
    from camwidgets.zoo.registry import load

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("shapes", "shortcut"), default="shapes")
    parser.add_argument("--seed", type=int, default=100, help="held-out collection seed")
    parser.add_argument("--n", type=int, default=500, help="scenes per measurement")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.model).model
    if args.model == "shapes":
        acc = accuracy(model, args.seed, args.n)
        print(f"held-out accuracy (single objects, n={args.n}): {acc:.4f}")
        res = pointing_game(model, args.seed, args.n)
        print(
            f"pointing game (two-object scenes, {res.n} maps, tolerance {res.tolerance}px): "
            f"{res.pointing:.4f}  (empty maps: {res.empty})"
        )
        print(
            f"counterfactual peak off the object: {res.counterfactual:.4f}  "
            f"(empty maps: {res.counterfactual_empty})"
        )
        exact = pointing_game(model, args.seed, args.n, tolerance=0)
        print(f"pointing game without tolerance: {exact.pointing:.4f}")
    else:
        for key, value in shortcut_report(model, args.seed, args.n).items():
            print(f"{key}: {value:.4f}")


if __name__ == "__main__":
    main()
