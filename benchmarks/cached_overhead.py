"""What a fully cached ``explain`` costs beyond its own arithmetic (ResNet-50, 224, CPU).

After one forward and the backwards of five classes at full depth, every later call (a layer
switch or a counterfactual toggle) runs no model pass. Its time is the map arithmetic
(alpha-weighted sum, ReLU, bilinear resize, softmax, copies to the host) plus the engine's
overhead: argument checks, input recognition, the model-version check, the lock, the cache
lookup and assembling the result. The arithmetic alone is timed by re-doing exactly those
operations on the same tensors; overhead = median(call) - median(arithmetic), interleaved.

    python benchmarks/cached_overhead.py [--repeats 300] [--threads 1]

Cases: the same tensor object each call (the panel's path), and a new tensor object with the
same pixels each call (content is re-hashed: SHA-256 on the CPU).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
import torchvision

from camwidgets import GradCAM

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = torchvision.models.resnet50(weights=None).eval().to(device)
    engine = GradCAM(model)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    engine.gradient_depth = "layer1"
    top = [p.index for p in engine.predict(x, k=5)]  # type: ignore[union-attr]
    for c in top:
        engine.explain(x, layer="layer4", target=c)
    calls = [(layer, c, cf) for layer in LAYERS for c in top for cf in (False, True)]
    passes = engine.cache_info().forwards + engine.cache_info().backwards

    def arithmetic(res: object) -> None:
        weights, activations = res.weights, res.activations  # type: ignore[attr-defined]
        coarse = torch.einsum("nk,nkhw->nhw", weights[None], activations[None])
        heat = F.interpolate(
            coarse.clamp_min(0).unsqueeze(1), size=(224, 224), mode="bilinear", align_corners=False
        ).squeeze(1)
        logits = res.logits  # type: ignore[attr-defined]
        probabilities = logits[None].softmax(dim=1)
        float(logits[0]), float(probabilities[0, 0])
        heat.cpu(), coarse.cpu()

    samples: dict[str, list[float]] = {"same object": [], "same pixels": [], "arithmetic": []}
    results = {
        call: engine.explain(x, layer=call[0], target=call[1], counterfactual=call[2])
        for call in calls
    }
    for i in range(args.repeats):
        layer, c, cf = calls[i % len(calls)]
        sync()
        start = time.perf_counter()
        engine.explain(x, layer=layer, target=c, counterfactual=cf)
        sync()
        samples["same object"].append(time.perf_counter() - start)
        other = x.clone()
        sync()
        start = time.perf_counter()
        engine.explain(other, layer=layer, target=c, counterfactual=cf)
        sync()
        samples["same pixels"].append(time.perf_counter() - start)
        res = results[(layer, c, cf)]
        start = time.perf_counter()
        arithmetic(res)
        samples["arithmetic"].append(time.perf_counter() - start)
    assert engine.cache_info().forwards + engine.cache_info().backwards == passes, "not cached"
    median = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
    where = f"{device.type.upper()}, {args.threads} CPU thread(s)"
    print(f"ResNet-50, 224, {where}, {args.repeats} calls each, medians:")
    print(f"  map arithmetic alone          {median['arithmetic']:.3f} ms")
    for case in ("same object", "same pixels"):
        over = median[case] - median["arithmetic"]
        print(f"  cached explain, {case:<12}  {median[case]:.3f} ms  (overhead {over:.3f} ms)")
    key_time(device, sync)


def key_time(device: torch.device, sync: object) -> None:
    """Content key of a batch of 64 (224 x 224) where it lives vs a host copy + blake2b."""
    import hashlib

    from camwidgets.engine.inputs import fingerprint

    batch = torch.randn(64, 3, 224, 224, device=device)
    timings: dict[str, list[float]] = {"key on its device": [], "host copy + blake2b": []}
    for _ in range(5):
        sync()  # type: ignore[operator]
        start = time.perf_counter()
        fingerprint(batch)
        sync()  # type: ignore[operator]
        timings["key on its device"].append(time.perf_counter() - start)
        start = time.perf_counter()
        hashlib.blake2b(batch.cpu().numpy().tobytes(), digest_size=20).hexdigest()
        timings["host copy + blake2b"].append(time.perf_counter() - start)
    for name, values in timings.items():
        print(f"  batch of 64, {name:<20} {statistics.median(values) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
