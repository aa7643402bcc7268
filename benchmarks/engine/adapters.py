"""One adapter per library: how each one makes a map, a batch of maps, a 40-map session.

Every peer is used as its documentation shows; the only tuned variant is named as such
("torchcam tuned"). Adapters return maps on the device they were computed on, full resolution
(the input's H x W), ReLU'd; normalisation is whatever the library does (recorded in
``Library.normalisation`` so that agreement is measured fairly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from camwidgets import GradCAM

INSTALL_HINT = 'pip install "camwidgets[bench]"'

Map = torch.Tensor  # (H, W) or (N, H, W) float32, detached, on the library's device
OneFn = Callable[[torch.Tensor, str, Any], Map]  # (x, layer, target or targets) -> map(s)
SessionFn = Callable[[torch.Tensor, Sequence[str], Sequence[int]], list[Map]]


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
    peers["versions"] = {
        "captum": _dist_version("captum"),
        "pytorch-grad-cam": _dist_version("grad-cam"),
        "torchcam": _dist_version("torchcam"),
    }
    return peers


def _dist_version(name: str) -> str:
    """Installed version of a distribution, or '?'."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


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
        scores: torch.Tensor = self.model(x)
        return -scores


@dataclass
class Library:
    """One contestant: its name, its own model copy, and how it makes maps.

    ``one`` makes a single map (scenario a); ``batch`` a batch of maps with one target per image
    (scenario c; defaults to ``one``); ``session`` the 40-map session (scenario b).
    """

    name: str
    model: nn.Module
    one: OneFn
    session: SessionFn | None
    normalisation: str  # how the library scales its maps: "none (raw)" or "min-max"
    reset: Callable[[], None] = field(default=lambda: None)  # between repeats, untimed
    batch: OneFn | None = None

    def run_batch(self, x: torch.Tensor, layer: str, targets: Any) -> Map:
        """The batch path if the library has one, else its single-map path on the batch."""
        return (self.batch or self.one)(x, layer, targets)


def module_named(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``."""
    module: nn.Module = dict(model.named_modules())[name]
    return module


def upsample(cams: torch.Tensor, size: tuple[int, int]) -> Map:
    """Coarse (N, h, w) maps -> (N, H, W), bilinear (torchcam returns coarse maps)."""
    return F.interpolate(cams.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]


def make_camwidgets(model: nn.Module) -> Library:
    """camwidgets: one engine for single maps, the natural session, the cache-free batch path.

    The session is what a user writes: a new engine built inside the timed region, then
    ``explain`` per map in the nested order (layer, class, normal/counterfactual), no ``watch``
    and no ``explain_classes``. Construction, the one forward and the backwards are all timed.
    The batch goes through ``explain(..., cache=False)``, the path meant for datasets.
    """
    engine = GradCAM(model, transform=None)

    def one(x: torch.Tensor, layer: str, target: Any) -> Map:
        return engine.explain(x, layer=layer, target=target).heatmap

    def batch(x: torch.Tensor, layer: str, targets: Any) -> Map:
        return engine.explain(x, layer=layer, target=targets, cache=False).heatmap

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        fresh = GradCAM(model, transform=None)
        return [
            fresh.explain(x, layer=layer, target=c, counterfactual=cf).heatmap
            for layer in layers
            for c in classes
            for cf in (False, True)
        ]

    def reset() -> None:
        engine.clear_cache()

    return Library("camwidgets", model, one, session, "none (raw)", reset, batch)


def make_captum(model: nn.Module, peers: dict[str, Any]) -> Library:
    """captum: LayerGradCam(...).attribute(..., relu_attributions=True), bilinear interpolate."""
    LayerGradCam, LayerAttribution = peers["LayerGradCam"], peers["LayerAttribution"]
    negated = Negated(model)

    def one(x: torch.Tensor, layer: str, target: Any, forward: nn.Module = model) -> Map:
        cam = LayerGradCam(forward, module_named(model, layer))
        attr = cam.attribute(x, target=target, relu_attributions=True)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        up = LayerAttribution.interpolate(attr, size, interpolate_mode="bilinear")
        out: Map = up.detach()[:, 0].squeeze(0)
        return out

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
        with PGCGradCAM(model=model, target_layers=[module_named(model, layer)]) as cam:
            out = cam(input_tensor=x, targets=targets)
        return torch.from_numpy(out).squeeze(0)

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        maps = []
        for layer in layers:
            with PGCGradCAM(model=model, target_layers=[module_named(model, layer)]) as cam:
                for c in classes:
                    for target in (Target(c), NegatedScore(c)):
                        maps.append(torch.from_numpy(cam(input_tensor=x, targets=[target]))[0])
        return maps

    return Library("pytorch-grad-cam", model, one, session, "min-max", lambda: model.zero_grad())


def make_torchcam(model: nn.Module, peers: dict[str, Any]) -> Library:
    """torchcam: a fresh extractor per layer, a forward per map (its default retain_graph=False)."""
    TCGradCAM = peers["TCGradCAM"]

    def one(x: torch.Tensor, layer: str, target: Any) -> Map:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        with TCGradCAM(model, layer) as extractor:
            scores = model(x)
            cams = extractor(class_idx=target, scores=scores)
        return upsample(cams[0], size).squeeze(0)

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        size = (int(x.shape[-2]), int(x.shape[-1]))
        maps = []
        for layer in layers:
            with TCGradCAM(model, layer) as extractor:
                for c in classes:
                    scores = model(x)
                    maps.append(upsample(extractor(class_idx=c, scores=scores)[0], size)[0])
                    scores = model(x)
                    negated = extractor(targets=NegatedScore(c), scores=scores)[0]
                    maps.append(upsample(negated, size)[0])
        return maps

    return Library("torchcam", model, one, session, "min-max")


def make_torchcam_tuned(model: nn.Module, peers: dict[str, Any]) -> Library:
    """torchcam tuned: ONE extractor over the four layers, one forward, retain_graph=True.

    Still one backward per (class, sign): torchcam applies the ReLU inside, so the
    counterfactual cannot be derived from the normal map's weights without reimplementing it.
    """
    TCGradCAM = peers["TCGradCAM"]

    def session(x: torch.Tensor, layers: Sequence[str], classes: Sequence[int]) -> list[Map]:
        size = (int(x.shape[-2]), int(x.shape[-1]))
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
                        per[(layer, c, cf)] = upsample(cam, size)[0]
        return [per[(layer, c, cf)] for layer in layers for c in classes for cf in (False, True)]

    def never(*_: Any) -> Map:
        raise AssertionError("the tuned torchcam variant only runs the session")

    return Library("torchcam tuned", model, never, session, "min-max")


def make_all(
    base: nn.Module, peers: dict[str, Any], copy_model: Callable[[nn.Module], nn.Module]
) -> tuple[list[Library], list[Library]]:
    """Every contestant on its own copy of ``base``: (single-map libraries, session libraries).

    Own copies because the peers leave hooks, ``.grad`` and eval mode behind.
    """
    camwidgets = make_camwidgets(copy_model(base))
    singles = [
        camwidgets,
        make_captum(copy_model(base), peers),
        make_pytorch_grad_cam(copy_model(base), peers),
        make_torchcam(copy_model(base), peers),
    ]
    return singles, [*singles, make_torchcam_tuned(copy_model(base), peers)]
