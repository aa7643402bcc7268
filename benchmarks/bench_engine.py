"""camwidgets' Grad-CAM engine against captum, pytorch-grad-cam and torchcam, side by side.

Run from the repository root::

    python benchmarks/bench_engine.py                      # resnet18 + resnet50, 5 repeats
    python benchmarks/bench_engine.py --models resnet50 --repeats 9
    python benchmarks/bench_engine.py --quick              # smoke run for CI (~1 minute)

Scenarios, on torchvision models with seeded random weights, 224x224 inputs, CPU:

(a) one map at ``layer4`` for a fresh image (a new random tensor each repeat, the same for every
    library, so camwidgets' cache never hits);
(b) a 40-map session on one image: layer1..layer4 x top-5 classes x normal/counterfactual, each
    peer used as its documentation shows (plus torchcam tuned: one extractor over the four layers
    and ``retain_graph=True``); camwidgets: 40 ``explain`` calls in that loop order;
(c) a batch of 16 images at ``layer4``, in images per second.

All libraries run in one process, each on its own ``copy.deepcopy`` of the model (the peers
leave hooks, ``.grad`` and eval mode behind), interleaved inside every repeat in a fresh random
order, on the same input tensors. Times are medians. Every library produces full-resolution
(224x224) ReLU'd maps: captum with ``relu_attributions=True`` + bilinear
``LayerAttribution.interpolate``; pytorch-grad-cam resizes with OpenCV itself; torchcam returns
coarse maps, upsampled here with bilinear ``F.interpolate`` inside the timed region.

Agreement with camwidgets is measured on (a), on every map of session (b), and on the layer
``layer4.1.bn2`` of resnet18, whose output the residual ``out += identity`` later overwrites in
place. camwidgets itself is checked against a from-scratch reference (plain torch: the layer's
output kept intact by a cloning hook, ``torch.autograd.grad``, ReLU, bilinear resize).
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# OpenMP threads that spin while waiting make every library 10-30x slower as soon as another
# process competes for the cores (measured: a resnet18 forward, 2 threads, on 2 busy cores:
# 3.1 s spinning, 0.12 s passive). Passive waiting costs little on an idle machine and keeps
# the comparison about the libraries rather than the scheduler. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camwidgets import GradCAM

INSTALL_HINT = 'pip install "camwidgets[bench]"'
SIZE = 224
LAYERS = ("layer1", "layer2", "layer3", "layer4")
BN_LAYER = "layer4.1.bn2"
BATCH = 16
TOP = 5
TARGET_CLASS = 281  # (a): any fixed class; the weights are random anyway


def import_peers() -> dict[str, Any]:
    """Import the peer libraries, or exit with the extra that installs them."""
    missing = []
    peers: dict[str, Any] = {}
    try:
        from captum.attr import LayerAttribution, LayerGradCam

        peers["LayerGradCam"], peers["LayerAttribution"] = LayerGradCam, LayerAttribution
    except ImportError:
        missing.append("captum")
    try:
        from pytorch_grad_cam import GradCAM as PGCGradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        peers["PGCGradCAM"], peers["ClassifierOutputTarget"] = PGCGradCAM, ClassifierOutputTarget
    except ImportError:
        missing.append("grad-cam (pytorch_grad_cam)")
    try:
        from torchcam.methods import GradCAM as TCGradCAM

        peers["TCGradCAM"] = TCGradCAM
    except ImportError:
        missing.append("torchcam")
    if missing:
        raise SystemExit(
            f"bench_engine.py compares against peer libraries that are not installed: "
            f"{', '.join(missing)}. Install them with: {INSTALL_HINT}"
        )
    import captum
    import torchcam

    peers["versions"] = {
        "captum": captum.__version__,
        "pytorch-grad-cam": _dist_version("grad-cam"),
        "torchcam": torchcam.__version__,
    }
    return peers


def _dist_version(name: str) -> str:
    """Installed version of a distribution, or '?'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


# -- the libraries, each used as its documentation shows -------------------------------------

Map = torch.Tensor  # (H, W) or (N, H, W) float32 on the CPU, detached


class NegatedScore:
    """A pytorch-grad-cam / torchcam output target returning -score: the counterfactual."""

    def __init__(self, category: int) -> None:
        self.category = category

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        if model_output.dim() == 1:
            return -model_output[self.category]
        return -model_output[:, self.category]


class Negated(nn.Module):
    """captum's documented way to a counterfactual: a forward function returning -scores."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -self.model(x)


@dataclass
class Library:
    """One contestant: its name, its own model copy, and how it makes maps."""

    name: str
    model: nn.Module
    one: Callable[[torch.Tensor, str, Any], Map]  # (x, layer, target) -> map(s)
    session: Callable[[torch.Tensor, Sequence[str], Sequence[int]], list[Map]] | None
    normalisation: str  # how the library scales its maps
    reset: Callable[[], None] = field(default=lambda: None)  # between repeats, untimed


def _module(model: nn.Module, name: str) -> nn.Module:
    return dict(model.named_modules())[name]


def make_camwidgets(model: nn.Module) -> Library:
    """camwidgets: one engine for single maps and batches, one for sessions (cleared per repeat).

    Two engines because the engine remembers the deepest layer asked for (layer1 in a session)
    and from then on differentiates down to it for every image.
    """
    engine = GradCAM(model, transform=None)
    session_engine = GradCAM(model, transform=None)

    def one(x: torch.Tensor, layer: str, target: Any) -> Map:
        return engine.explain(x, layer=layer, target=target).heatmap

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        maps = []
        for layer in layers:
            for c in classes:
                for cf in (False, True):
                    maps.append(
                        session_engine.explain(x, layer=layer, target=c, counterfactual=cf).heatmap
                    )
        return maps

    def reset() -> None:
        engine.clear_cache()
        session_engine.clear_cache()

    return Library("camwidgets", model, one, session, "none (raw)", reset)


def make_captum(model: nn.Module, peers: dict[str, Any]) -> Library:
    """captum: LayerGradCam(...).attribute(..., relu_attributions=True), bilinear interpolate."""
    LayerGradCam, LayerAttribution = peers["LayerGradCam"], peers["LayerAttribution"]
    negated = Negated(model)

    def one(x: torch.Tensor, layer: str, target: Any, forward: nn.Module = model) -> Map:
        cam = LayerGradCam(forward, _module(model, layer))
        attr = cam.attribute(x, target=target, relu_attributions=True)
        up = LayerAttribution.interpolate(attr, (SIZE, SIZE), interpolate_mode="bilinear")
        return up.detach()[:, 0].squeeze(0)

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        maps = []
        for layer in layers:
            for c in classes:
                for forward in (model, negated):
                    maps.append(one(x, layer, c, forward))
        return maps

    return Library("captum", model, one, session, "none (raw)", lambda: model.zero_grad())


def make_pytorch_grad_cam(model: nn.Module, peers: dict[str, Any]) -> Library:
    """pytorch-grad-cam: GradCAM(model, target_layers=[layer]) with ClassifierOutputTarget."""
    PGCGradCAM, Target = peers["PGCGradCAM"], peers["ClassifierOutputTarget"]

    def one(x: torch.Tensor, layer: str, target: Any) -> Map:
        targets = [Target(t) for t in target] if isinstance(target, list) else [Target(target)]
        with PGCGradCAM(model=model, target_layers=[_module(model, layer)]) as cam:
            out = cam(input_tensor=x, targets=targets)
        return torch.from_numpy(out).squeeze(0)

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        maps = []
        for layer in layers:
            with PGCGradCAM(model=model, target_layers=[_module(model, layer)]) as cam:
                for c in classes:
                    for target in (Target(c), NegatedScore(c)):
                        maps.append(torch.from_numpy(cam(input_tensor=x, targets=[target]))[0])
        return maps

    return Library("pytorch-grad-cam", model, one, session, "min-max", lambda: model.zero_grad())


def _upsample(cams: torch.Tensor) -> Map:
    """torchcam's coarse (N, h, w) maps -> (N, 224, 224), bilinear."""
    return F.interpolate(
        cams.unsqueeze(1), size=(SIZE, SIZE), mode="bilinear", align_corners=False
    )[:, 0]


def make_torchcam(model: nn.Module, peers: dict[str, Any]) -> Library:
    """torchcam: a fresh extractor per layer, a forward per map (its default retain_graph=False)."""
    TCGradCAM = peers["TCGradCAM"]

    def one(x: torch.Tensor, layer: str, target: Any) -> Map:
        with TCGradCAM(model, layer) as extractor:
            scores = model(x)
            cams = extractor(class_idx=target, scores=scores)
        return _upsample(cams[0]).squeeze(0)

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        maps = []
        for layer in layers:
            with TCGradCAM(model, layer) as extractor:
                for c in classes:
                    scores = model(x)
                    maps.append(_upsample(extractor(class_idx=c, scores=scores)[0])[0])
                    scores = model(x)
                    maps.append(_upsample(extractor(targets=NegatedScore(c), scores=scores)[0])[0])
        return maps

    return Library("torchcam", model, one, session, "min-max")


def make_torchcam_tuned(model: nn.Module, peers: dict[str, Any]) -> Library:
    """torchcam tuned: ONE extractor over the four layers, one forward, retain_graph=True.

    Still one backward per (class, sign): torchcam applies the ReLU inside, so the
    counterfactual cannot be derived from the normal map's weights without reimplementing it.
    """
    TCGradCAM = peers["TCGradCAM"]

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        per: dict[tuple[str, int, bool], Map] = {}
        with TCGradCAM(model, list(layers)) as extractor:
            scores = model(x)
            for c in classes:
                for cf in (False, True):
                    if cf:
                        cams = extractor(targets=NegatedScore(c), scores=scores, retain_graph=True)
                    else:
                        cams = extractor(class_idx=c, scores=scores, retain_graph=True)
                    for layer, cam in zip(layers, cams, strict=True):
                        per[(layer, c, cf)] = _upsample(cam)[0]
        return [per[(layer, c, cf)] for layer in layers for c in classes for cf in (False, True)]

    def never(*_: Any) -> Map:
        raise AssertionError("the tuned torchcam variant only runs the session")

    return Library("torchcam tuned", model, never, session, "min-max")


# -- references and agreement -----------------------------------------------------------------


def reference_map(
    model: nn.Module, x: torch.Tensor, layer: str, target: int, sign: float = 1.0
) -> Map:
    """From-scratch Grad-CAM: the layer's output kept intact by a cloning hook, autograd.grad."""
    kept: list[torch.Tensor] = []

    def hook(_: nn.Module, __: Any, output: torch.Tensor) -> torch.Tensor:
        kept.append(output)
        return output.clone()  # downstream in-place ops hit the copy, never `output`

    handle = _module(model, layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            scores = model(x.clone().requires_grad_(True))
            (grad,) = torch.autograd.grad(sign * scores[0, target], kept[0])
    finally:
        handle.remove()
    alpha = grad.mean(dim=(2, 3), keepdim=True)
    coarse = (alpha * kept[0].detach()).sum(dim=1, keepdim=True).clamp_min(0)
    return F.interpolate(coarse, size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]


def _scaled(m: Map, how: str) -> np.ndarray:
    a = m.detach().double().cpu().numpy()
    low = a.min() if how == "min-max" else 0.0
    span = a.max() - low
    return (a - low) / span if span > 0 else a - low


@dataclass
class Agreement:
    max_abs: float
    pearson: float


def agreement(peer: Map, ours: Map, how: str = "max") -> Agreement:
    """Both maps scaled alike (divided by their max, or min-max): max |diff| and Pearson r."""
    a, b = _scaled(peer, how), _scaled(ours, how)
    if a.std() == 0 or b.std() == 0:
        r = 1.0 if np.allclose(a, b) else float("nan")
    else:
        r = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    return Agreement(float(np.abs(a - b).max()), r)


def _how(lib: Library) -> str:
    return "min-max" if lib.normalisation == "min-max" else "max"


# -- timing -------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def round_robin(
    libs: Sequence[Library], repeats: int, run: Callable[[Library, int], Any], warmup: int = 1
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run ``run(lib, i)`` for every library in each repeat, in a fresh random order each time.

    A random order (seeded) rather than a rotation, so that no library always follows the same
    one (a predecessor's freed memory or warm caches would otherwise bias it). Each library is
    reset before and after its run, untimed, so none holds memory while the others run. Repeat
    indices < ``warmup`` are not timed. Returns the times and each library's first output.
    """
    times: dict[str, list[float]] = {lib.name: [] for lib in libs}
    first: dict[str, Any] = {}
    order = random.Random(0)
    for i in range(warmup + repeats):
        for lib in order.sample(list(libs), len(libs)):
            lib.reset()
            seconds, out = timed(lambda lib=lib, i=i: run(lib, i))
            lib.reset()
            if i >= warmup:
                times[lib.name].append(seconds)
            first.setdefault(lib.name, out)
            del out
    return times, first


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


# -- the benchmark --------------------------------------------------------------------------------


@dataclass
class ModelResult:
    model: str
    one_ms: dict[str, float]
    session_s: dict[str, float]
    batch_ips: dict[str, float]
    one_agree: dict[str, Agreement]
    session_agree: dict[str, Agreement]  # worst over the 40 maps
    reference: dict[str, Agreement]  # camwidgets vs the from-scratch reference
    bn_agree: dict[str, Agreement] | None


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None)
    return model.eval()


def run_model(
    name: str, args: argparse.Namespace, peers: dict[str, Any], log: Callable[[str], None]
) -> ModelResult:
    base = build(name)
    # Each library gets its own copy: the peers leave hooks, .grad and eval mode behind.
    cw = make_camwidgets(copy.deepcopy(base))
    captum_lib = make_captum(copy.deepcopy(base), peers)
    pgc_lib = make_pytorch_grad_cam(copy.deepcopy(base), peers)
    tc_lib = make_torchcam(copy.deepcopy(base), peers)
    tc_tuned = make_torchcam_tuned(copy.deepcopy(base), peers)
    singles = [cw, captum_lib, pgc_lib, tc_lib]
    sessions = [*singles, tc_tuned]

    generator = torch.Generator().manual_seed(1)
    one_repeats = 3 * args.repeats  # single maps are short and noisy: triple the samples
    images = torch.randn(one_repeats + 1, 1, 3, SIZE, SIZE, generator=generator)
    batches = torch.randn(args.repeats + 1, BATCH, 3, SIZE, SIZE, generator=generator)
    session_image = torch.randn(1, 3, SIZE, SIZE, generator=generator)
    with torch.no_grad():
        top = base(session_image)[0].topk(TOP).indices.tolist()
        batch_targets = [base(b).argmax(dim=1).tolist() for b in batches]

    # (a) one map at layer4, a fresh image per repeat
    log(f"[{name}] (a) one map at layer4, {one_repeats} repeats")
    times, first = round_robin(
        singles, one_repeats, lambda lib, i: lib.one(images[i], "layer4", TARGET_CLASS)
    )
    one_ms = {k: 1e3 * median(v) for k, v in times.items()}
    ours = first["camwidgets"]
    one_agree = {lib.name: agreement(first[lib.name], ours, _how(lib)) for lib in singles[1:]}
    reference = {
        "layer4": agreement(
            reference_map(copy.deepcopy(base), images[0], "layer4", TARGET_CLASS), ours
        )
    }

    # (b) the 40-map session
    log(f"[{name}] (b) 40-map session, {args.session_repeats} repeats")
    times, first = round_robin(
        sessions, args.session_repeats, lambda lib, i: lib.session(session_image, LAYERS, top)
    )
    session_s = {k: median(v) for k, v in times.items()}
    ours_maps = first["camwidgets"]
    session_agree = {}
    for lib in sessions[1:]:
        pairs = [
            agreement(p, o, _how(lib)) for p, o in zip(first[lib.name], ours_maps, strict=True)
        ]
        session_agree[lib.name] = Agreement(
            max(a.max_abs for a in pairs),
            min(a.pearson for a in pairs if not math.isnan(a.pearson)),
        )
    ref_model = copy.deepcopy(base)
    worst = 0.0
    for j, (layer, c, sign) in enumerate(
        (layer, c, s) for layer in LAYERS for c in top for s in (1.0, -1.0)
    ):
        worst = max(
            worst,
            agreement(
                reference_map(ref_model, session_image, layer, c, sign), ours_maps[j]
            ).max_abs,
        )
    reference["session (40 maps)"] = Agreement(worst, float("nan"))

    # (c) a batch of 16 at layer4
    log(f"[{name}] (c) batch of {BATCH} at layer4, {args.repeats} repeats")
    times, _ = round_robin(
        singles, args.repeats, lambda lib, i: lib.one(batches[i], "layer4", batch_targets[i])
    )
    batch_ips = {k: BATCH / median(v) for k, v in times.items()}

    bn_agree = None
    if BN_LAYER in dict(base.named_modules()) and name == "resnet18":
        log(f"[{name}] correctness at {BN_LAYER}")
        engine = GradCAM(copy.deepcopy(base), transform=None)
        x = images[0]
        ours_bn = engine.explain(x, layer=BN_LAYER, target=TARGET_CLASS).heatmap
        reference[BN_LAYER] = agreement(
            reference_map(copy.deepcopy(base), x, BN_LAYER, TARGET_CLASS), ours_bn
        )
        bn_agree = {
            lib.name: agreement(lib.one(x, BN_LAYER, TARGET_CLASS), ours_bn, _how(lib))
            for lib in singles[1:]
        }
    return ModelResult(
        name, one_ms, session_s, batch_ips, one_agree, session_agree, reference, bn_agree
    )


# -- reporting ------------------------------------------------------------------------------------

PEERS = ("captum", "pytorch-grad-cam", "torchcam")
SESSION_PEERS = (*PEERS, "torchcam tuned")
COLUMNS = ("camwidgets", *SESSION_PEERS)


def machine() -> str:
    return (
        f"{datetime.date.today().isoformat()}, {platform.platform()}, "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"torchvision {torchvision.__version__}, Python {platform.python_version()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')}"
    )


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def report(
    results: Sequence[ModelResult], args: argparse.Namespace, versions: dict[str, str]
) -> list[tuple[str, bool]]:
    lines = [
        f"## Grad-CAM engines, CPU ({machine()})",
        "",
        "Peers: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + f". Medians of {3 * args.repeats} (a), {args.session_repeats} (b), "
        f"{args.repeats} (c) interleaved repeats.",
        "Last column: camwidgets' time / the fastest peer's time (for (c): the fastest peer's "
        "img/s / camwidgets' img/s); below 1 camwidgets is faster.",
        "",
        "| model | scenario | " + " | ".join(COLUMNS) + " | camwidgets vs fastest peer |",
        "|---|---|" + "---|" * (len(COLUMNS) + 1),
    ]
    checks: list[tuple[str, bool]] = []
    for r in results:
        peer_one = min(r.one_ms[p] for p in PEERS)
        row = [r.one_ms.get(c) for c in COLUMNS]
        lines.append(
            f"| {r.model} | (a) one map, layer4 (ms) | "
            + " | ".join(_cell(v, ".1f") for v in row)
            + f" | {r.one_ms['camwidgets'] / peer_one:.2f}x |"
        )
        peer_session = min(r.session_s[p] for p in SESSION_PEERS)
        lines.append(
            f"| {r.model} | (b) 40-map session (s) | "
            + " | ".join(_cell(r.session_s.get(c), ".3f") for c in COLUMNS)
            + f" | {r.session_s['camwidgets'] / peer_session:.2f}x |"
        )
        peer_ips = max(r.batch_ips[p] for p in PEERS)
        lines.append(
            f"| {r.model} | (c) batch of {BATCH}, layer4 (img/s) | "
            + " | ".join(_cell(r.batch_ips.get(c), ".1f") for c in COLUMNS)
            + f" | {peer_ips / r.batch_ips['camwidgets']:.2f}x |"
        )
    lines += [
        "",
        "Ratios to camwidgets (peer time / camwidgets time; > 1 means camwidgets is faster):",
        "",
    ]
    lines += [
        "| model | scenario | " + " | ".join(SESSION_PEERS) + " |",
        "|---|---|" + "---|" * len(SESSION_PEERS),
    ]
    for r in results:
        lines.append(
            f"| {r.model} | (a) one map | "
            + " | ".join(
                _cell(r.one_ms[p] / r.one_ms["camwidgets"], ".2f") if p in r.one_ms else "-"
                for p in SESSION_PEERS
            )
            + " |"
        )
        lines.append(
            f"| {r.model} | (b) 40-map session | "
            + " | ".join(f"{r.session_s[p] / r.session_s['camwidgets']:.1f}" for p in SESSION_PEERS)
            + " |"
        )
        lines.append(
            f"| {r.model} | (c) batch of {BATCH} | "
            + " | ".join(
                _cell(r.batch_ips["camwidgets"] / r.batch_ips[p], ".2f")
                if p in r.batch_ips
                else "-"
                for p in SESSION_PEERS
            )
            + " |"
        )

    lines += [
        "",
        "Agreement with camwidgets (both maps divided by their max; for the min-max-normalising "
        "pytorch-grad-cam and torchcam, both maps min-max normalised): max |difference|, "
        "Pearson r.",
        "",
        "| model | where | captum | pytorch-grad-cam | torchcam | torchcam tuned |",
        "|---|---|---|---|---|---|",
    ]

    def ag(a: Agreement | None) -> str:
        if a is None:
            return "-"
        r_txt = "" if math.isnan(a.pearson) else f", r={a.pearson:.6f}"
        return f"{a.max_abs:.1e}{r_txt}"

    for r in results:
        lines.append(
            f"| {r.model} | (a) layer4 | "
            + " | ".join(ag(r.one_agree.get(p)) for p in SESSION_PEERS)
            + " |"
        )
        lines.append(
            f"| {r.model} | (b) worst of 40 maps | "
            + " | ".join(ag(r.session_agree.get(p)) for p in SESSION_PEERS)
            + " |"
        )
        if r.bn_agree is not None:
            lines.append(
                f"| {r.model} | {BN_LAYER} (overwritten in place) | "
                + " | ".join(ag(r.bn_agree.get(p)) for p in SESSION_PEERS)
                + " |"
            )
    lines += [
        "",
        "camwidgets against a from-scratch Grad-CAM (plain torch, cloning hook + autograd.grad):",
        "",
    ]
    for r in results:
        lines.append(
            f"- {r.model}: "
            + "; ".join(f"{k}: max |diff| {a.max_abs:.1e}" for k, a in r.reference.items())
        )

    # targets
    for r in results:
        m = r.model
        peer_one = min(r.one_ms[p] for p in PEERS)
        ratio = r.one_ms["camwidgets"] / peer_one
        checks.append(
            (f"{m} (a) one map within 1.05x of the fastest peer: {ratio:.3f}x", ratio <= 1.05)
        )
        for p, need in (("captum", 10.0), ("pytorch-grad-cam", 10.0), ("torchcam tuned", 2.0)):
            speedup = r.session_s[p] / r.session_s["camwidgets"]
            checks.append(
                (f"{m} (b) session >= {need:g}x faster than {p}: {speedup:.1f}x", speedup >= need)
            )
        ips_ratio = r.batch_ips["camwidgets"] / max(r.batch_ips[p] for p in PEERS)
        checks.append(
            (
                f"{m} (c) batch throughput >= 1.0x the fastest peer: {ips_ratio:.3f}x",
                ips_ratio >= 1.0,
            )
        )
        cap = r.one_agree["captum"].max_abs
        checks.append(
            (f"{m} (a) agreement with captum (ReLU + bilinear) <= 1e-5: {cap:.1e}", cap <= 1e-5)
        )
        worst_ref = max(a.max_abs for a in r.reference.values())
        checks.append(
            (
                f"{m} camwidgets vs from-scratch reference <= 1e-5: {worst_ref:.1e}",
                worst_ref <= 1e-5,
            )
        )

    lines += ["", "Targets:", ""]
    lines += [f"- {'PASS' if ok else 'FAIL'}  {text}" for text, ok in checks]
    print("\n".join(lines), flush=True)
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    parser.add_argument("--quick", action="store_true", help="smoke run: resnet18, 2 repeats")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any target fails (default: only correctness targets)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.repeats, args.session_repeats = ["resnet18"], 2, 1
    if args.session_repeats is None:
        args.session_repeats = args.repeats
    if args.repeats < 1 or args.session_repeats < 1:
        parser.error("repeats must be >= 1")
    peers = import_peers()
    torch.set_num_threads(args.threads)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    results = [run_model(name, args, peers, log) for name in args.models]
    checks = report(results, args, peers["versions"])
    correctness = [ok for text, ok in checks if "agreement" in text or "reference" in text]
    failed = not all(ok for _, ok in checks) if args.strict else not all(correctness)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
