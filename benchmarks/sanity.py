"""The randomisation sanity check (Adebayo et al. 2018) on the zoo, for every method.

For each zoo model and each of ``--scenes`` held-out scenes, ``camwidgets.metrics.randomisation``
randomises the model block by block from the head down (cascading) and measures how far every
method's map moves from the trained model's. The table (Markdown, for
docs/explanation/sanity-checks.md) gives, per model and method, averaged over the scenes:

* Spearman after randomising the head only, and after every block (the whole model);
* the mean Spearman over the steps (the area under the curve, per step), its SSIM and top-10 %
  overlap counterparts;
* how many scenes pass (mean Spearman < 0.3: the map depends on the learned parameters).

    python benchmarks/sanity.py                      # shapes + shortcut, 6 scenes, every method
    python benchmarks/sanity.py --scenes 2 --methods gradcam guided-backprop
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from camwidgets import GradCAM, metrics, zoo
from camwidgets.engine import METHODS
from camwidgets.metrics.randomisation import PASS_BELOW

THRESHOLD = PASS_BELOW


def run(models: list[str], scenes: int, methods: list[str], seed: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    pictures = zoo.sample_scenes(scenes, seed=1)  # held out: the zoo trained on collection 0
    for name in models:
        loaded = zoo.load(name)
        engine = GradCAM(loaded.model, classes=loaded.classes, transform=loaded.transform)
        usable = [m for m in methods if m == metrics.GUIDED_BACKPROP or m in engine.methods()]
        found: dict[str, list[metrics.Randomisation]] = {m: [] for m in usable}
        started = time.perf_counter()
        for scene in pictures:
            checks = metrics.randomisation(
                engine,
                scene.image,
                target=scene.labels[0],
                method=usable,
                seed=seed,
                progress=False,
            )
            for method, check in checks.items():
                found[method].append(check)
        seconds = time.perf_counter() - started
        for method, checks in found.items():
            rows.append(
                {
                    "model": name,
                    "method": method,
                    "head": float(np.mean([c.spearman[0] for c in checks])),
                    "all": float(np.mean([c.spearman[-1] for c in checks])),
                    "mean": float(np.mean([c.mean_spearman for c in checks])),
                    "ssim": float(np.mean([np.mean(c.ssim) for c in checks])),
                    "topk": float(np.mean([np.mean(c.topk) for c in checks])),
                    "passed": sum(c.passed(THRESHOLD) for c in checks),
                    "scenes": len(checks),
                    "steps": len(checks[0].steps),
                    "seconds": seconds,
                }
            )
    return rows


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| model | method | Spearman, head random | Spearman, all random | mean Spearman "
        f"| mean SSIM | mean top-10 % overlap | passes (mean Spearman < {THRESHOLD:g}) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['method']} | {r['head']:.2f} | {r['all']:.2f} | "
            f"{r['mean']:.2f} | {r['ssim']:.2f} | {r['topk']:.2f} | "
            f"{r['passed']}/{r['scenes']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["shapes", "shortcut"])
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=[*METHODS, metrics.GUIDED_BACKPROP])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("THREADS", "2")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    rows = run(args.models, args.scenes, args.methods, args.seed)
    print(table(rows))
    steps = {str(r["model"]): r["steps"] for r in rows}
    print(
        f"\n{args.scenes} scenes (collection 1), cascading block randomisation "
        f"({', '.join(f'{m}: {s} steps' for m, s in steps.items())}), seed {args.seed}, "
        f"torch {torch.__version__}, {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
