"""The robustness lesson: after an attack flips the prediction, where do the maps point?

The paper says Grad-CAM "is robust to adversarial perturbations": the map of the original
class on the attacked picture still lies on the object. This module measures it on the zoo
(single-object scenes, object masks known exactly), for every combination asked:

- ``flipped``: pictures whose top-1 the attack changed (confirmed by feeding the attacked
  picture back through the engine), out of ``n``;
- ``clean``: of the flipped pictures, how many have the map of the original class on the
  *clean* picture peaking on the object (the baseline);
- ``original``: how many have the map of the original class on the *attacked* picture
  peaking on the object (the paper's claim);
- ``new``: how many have the map of the new (attacked) class on the attacked picture peaking
  on the object.

"Peaks on the object": the maximum of the map (at the model's input size) lies within
``tolerance`` pixels of the object's mask; an all-zero map peaks nowhere (a miss). Run
``python -m camwidgets.lessons.robustness`` for the table (``--help`` for the options).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from camwidgets.attacks import AttackResult, fgsm, pgd
from camwidgets.engine import GradCAM
from camwidgets.zoo.scenes import MarkMode

__all__ = [
    "Row",
    "measure",
    "peaks_on",
    "rows_for",
    "to_markdown",
]

TOLERANCE = 4
"""Pixels a map's peak may lie off the object's mask and still count (the zoo's pointing game)."""


@dataclass(frozen=True)
class Row:
    """One line of the table: a setting and its counts (see the module docstring)."""

    model: str
    attack: str
    eps: float
    layer: str
    method: str
    n: int
    flipped: int
    clean: int
    original: int
    new: int

    @property
    def flip_rate(self) -> float:
        """Share of pictures whose prediction flipped."""
        return self.flipped / self.n if self.n else 0.0


def peaks_on(heatmaps: np.ndarray, masks: np.ndarray, tolerance: int = TOLERANCE) -> np.ndarray:
    """Per map: whether its maximum lies within ``tolerance`` pixels of the mask (bool (N,)).

    Args:
        heatmaps: (N, H, W) maps, ReLU'd (non-negative); an all-zero map is a miss.
        masks: (N, H, W) boolean object masks, in the maps' pixels.
        tolerance: Chebyshev distance (pixels) a peak may lie off the mask.
    """
    heatmaps = np.asarray(heatmaps, dtype=np.float64)
    masks = np.asarray(masks, dtype=bool)
    if heatmaps.ndim != 3 or heatmaps.shape != masks.shape:
        raise ValueError(
            f"heatmaps and masks must both be (N, H, W) of one shape, got {heatmaps.shape} and "
            f"{masks.shape}"
        )
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    out = np.zeros(len(heatmaps), dtype=bool)
    width = heatmaps.shape[2]
    for i, (heat, mask) in enumerate(zip(heatmaps, masks, strict=True)):
        if not heat.max() > 0:
            continue
        row, col = divmod(int(heat.argmax()), width)
        top, bottom = max(0, row - tolerance), row + tolerance + 1
        left, right = max(0, col - tolerance), col + tolerance + 1
        out[i] = bool(mask[top:bottom, left:right].any())
    return out


def rows_for(
    engine: GradCAM,
    res: AttackResult,
    masks: np.ndarray,
    layers: Sequence[str],
    methods: Sequence[str],
    model: str,
    tolerance: int = TOLERANCE,
) -> list[Row]:
    """The table rows of one attack run, one per (layer, method)."""
    originals = list(res.originals)
    predicted = list(res.predictions)
    flipped = np.array(res.successes) if all(t is None for t in res.targets) else None
    if flipped is None:  # a targeted run: count the pictures whose class changed
        flipped = np.array([p != o for p, o in zip(predicted, originals, strict=True)])
    clean_pictures = [_uint8(p) for p in res.original_pictures]
    attacked_pictures = [_uint8(p) for p in res.images]
    rows = []
    for layer in layers:
        for method in methods:
            where = (engine, layer, method)
            clean = peaks_on(_maps(where, clean_pictures, originals), masks, tolerance)
            original = peaks_on(_maps(where, attacked_pictures, originals), masks, tolerance)
            new = peaks_on(_maps(where, attacked_pictures, predicted), masks, tolerance)
            rows.append(
                Row(
                    model=model,
                    attack=res.method,
                    eps=res.eps,
                    layer=layer,
                    method=method,
                    n=len(originals),
                    flipped=int(flipped.sum()),
                    clean=int((clean & flipped).sum()),
                    original=int((original & flipped).sum()),
                    new=int((new & flipped).sum()),
                )
            )
    return rows


def _maps(
    where: tuple[GradCAM, str, str], pictures: list[np.ndarray], classes: list[int]
) -> np.ndarray:
    """(N, H, W) heat maps of ``classes`` on ``pictures`` by (engine, layer, method)."""
    engine, layer, method = where
    out = engine.explain(pictures, layer=layer, target=classes, method=method)
    heat: np.ndarray = out.heatmap.detach().cpu().numpy()
    return heat.reshape(len(pictures), *heat.shape[-2:])


def _uint8(picture: np.ndarray) -> np.ndarray:
    """A float picture on the 1/255 grid as the uint8 array it stands for."""
    return np.round(picture * 255).astype(np.uint8)


def measure(
    models: Sequence[str] = ("shapes", "shortcut"),
    attacks: Sequence[str] = ("fgsm", "pgd"),
    eps: Sequence[float] = (2 / 255, 4 / 255, 8 / 255),
    layers: Sequence[str] = ("layer4",),
    methods: Sequence[str] = ("gradcam",),
    n: int = 60,
    seed: int = 1,
    steps: int = 10,
    progress: bool | None = None,
) -> list[Row]:
    """Attack ``n`` single-object zoo scenes for every model, attack and budget; score the maps.

    The scenes come from collection ``seed`` (the zoo models were trained on collection 0);
    the shortcut model sees its scenes with the corner mark it was trained with ("correct").
    PGD uses ``steps`` steps of ``max(eps / 4, 1/255)``.
    """
    from camwidgets import zoo

    for name in attacks:
        if name not in ("fgsm", "pgd"):
            raise ValueError(f"attack must be 'fgsm' or 'pgd', got {name!r}")
    rows: list[Row] = []
    for name in models:
        loaded = zoo.load(name)
        engine = GradCAM(loaded.model, classes=loaded.classes, transform=loaded.transform)
        mark: MarkMode = "correct" if name == "shortcut" else "none"
        scenes = [zoo.make_scene(seed, i, mark=mark) for i in range(n)]
        pictures = [s.image for s in scenes]
        masks = np.stack([s.masks[0] for s in scenes])
        for attack in attacks:
            for budget in eps:
                if attack == "pgd":
                    step = max(budget / 4, 1 / 255)
                    res = pgd(engine, pictures, eps=budget, steps=steps, step_size=step,
                              progress=progress)  # fmt: skip
                else:
                    res = fgsm(engine, pictures, eps=budget, progress=progress)
                rows += rows_for(engine, res, masks, layers, methods, name)
    return rows


def _count(k: int, of: int) -> str:
    """``k/of (pct)``; a dash when there is nothing to count."""
    return f"{k}/{of} ({k / of:.0%})" if of else "-"


def to_markdown(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table (eps in 1/255 levels)."""
    head = (
        "| model | attack | eps | layer | method | flipped | clean map on object | "
        "original class on attacked | new class on attacked |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r.model} | {r.attack} | {r.eps * 255:.0f}/255 | {r.layer} | {r.method} | "
        f"{_count(r.flipped, r.n)} | {_count(r.clean, r.flipped)} | "
        f"{_count(r.original, r.flipped)} | {_count(r.new, r.flipped)} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the two tables of the lesson (across budgets; across layers and methods)."""
    parser = argparse.ArgumentParser(
        prog="python -m camwidgets.lessons.robustness", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--n", type=int, default=60, help="scenes per model (default 60)")
    parser.add_argument("--seed", type=int, default=1, help="scene collection (default 1)")
    parser.add_argument("--models", default="shapes,shortcut", help="zoo models, comma-separated")
    parser.add_argument(
        "--layers", default="layer2,layer3,layer4", help="layers of the second table"
    )
    parser.add_argument(
        "--methods", default="gradcam,gradcam++,layercam", help="methods of the second table"
    )
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    budgets = (2 / 255, 4 / 255, 8 / 255)
    print(f"Table 1: across budgets and attacks (layer4, Grad-CAM), {args.n} scenes per model\n")
    first = measure(models, ("fgsm", "pgd"), budgets, n=args.n, seed=args.seed, progress=False)
    print(to_markdown(first))
    print(f"Table 2: across layers and methods (PGD, 8/255, 10 steps), {args.n} scenes per model\n")
    second = measure(
        models,
        ("pgd",),
        (8 / 255,),
        layers=[x for x in args.layers.split(",") if x],
        methods=[x for x in args.methods.split(",") if x],
        n=args.n,
        seed=args.seed,
        progress=False,
    )
    print(to_markdown(second))


if __name__ == "__main__":
    main()
