"""Throughput of the dataset audit (images/s): locally and on a local Ray instance, against the
engine's own batch path.

Run from the repository root::

    python benchmarks/bench_audit.py                       # zoo:shortcut, 2048 scenes, local + Ray
    python benchmarks/bench_audit.py --model resnet18 --n 512 --no-ray
    python benchmarks/bench_audit.py --quick               # smoke run (~1 minute)

Scenarios, on the same pictures (generated before timing, held in memory):

(engine)  ``engine.explain(batch, layer, cache=False)`` over pre-transformed tensors, batch by
          batch: the floor (no preprocessing, no statistics, no writing);
(tensors) ``audit()`` of a dataset of those pre-transformed tensors: adds the statistics, the
          top-k, the Parquet writes and the item plumbing;
(pictures) ``audit()`` of a dataset of uint8 pictures: adds the transform (PIL, resize,
          normalise) per image, as a real folder of images would (without the file decoding);
(ray)     the (pictures) audit with ``backend="ray"`` on ``ray.init(num_cpus=threads)``, one
          engine per actor, ``concurrency`` actors; the time includes starting the actors and
          loading the model in each (a fresh pool per call), not ``ray.init`` (reported apart);
          the steady row is the rate between the first and the last result written.

Local scenarios are interleaved in every repeat, in a fresh (seeded) random order; medians are
reported. ``torch`` uses
``--threads`` threads in-process; Ray actors get one thread each (Ray sets OMP_NUM_THREADS to
an actor's CPUs), ``--threads`` actors by default.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_engine.py: spinning threads

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camwidgets import GradCAM
from camwidgets.audit import audit


def build(name: str) -> GradCAM:
    """The engine: a zoo model, or a torchvision model with seeded random weights."""
    if name.startswith("zoo:"):
        from camwidgets import zoo

        bundle = zoo.load(name.removeprefix("zoo:"))
        return GradCAM(bundle.model, classes=bundle.classes, transform=bundle.transform)
    import torchvision

    torch.manual_seed(0)
    return GradCAM(getattr(torchvision.models, name)(weights=None).eval())


def pictures(name: str, n: int) -> list[np.ndarray]:
    """``n`` pictures: zoo scenes with their marks for zoo models, seeded noise otherwise."""
    if name.startswith("zoo:"):
        from camwidgets.zoo.scenes import make_scene

        return [make_scene(11, i, mark="correct").image for i in range(n)]
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8) for _ in range(n)]


def steady_rate(folder: Path) -> float:
    """Images/s between the first and the last part file written (actor start-up excluded)."""
    import pyarrow.parquet as pq

    parts = sorted(folder.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    if len(parts) < 2:
        return float("nan")
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts[1:])
    return rows / (parts[-1].stat().st_mtime - parts[0].stat().st_mtime)


def timed(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="zoo:shortcut", help="zoo:NAME or a torchvision name")
    parser.add_argument("--n", type=int, default=2048, help="images per run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="local repeats (median)")
    parser.add_argument("--ray-repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--concurrency", type=int, default=None, help="Ray actors (default threads)"
    )
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--quick", action="store_true", help="n=256, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.repeats, args.ray_repeats = 256, 1, 1
    torch.set_num_threads(args.threads)
    engine = build(args.model)
    images = pictures(args.model, args.n)
    tensors = [engine.transform(Image.fromarray(p)) for p in images]
    layer = engine.default_layer
    work = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    spec: Any = args.model if args.model.startswith("zoo:") else engine

    def run_engine() -> None:
        for i in range(0, args.n, args.batch_size):
            batch = torch.stack(tensors[i : i + args.batch_size])
            engine.explain(batch, layer, cache=False)

    steady: list[float] = []

    def run_audit(data: list[Any], backend: str = "local") -> None:
        options: dict[str, Any] = {}
        if backend == "ray":
            # Every result table becomes a part file at once, so the parts' times tell the
            # steady rate once the actors are up.
            options["concurrency"] = args.concurrency or args.threads
            options["seconds_per_part"] = 0.0
        audit(
            data,
            spec,
            work / f"{backend}.parquet",
            layer=layer,
            batch_size=args.batch_size,
            overwrite=True,
            progress=False,
            backend=backend,  # type: ignore[arg-type]
            **options,
        )
        if backend == "ray":
            steady.append(steady_rate(work / f"{backend}.parquet"))

    run_engine()  # warm-up, untimed
    samples: dict[str, list[float]] = {"engine": [], "tensors": [], "pictures": []}
    scenarios: dict[str, Callable[[], None]] = {
        "engine": run_engine,
        "tensors": lambda: run_audit(tensors),
        "pictures": lambda: run_audit(images),
    }
    order = random.Random(0)
    for _ in range(args.repeats):
        names = list(scenarios)
        order.shuffle(names)  # a fresh order every repeat: no scenario always goes first
        for name in names:
            samples[name].append(timed(scenarios[name]))
    ray_init = None
    if not args.no_ray:
        import ray

        ray_init = timed(lambda: ray.init(num_cpus=args.threads, include_dashboard=False,
                                          log_to_driver=False))  # fmt: skip
        try:
            samples["ray"] = [
                timed(lambda: run_audit(images, "ray")) for _ in range(args.ray_repeats)
            ]
        finally:
            ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    floor = statistics.median(samples["engine"])
    print(
        f"\naudit throughput: {args.model}, layer {layer}, {args.n} images, batch "
        f"{args.batch_size}, {args.threads} threads, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}"
    )
    print("| scenario | seconds (median) | images/s | vs engine |")
    print("|---|---|---|---|")
    for name, values in samples.items():
        seconds = statistics.median(values)
        print(f"| {name} | {seconds:.2f} | {args.n / seconds:.0f} | {floor / seconds:.2f}x |")
    if ray_init is not None:
        rate = statistics.median(steady)
        print(
            f"| ray, steady (after the actors started) | - | {rate:.0f} | "
            f"{rate * floor / args.n:.2f}x |"
        )
        print(f"(ray.init: {ray_init:.1f} s, not included; the ray row includes actor start-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
