"""The scenarios, how they are timed, and how maps are checked against each other.

(a) one map at ``layer4`` of a fresh image; (b) a 40-map session on one image (layer1..layer4 x
top-5 x normal/counterfactual); (c) a batch at ``layer4`` in images per second; (d) camwidgets
only: the overhead of a fully cached ``explain`` (layer switch, counterfactual toggle) on top of
the arithmetic of its map. All libraries run interleaved inside every repeat, in a fresh seeded
random order, on the same inputs; on a CUDA device every timed region ends with a synchronise
and its peak memory above what was allocated before it is recorded.
"""

from __future__ import annotations

import copy
import gc
import math
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from camwidgets import GradCAM

from .adapters import Library, Map, make_all, module_named

SIZE = 224
LAYERS = ("layer1", "layer2", "layer3", "layer4")
BN_LAYER = "layer4.1.bn2"
TOP = 5
TARGET_CLASS = 281  # (a): any fixed class; the weights are random anyway


@dataclass(frozen=True)
class Settings:
    """What one run measures: repeats per scenario, the batch size, the device."""

    repeats: int
    session_repeats: int
    batch: int
    device: torch.device
    overhead_calls: int = 200

    @property
    def one_repeats(self) -> int:
        """Single maps are short and noisy: three times the samples."""
        return 3 * self.repeats

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


# -- timing -------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so a timer measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Timed:
    """Seconds per timed repeat and peak device bytes above the start (CUDA only) per library."""

    seconds: dict[str, list[float]] = field(default_factory=dict)
    peak_bytes: dict[str, int] = field(default_factory=dict)
    first: dict[str, Any] = field(default_factory=dict)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, int, Any]:
    """(seconds, peak bytes allocated above the start or 0 on the CPU, result) of one call."""
    gc.collect()
    synchronize(device)
    base = 0
    if device.type == "cuda":
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else 0
    return seconds, peak, out


def round_robin(
    libs: Sequence[Library],
    repeats: int,
    run: Callable[[Library, int], Any],
    device: torch.device,
    warmup: int = 1,
) -> Timed:
    """Run ``run(lib, i)`` for every library in each repeat, in a fresh random order each time.

    A random order (seeded) rather than a rotation, so that no library always follows the same
    one (a predecessor's freed memory or warm caches would otherwise bias it). Each library is
    reset before and after its run, untimed, so none holds memory while the others run. Repeat
    indices < ``warmup`` are not timed. Keeps each library's first output for agreement checks.
    """
    result = Timed({lib.name: [] for lib in libs}, {lib.name: 0 for lib in libs})
    order = random.Random(0)
    for i in range(warmup + repeats):
        for lib in order.sample(list(libs), len(libs)):
            lib.reset()
            seconds, peak, out = timed(partial(run, lib, i), device)
            lib.reset()
            if i >= warmup:
                result.seconds[lib.name].append(seconds)
                result.peak_bytes[lib.name] = max(result.peak_bytes[lib.name], peak)
            result.first.setdefault(lib.name, out)
            del out
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- references and agreement -----------------------------------------------------------------


def reference_map(
    model: nn.Module, x: torch.Tensor, layer: str, target: int, sign: float = 1.0
) -> Map:
    """From-scratch Grad-CAM: the layer's output kept intact by a cloning hook, autograd.grad."""
    kept: list[torch.Tensor] = []

    def hook(_: nn.Module, __: Any, output: torch.Tensor) -> torch.Tensor:
        kept.append(output)
        return output.clone()  # downstream in-place ops hit the copy, never `output`

    handle = module_named(model, layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            scores = model(x.clone().requires_grad_(True))
            (grad,) = torch.autograd.grad(sign * scores[0, target], kept[0])
    finally:
        handle.remove()
    alpha = grad.float().mean(dim=(2, 3), keepdim=True)
    coarse = (alpha * kept[0].detach().float()).sum(dim=1, keepdim=True).clamp_min(0)
    return F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]


@dataclass(frozen=True)
class Agreement:
    max_abs: float
    pearson: float


def _scaled(m: Map, how: str) -> np.ndarray:
    a = m.detach().double().cpu().numpy()
    low = a.min() if how == "min-max" else 0.0
    span = a.max() - low
    return (a - low) / span if span > 0 else a - low


def agreement(peer: Map, ours: Map, how: str = "max") -> Agreement:
    """Both maps scaled alike (divided by their max, or min-max): max |diff| and Pearson r."""
    a, b = _scaled(peer, how), _scaled(ours, how)
    if a.std() == 0 or b.std() == 0:
        r = 1.0 if np.allclose(a, b) else float("nan")
    else:
        r = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    return Agreement(float(np.abs(a - b).max()), r)


def worst(pairs: Sequence[Agreement]) -> Agreement:
    """The largest difference and the lowest correlation of several agreements."""
    rs = [a.pearson for a in pairs if not math.isnan(a.pearson)]
    return Agreement(max(a.max_abs for a in pairs), min(rs) if rs else float("nan"))


def scaling(lib: Library) -> str:
    return "min-max" if lib.normalisation == "min-max" else "max"


# -- (d) the overhead of a fully cached explain ------------------------------------------------


@dataclass(frozen=True)
class Overhead:
    """Median seconds of a cached ``explain`` and of the bare arithmetic of the same map."""

    explain_s: float
    arithmetic_s: float

    @property
    def overhead_s(self) -> float:
        return self.explain_s - self.arithmetic_s


def cached_overhead(model: nn.Module, x: torch.Tensor, target: int, settings: Settings) -> Overhead:
    """Time cached layer switches and counterfactual toggles against their own arithmetic.

    After the calls that run the forward and the backward (watching layer3 and layer4), the
    loop alternates layer3 / layer4 and normal / counterfactual, every call a cache hit. The
    arithmetic is what any Grad-CAM must do for that map, in plain torch on the same tensors:
    ``einsum(alpha, A)``, ReLU, bilinear resize to the input size, the copy to the host.
    Calls are interleaved one for one, with the garbage collector paused.
    """
    engine = GradCAM(model, transform=None)
    engine.watch(["layer3", "layer4"])
    views = [("layer3", False), ("layer4", False), ("layer4", True), ("layer3", True)]
    for layer, cf in views:  # the forward and the one backward (layer3; layer4 is analytic)
        engine.explain(x, layer=layer, target=target, counterfactual=cf)
    inputs: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
    for layer, cf in views:
        res = engine.explain(x, layer=layer, target=target, counterfactual=cf)
        assert res.cached and res.weights is not None
        inputs[(layer, cf)] = (
            res.weights.to(settings.device)[None],
            res.activations.to(settings.device)[None],
        )
    size = (int(x.shape[-2]), int(x.shape[-1]))

    def arithmetic(alpha: torch.Tensor, activations: torch.Tensor) -> tuple[Map, Map]:
        coarse = torch.einsum("nk,nkhw->nhw", alpha, activations)
        heat = F.interpolate(
            coarse.clamp_min(0).unsqueeze(1), size=size, mode="bilinear", align_corners=False
        )
        return heat[0, 0].cpu(), coarse[0].cpu()

    explain_times: list[float] = []
    arithmetic_times: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for i in range(settings.overhead_calls):
            layer, cf = views[i % len(views)]
            alpha, activations = inputs[(layer, cf)]
            start = time.perf_counter()
            engine.explain(x, layer=layer, target=target, counterfactual=cf)
            synchronize(settings.device)
            middle = time.perf_counter()
            arithmetic(alpha, activations)
            synchronize(settings.device)
            end = time.perf_counter()
            explain_times.append(middle - start)
            arithmetic_times.append(end - middle)
    finally:
        gc.enable()
    return Overhead(median(explain_times), median(arithmetic_times))


# -- the scenarios --------------------------------------------------------------------------------


@dataclass
class ModelResult:
    model: str
    one_ms: dict[str, float]
    session_s: dict[str, float]
    batch_ips: dict[str, float]
    peak_mib: dict[str, dict[str, float]]  # scenario -> library -> MiB (CUDA only, else empty)
    one_agree: dict[str, Agreement]
    session_agree: dict[str, Agreement]  # worst over the 40 maps
    reference: dict[str, Agreement]  # camwidgets vs the from-scratch reference
    bn_agree: dict[str, Agreement] | None
    overhead: Overhead


def build(name: str, device: torch.device) -> nn.Module:
    """A torchvision model with seeded random weights, in eval mode, on ``device``."""
    torch.manual_seed(0)
    model: nn.Module = getattr(torchvision.models, name)(weights=None)
    return model.eval().to(device)


def _mib(timed_run: Timed) -> dict[str, float]:
    return {k: v / 2**20 for k, v in timed_run.peak_bytes.items()}


def run_model(
    name: str, settings: Settings, peers: dict[str, Any], log: Callable[[str], None]
) -> ModelResult:
    """Scenarios (a)-(d) on one torchvision model, with every agreement check."""
    device = settings.device
    base = build(name, device)
    singles, sessions = make_all(base, peers, copy.deepcopy)

    warmup = 2 if settings.cuda else 1  # CUDA: kernel selection and allocator growth first
    generator = torch.Generator().manual_seed(1)
    # One fresh input per round, the untimed warm-up rounds included.
    images = torch.randn(settings.one_repeats + warmup, 1, 3, SIZE, SIZE, generator=generator)
    batches = torch.randn(
        settings.repeats + warmup, settings.batch, 3, SIZE, SIZE, generator=generator
    )
    session_image = torch.randn(1, 3, SIZE, SIZE, generator=generator)
    images, batches, session_image = images.to(device), batches.to(device), session_image.to(device)
    with torch.no_grad():
        top = base(session_image)[0].topk(TOP).indices.tolist()
        batch_targets = [base(b).argmax(dim=1).tolist() for b in batches]
    peak: dict[str, dict[str, float]] = {}

    log(f"[{name}] (a) one map at layer4, {settings.one_repeats} repeats")
    run = round_robin(
        singles,
        settings.one_repeats,
        lambda lib, i: lib.one(images[i], "layer4", TARGET_CLASS),
        device,
        warmup,
    )
    one_ms = {k: 1e3 * median(v) for k, v in run.seconds.items()}
    peak["(a)"] = _mib(run)
    ours = run.first["camwidgets"]
    one_agree = {
        lib.name: agreement(run.first[lib.name], ours, scaling(lib)) for lib in singles[1:]
    }
    reference = {
        "layer4": agreement(
            reference_map(copy.deepcopy(base), images[0], "layer4", TARGET_CLASS), ours
        )
    }

    log(f"[{name}] (b) 40-map session, {settings.session_repeats} repeats")
    run = round_robin(
        sessions,
        settings.session_repeats,
        lambda lib, i: lib.session(session_image, LAYERS, top),  # type: ignore[misc]
        device,
        warmup,
    )
    session_s = {k: median(v) for k, v in run.seconds.items()}
    peak["(b)"] = _mib(run)
    ours_maps = run.first["camwidgets"]
    session_agree = {
        lib.name: worst(
            [
                agreement(p, o, scaling(lib))
                for p, o in zip(run.first[lib.name], ours_maps, strict=True)
            ]
        )
        for lib in sessions[1:]
    }
    ref_model = copy.deepcopy(base)
    order = [(layer, c, s) for layer in LAYERS for c in top for s in (1.0, -1.0)]
    reference["session (40 maps)"] = worst(
        [
            agreement(reference_map(ref_model, session_image, layer, c, sign), ours_maps[j])
            for j, (layer, c, sign) in enumerate(order)
        ]
    )
    del run, ours_maps

    log(f"[{name}] (c) batch of {settings.batch} at layer4, {settings.repeats} repeats")
    run = round_robin(
        singles,
        settings.repeats,
        lambda lib, i: lib.run_batch(batches[i], "layer4", batch_targets[i]),
        device,
        warmup,
    )
    batch_ips = {k: settings.batch / median(v) for k, v in run.seconds.items()}
    peak["(c)"] = _mib(run)
    del run

    bn_agree = None
    if name == "resnet18" and BN_LAYER in dict(base.named_modules()):
        log(f"[{name}] correctness at {BN_LAYER}")
        engine = GradCAM(copy.deepcopy(base), transform=None)
        x = images[0]
        ours_bn = engine.explain(x, layer=BN_LAYER, target=TARGET_CLASS).heatmap
        reference[BN_LAYER] = agreement(
            reference_map(copy.deepcopy(base), x, BN_LAYER, TARGET_CLASS), ours_bn
        )
        bn_agree = {
            lib.name: agreement(lib.one(x, BN_LAYER, TARGET_CLASS), ours_bn, scaling(lib))
            for lib in singles[1:]
        }

    log(f"[{name}] (d) cached explain overhead, {settings.overhead_calls} calls")
    overhead = cached_overhead(copy.deepcopy(base), session_image, top[0], settings)
    return ModelResult(
        name,
        one_ms,
        session_s,
        batch_ips,
        peak if settings.cuda else {},
        one_agree,
        session_agree,
        reference,
        bn_agree,
        overhead,
    )
