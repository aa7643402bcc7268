"""Every CAM method on the shapes zoo: pointing game, deletion / insertion AUC, confidence, time.

Run from the repository root::

    python benchmarks/bench_methods.py                 # 30 two-object scenes, 2 layers, ~4 min
    python benchmarks/bench_methods.py --scenes 200 --steps 100 --layers layer4
    python benchmarks/bench_methods.py --quick         # 3 scenes, a smoke run

Model: ``camwidgets.zoo.load("shapes")`` (96x96 input, ``layer4`` is 12x12). Scenes: two-object
scenes of a held-out collection (``--seed``, default 100, as ``camwidgets.zoo.evaluate``); one
map per object, explaining that object's class, at each of ``--layers`` (default ``layer4``, the
layer the pooled head reads, where Grad-CAM, CAM, XGrad-CAM and HiResCAM coincide in theory,
and ``layer3``, also 12x12 since ``layer4`` has stride 1, where they do not).

Per method, over all maps:

* pointing game: the map's maximum on the explained object's mask (exactly, and within 4 px,
  Euclidean; ``camwidgets.metrics.pointing_game``);
* deletion and insertion AUC (Petsiuk et al.; ``--steps`` steps, deletion to zeros of the
  model input, insertion from a Gaussian blur, sigma 5), mean +- standard error;
* average drop and increase in confidence (Chattopadhay et al.);
* time per map, median of single-image ``explain`` calls: "new image" from an empty cache (a
  forward, the backward(s) the method needs, the method), and "switch" on a cached (image,
  class, layer) that another gradient method already explained.

Rows beside the methods: Guided Grad-CAM's pixel map (sum over colour channels of
|guided backprop x Grad-CAM|), and two random-map baselines (uniform noise per pixel, and
noise on the layer's grid resized bilinearly).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # spinning OpenMP threads stall a busy box

import argparse
import datetime
import platform
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from camwidgets import CamResult, GradCAM, metrics, zoo
from camwidgets.engine.methods import METHODS, ScoreCAM
from camwidgets.zoo.scenes import Scene, make_scene

GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam")


@dataclass
class Row:
    """The figures of one method (or baseline) over all maps."""

    name: str
    pointing: float
    pointing_tolerant: float
    deletion: tuple[float, float]
    insertion: tuple[float, float]
    drop: float
    increase: float
    new_image_ms: float | None
    switch_ms: float | None


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error."""
    array = np.asarray(values, dtype=np.float64)
    se = float(array.std(ddof=1) / np.sqrt(len(array))) if len(array) > 1 else 0.0
    return float(array.mean()), se


def method_for(name: str, batch_size: int) -> str | ScoreCAM:
    """The method argument: Score-CAM with its batch size and no bar, else the name."""
    return ScoreCAM(batch_size=batch_size, progress=False) if name == "scorecam" else name


def saliency_of(res: CamResult, name: str) -> torch.Tensor:
    """The map a method is scored by: the heatmap, or |Guided Grad-CAM| summed over colours."""
    if name == "guided-gradcam":
        assert res.guided is not None
        guided: torch.Tensor = res.guided.abs().sum(dim=-3)
        return guided
    heatmap: torch.Tensor = res.heatmap
    return heatmap


def time_maps(
    engine: GradCAM,
    items: list[tuple[np.ndarray, int]],
    names: Sequence[str],
    layer: str,
    batch_size: int,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Median ms per map (new image, switch), methods interleaved in a fresh order per map."""
    new: dict[str, list[float]] = {n: [] for n in names}
    switch: dict[str, list[float]] = {n: [] for n in names}
    order = random.Random(seed)
    for image, label in items:
        for name in order.sample(list(names), len(names)):
            method = method_for(name, batch_size)
            engine.clear_cache()
            start = time.perf_counter()
            engine.explain(image, layer=layer, target=label, method=method)
            new[name].append(1e3 * (time.perf_counter() - start))
            engine.clear_cache()
            other = "gradcam++" if name != "gradcam++" else "layercam"
            engine.explain(image, layer=layer, target=label, method=other)
            start = time.perf_counter()
            engine.explain(image, layer=layer, target=label, method=method)
            switch[name].append(1e3 * (time.perf_counter() - start))
    return {n: (statistics.median(new[n]), statistics.median(switch[n])) for n in names}


def score_rows(
    engine: GradCAM,
    scenes: Sequence[Scene],
    layer: str,
    names: Sequence[str],
    args: argparse.Namespace,
) -> list[Row]:
    """All figures of every method and both random baselines."""
    images = [s.image for s in scenes for _ in s.labels]
    labels = [c for s in scenes for c in s.labels]
    masks = np.stack([m for s in scenes for m in s.masks])
    batch = engine.prepare(images)
    size = batch.size
    _, height, width = engine.layer_shapes[layer]
    grid = (height, width)
    candidates: dict[str, torch.Tensor] = {}
    for name in names:
        res = engine.explain(batch, layer=layer, target=labels, method=method_for(name, 64))
        candidates[name] = saliency_of(res, name)
        engine.clear_cache()
    count = len(labels)
    candidates["random (per pixel)"] = torch.stack(
        [metrics.random_map(size, seed=i) for i in range(count)]
    )
    candidates[f"random ({grid[0]}x{grid[1]} grid)"] = torch.stack(
        [metrics.random_map(size, grid=grid, seed=i) for i in range(count)]
    )
    rows = []
    for name, maps in candidates.items():
        print(f"  scoring {name} ...", file=sys.stderr, flush=True)
        curves = metrics.faithfulness(
            engine,
            batch,
            maps,
            labels,
            steps=args.steps,
            batch_size=args.batch_size,
            progress=not args.quiet,
        )
        assert isinstance(curves, list)
        change = metrics.confidence_change(engine, batch, maps, labels, batch_size=args.batch_size)
        rows.append(
            Row(
                name=name,
                pointing=metrics.pointing_game(maps, masks).accuracy,
                pointing_tolerant=metrics.pointing_game(maps, masks, tolerance=4).accuracy,
                deletion=mean_se([c.deletion.auc for c in curves]),
                insertion=mean_se([c.insertion.auc for c in curves]),
                drop=change.average_drop,
                increase=change.increase,
                new_image_ms=None,
                switch_ms=None,
            )
        )
    return rows


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| method | pointing game | pointing, 4 px | deletion AUC (lower is better) "
        "| insertion AUC (higher is better) | average drop % | increase in confidence % "
        "| ms per map, new image | ms per map, switch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = [f"{v:.1f}" if v is not None else "-" for v in (r.new_image_ms, r.switch_ms)]
        lines.append(
            f"| {r.name} | {100 * r.pointing:.1f}% | {100 * r.pointing_tolerant:.1f}% "
            f"| {r.deletion[0]:.3f} ± {r.deletion[1]:.3f} "
            f"| {r.insertion[0]:.3f} ± {r.insertion[1]:.3f} "
            f"| {r.drop:.1f} | {r.increase:.1f} | {ms[0]} | {ms[1]} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: measure, print the table (and write it to ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=30, help="two-object scenes (2 maps each)")
    parser.add_argument("--seed", type=int, default=100, help="held-out scene collection")
    parser.add_argument("--layers", nargs="+", default=["layer4", "layer3"])
    parser.add_argument("--steps", type=int, default=50, help="deletion/insertion steps")
    parser.add_argument("--batch-size", type=int, default=64, help="perturbed images per forward")
    parser.add_argument("--timed", type=int, default=10, help="maps timed per method")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 scenes, 3 timed maps")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--out", help="also write the table (markdown) to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.scenes, args.timed = 3, 3
    torch.set_num_threads(args.threads)
    shapes = zoo.load("shapes")
    engine = GradCAM(shapes.model, transform=shapes.transform, classes=shapes.classes)
    scenes = [make_scene(args.seed, i, n_objects=2) for i in range(args.scenes)]
    items = [(s.image, c) for s in scenes for c in s.labels][: args.timed]
    started = time.perf_counter()
    parts = []
    for layer in args.layers:
        names = [n for n in METHODS if n in engine.methods(layer)]
        rows = score_rows(engine, scenes, layer, names, args)
        timings = time_maps(engine, items, names, layer, 64, args.seed)
        for row in rows:
            if row.name in timings:
                row.new_image_ms, row.switch_ms = timings[row.name]
        shape = "x".join(map(str, engine.layer_shapes[layer][1:]))
        parts.append(f"**{layer}** ({shape})\n\n" + table(rows))
    elapsed = time.perf_counter() - started
    command = "python benchmarks/bench_methods.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    header = (
        f"shapes zoo, {2 * args.scenes} maps per layer ({args.scenes} two-object scenes, "
        f"seed {args.seed}), {args.steps} deletion/insertion steps; timing: median of "
        f"{len(items)} maps; {datetime.date.today()}, {platform.platform()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({args.threads} threads), "
        f"{elapsed:.0f} s in all. Command: `{command.strip()}`"
    )
    text = header + "\n\n" + "\n\n".join(parts)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
