"""Several threads explaining with one engine (or two engines on one model) in train mode.

Counts maps that differ from the single-threaded reference Grad-CAM (tests/engine/reference.py),
modules whose train/eval flag changed, BatchNorm statistics or parameters that changed, and
exceptions. ResNet-18 (seeded random weights, BN statistics made non-trivial), 64 x 64 inputs.

    python benchmarks/threads.py [--threads 4] [--maps 400] [--engines 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from camwidgets import GradCAM
from tests.conftest import SIZE, resnet18, small_transform
from tests.engine.reference import reference_gradcam

LAYERS = ("layer1", "layer2.0.bn2", "layer3", "layer4")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--maps", type=int, default=400)
    parser.add_argument("--engines", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model = resnet18().train()
    engines = [GradCAM(model, transform=small_transform()) for _ in range(args.engines)]
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    pictures = [torch.randn(1, 3, SIZE, SIZE, generator=generator) for _ in range(8)]
    jobs = [
        (i % 8, LAYERS[(i // 8) % len(LAYERS)], (i * 7) % 10, i % 3 == 0) for i in range(args.maps)
    ]
    maps: dict[int, torch.Tensor] = {}
    errors: list[str] = []
    barrier = threading.Barrier(args.threads)

    def work(offset: int) -> None:
        engine = engines[offset % len(engines)]
        barrier.wait()
        for j in range(offset, len(jobs), args.threads):
            picture, layer, target, counterfactual = jobs[j]
            try:
                maps[j] = engine.explain(
                    pictures[picture], layer=layer, target=target, counterfactual=counterfactual
                ).heatmap
            except Exception as err:
                errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flipped = sum(a != b for a, b in zip(flags, (m.training for m in model.modules()), strict=True))
    after = model.state_dict()
    changed = sum(not torch.equal(state[k], after[k]) for k in state)
    wrong = 0
    for j, (picture, layer, target, counterfactual) in enumerate(jobs):
        sign = -1.0 if counterfactual else 1.0
        heat, *_ = reference_gradcam(model, pictures[picture], layer, target, sign)
        if j not in maps or not torch.allclose(maps[j], heat, rtol=1e-4, atol=1e-6):
            wrong += 1
    print(
        f"{args.maps} maps, {args.threads} threads, {args.engines} engine(s) on one train-mode "
        f"ResNet-18: wrong maps {wrong}, exceptions {len(errors)}, modules whose train/eval flag "
        f"changed {flipped}, state-dict tensors changed (BN statistics, weights) {changed}"
    )
    for error in errors[:5]:
        print("  ", error)
    return 1 if wrong or errors or flipped or changed else 0


if __name__ == "__main__":
    raise SystemExit(main())
