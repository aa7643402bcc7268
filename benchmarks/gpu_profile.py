"""Where a GPU call's time goes: the model's own passes against what camwidgets adds.

Times (CUDA-synchronised medians, ms) for ResNet-50 at 224 on the given device: a batch of 64
at layer4 (bare forward, ``explain(cache=False)``, and the host copies its result implies), one
map at layer4 (bare forward, ``explain`` on a fresh image), and one forward + five backwards
to layer1 (the session's floor) against ``explain_classes`` of the five classes.

    python benchmarks/gpu_profile.py --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchvision

from camwidgets import GradCAM


def timed(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Median milliseconds of ``fn`` over ``repeats`` runs after two warm-ups."""
    samples = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.resnet50().eval().to(device)
    engine = GradCAM(model)
    g = torch.Generator().manual_seed(1)
    batch = torch.randn(args.batch, 3, 224, 224, generator=g).to(device)
    fresh = [torch.randn(1, 3, 224, 224, generator=g).to(device) for _ in range(args.repeats + 2)]
    counter = iter(range(1 << 30))
    rows: list[tuple[str, float]] = []

    def forward() -> None:
        with torch.no_grad():
            model(batch)

    rows.append(
        (f"batch {args.batch}: bare forward, no graph", timed(forward, device, args.repeats))
    )
    targets = [0] * args.batch
    rows.append(
        (
            f"batch {args.batch}: explain(cache=False) at layer4",
            timed(
                lambda: engine.explain(batch, "layer4", targets, cache=False), device, args.repeats
            ),
        )
    )
    res = engine.explain(batch, "layer4", targets, cache=False)
    on_device = [res.heatmap.to(device), res.activations.to(device), res.coarse.to(device)]
    rows.append(
        (
            "   of which: copying its heat maps, activations, coarse maps to the host",
            timed(lambda: [t.cpu() for t in on_device], device, args.repeats),
        )
    )
    rows.append(
        (
            "   of which: content key of the batch",
            timed(lambda: engine.prepare(batch.clone()), device, args.repeats),
        )
    )

    def one_forward() -> None:
        with torch.no_grad():
            model(fresh[0])

    rows.append(("one image: bare forward", timed(one_forward, device, args.repeats)))

    def one_map() -> None:
        engine.clear_cache()
        engine.explain(fresh[next(counter) % len(fresh)], "layer4", 0)

    rows.append(("one image: explain at layer4, new image", timed(one_map, device, args.repeats)))
    layers = ["layer1", "layer2", "layer3", "layer4"]
    modules = dict(model.named_modules())

    def floor() -> None:
        outs: list[torch.Tensor] = []
        hooks = [modules[n].register_forward_hook(lambda m, i, o: outs.append(o)) for n in layers]
        try:
            scores = model(fresh[0].clone().requires_grad_(True))
        finally:
            for h in hooks:
                h.remove()
        for c in range(5):
            torch.autograd.grad(scores[0, c], outs, retain_graph=True)

    rows.append(
        ("session floor: forward + 5 backwards to layer1", timed(floor, device, args.repeats))
    )
    engine.watch(layers)

    def session_classes() -> None:
        engine.clear_cache()
        engine.explain_classes(fresh[1], list(range(5)), "layer1")

    rows.append(
        (
            "explain_classes(5 classes) at layer1, watched",
            timed(session_classes, device, args.repeats),
        )
    )
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"## {name}, torch {torch.__version__}, ResNet-50 at 224, medians of {args.repeats} (ms)\n"
    )
    print("| what | ms |\n|---|---|")
    for label, ms in rows:
        print(f"| {label} | {ms:.2f} |")


if __name__ == "__main__":
    main()
