"""camwidgets' Grad-CAM engine against captum, pytorch-grad-cam and torchcam, side by side.

Run from the repository root::

    python benchmarks/bench_engine.py                      # resnet18 + resnet50, 5 repeats
    python benchmarks/bench_engine.py --models resnet50 --repeats 9
    python benchmarks/bench_engine.py --device cuda        # on a GPU: batch of 64, peak memory
    python benchmarks/bench_engine.py --quick              # smoke run for CI (~1 minute)

Scenarios, on torchvision models with seeded random weights, 224x224 inputs:

(a) one map at ``layer4`` for a fresh image (a new random tensor each repeat, the same for every
    library, so camwidgets' cache never hits);
(b) a 40-map session on one image: layer1..layer4 x top-5 classes x normal/counterfactual, each
    peer used as its documentation shows (plus torchcam tuned: one extractor over the four layers
    and ``retain_graph=True``); camwidgets: ``watch`` the four layers, then 40 ``explain`` calls
    in that loop order;
(c) a batch (16 images on the CPU, 64 on a GPU) at ``layer4``, in images per second; camwidgets
    uses its cache-free batch path ``explain(..., cache=False)``;
(d) camwidgets only: a fully cached ``explain`` against the bare arithmetic of its map.

All libraries run in one process, each on its own ``copy.deepcopy`` of the model, interleaved
inside every repeat in a fresh random order, on the same input tensors. Times are medians; on a
GPU each timed call ends with ``torch.cuda.synchronize`` and its peak memory
(``torch.cuda.max_memory_allocated`` above the start) is reported. The parts live in
``benchmarks/engine/``: ``adapters.py`` (one per library), ``scenarios.py``, ``report.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

# OpenMP threads that spin while waiting make every library 10-30x slower as soon as another
# process competes for the cores (measured: a resnet18 forward, 2 threads, on 2 busy cores:
# 3.1 s spinning, 0.12 s passive). Passive waiting costs little on an idle machine and keeps
# the comparison about the libraries rather than the scheduler. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.engine.adapters import import_peers
from benchmarks.engine.report import report
from benchmarks.engine.scenarios import Settings, run_model


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (unchanged options, plus --device and --batch)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=["resnet18", "resnet50"], help="torchvision model names"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed repeats for (c); (a) gets 3x as many"
    )
    parser.add_argument(
        "--session-repeats",
        type=int,
        default=None,
        help="timed repeats for (b) (default: --repeats)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument(
        "--device", default="cpu", help="cpu, cuda or cuda:N (default cpu); the models move there"
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="images in (c) (default 16 on the CPU, 64 on CUDA)"
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: resnet18, 2 repeats")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any target fails (default: only correctness targets)",
    )
    args = parser.parse_args(argv)
    try:
        args.device = torch.device(args.device)
    except RuntimeError as error:
        parser.error(f"--device: {error}")
    if args.device.type not in ("cpu", "cuda"):
        parser.error(f"--device must be cpu or cuda[:N], got {str(args.device)!r}")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda, but torch sees no CUDA device on this machine")
    if args.quick:
        args.models, args.repeats, args.session_repeats = ["resnet18"], 2, 1
    if args.session_repeats is None:
        args.session_repeats = args.repeats
    if args.batch is None:
        args.batch = 64 if args.device.type == "cuda" else 16
    if args.repeats < 1 or args.session_repeats < 1 or args.batch < 1:
        parser.error("repeats and batch must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    peers = import_peers()
    torch.set_num_threads(args.threads)
    settings = Settings(args.repeats, args.session_repeats, args.batch, args.device)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = [run_model(name, settings, peers, log) for name in args.models]
    found = report(results, settings, peers["versions"])
    relevant = [ok for _, ok, correctness in found if args.strict or correctness]
    return 0 if all(relevant) else 1


if __name__ == "__main__":
    sys.exit(main())
