"""The model-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018, arXiv:1810.03292).

A map that explains the *model* must change when the model's learned parameters are destroyed.
The check randomises the parameters from the head down, one group of layers at a time, and
after each step compares the new map (same image, same class) with the original one:

* **cascading** (``cascade=True``): each step randomises one more group, so the last step has
  every group random;
* **independent** (``cascade=False``): each step randomises one group alone, the others trained.

Similarity is measured by Spearman rank correlation, SSIM and the overlap of the top pixels
(``camwidgets.metrics.similarity``). Grad-CAM falls to near zero as soon as the head is random;
Guided Backprop (``method="guided-backprop"``, the absolute input gradient summed over colour
channels) famously stays close to the original: it shows edges of the picture, not the model.

Everything happens on a deep copy of the model: the user's model (parameters, buffers, flags,
hooks) and torch's global random state are left exactly as found. New values are drawn from a
local ``torch.Generator`` seeded per group from ``seed`` and the group's name, so a group gets
the same values whichever mode or order it is randomised in.

Example:
    >>> from camwidgets import GradCAM, metrics, zoo
    >>> shapes = zoo.load("shapes")
    >>> engine = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
    >>> scene = zoo.sample_scenes(1)[0]
    >>> check = metrics.randomisation(engine, scene.image, method="gradcam")
    >>> check.steps[0], len(check.spearman) == len(check.steps)
    ('fc', True)
    >>> check.passed()
    True
"""

from __future__ import annotations

import copy
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

import torch
from torch import nn

from ..engine.capture import evaluating
from ..engine.methods import get_method
from ..engine.progress import progress_bar
from .similarity import spearman, ssim, topk_overlap

if TYPE_CHECKING:
    from ..engine import GradCAM

__all__ = [
    "GUIDED_BACKPROP",
    "PASS_BELOW",
    "Randomisation",
    "copy_model",
    "module_groups",
    "randomisation",
]

GUIDED_BACKPROP = "guided-backprop"
"""The method name of plain guided backpropagation in the check (not an engine method)."""

PASS_BELOW = 0.3
"""A method passes when its mean Spearman over the steps is below this: on average at most a
weak rank correlation with the trained model's map (Adebayo et al. set no threshold)."""

Groups = Literal["blocks", "modules"] | Sequence[str]
Init = Literal["default", "reset"]


@dataclass(frozen=True)
class Randomisation:
    """The randomisation check of one method on one image.

    Attributes:
        method: the method checked ("gradcam", ..., or "guided-backprop").
        layer: the layer the maps are taken at (None for guided backprop).
        target: the class explained (the original model's, kept at every step).
        cascade: cascading (True) or independent (False) randomisation.
        steps: the module groups randomised at each step, head first ("" is the model's own
            parameters, e.g. a ViT's position embedding).
        original: the trained model's map over the picture, (H, W).
        maps: the map after each step, (S, H, W), aligned with ``steps``.
        spearman: Spearman rank correlation of each step's map with the original, (S,).
        ssim: SSIM of each step's map with the original, (S,).
        topk: overlap of the top ``top`` share of pixels with the original's, (S,).
        top: the share of pixels ``topk`` looks at.
    """

    method: str
    layer: str | None
    target: int
    cascade: bool
    steps: tuple[str, ...]
    original: torch.Tensor
    maps: torch.Tensor
    spearman: tuple[float, ...]
    ssim: tuple[float, ...]
    topk: tuple[float, ...]
    top: float

    @property
    def mean_spearman(self) -> float:
        """The mean Spearman over the steps: the area under the curve, per step."""
        return sum(self.spearman) / len(self.spearman)

    def passed(self, threshold: float = PASS_BELOW) -> bool:
        """Whether the map depends on the learned parameters: ``mean_spearman < threshold``.

        The mean, not the last step: once the stem is random every method's map changes
        (Guided Backprop included); a method that passes changes as soon as the head does.
        """
        return self.mean_spearman < threshold

    def __repr__(self) -> str:
        mode = "cascading" if self.cascade else "independent"
        return (
            f"Randomisation({self.method!r}, {mode}, {len(self.steps)} steps, "
            f"mean Spearman {self.mean_spearman:.3f}, passed={self.passed()})"
        )


@dataclass(frozen=True)
class _Group:
    name: str
    module: nn.Module
    recurse: bool  # False: only the module's own parameters (the model itself, "modules" mode)

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters(recurse=self.recurse) if p.is_floating_point()]

    def tensors(self) -> list[torch.Tensor]:
        """Parameters and buffers (``init="reset"`` also resets BatchNorm statistics)."""
        buffers = list(self.module.buffers(recurse=self.recurse))
        return [*self.module.parameters(recurse=self.recurse), *buffers]


@overload
def randomisation(
    engine: GradCAM,
    image: Any,
    target: Any = ...,
    method: str = ...,
    cascade: bool = ...,
    seed: int = ...,
    *,
    layer: str | None = ...,
    groups: Groups = ...,
    init: Init = ...,
    top: float = ...,
    progress: bool | None = ...,
) -> Randomisation: ...


@overload
def randomisation(
    engine: GradCAM,
    image: Any,
    target: Any = ...,
    method: Sequence[str] = ...,
    cascade: bool = ...,
    seed: int = ...,
    *,
    layer: str | None = ...,
    groups: Groups = ...,
    init: Init = ...,
    top: float = ...,
    progress: bool | None = ...,
) -> dict[str, Randomisation]: ...


def randomisation(
    engine: GradCAM,
    image: Any,
    target: Any = None,
    method: str | Sequence[str] = "gradcam",
    cascade: bool = True,
    seed: int = 0,
    *,
    layer: str | None = None,
    groups: Groups = "blocks",
    init: Init = "default",
    top: float = 0.1,
    progress: bool | None = None,
) -> Randomisation | dict[str, Randomisation]:
    """Randomise the model head-down, group by group, and compare each step's map with the
    original (Adebayo et al.). The user's model and torch's random state are left as found.

    Args:
        engine: the ``GradCAM`` of the trained model (its cache serves the original maps).
        image: one image, anything ``engine.prepare`` takes.
        target: class index or name; None: the original model's top-1 class.
        method: an engine method name (``"gradcam"``, ``"gradcam++"``, ...) or
            ``"guided-backprop"``, or a list of them (then a dict name -> result; every method
            is read from the same randomised copies).
        cascade: cascading (each step adds a group) or independent (one group at a time).
        seed: seed of the new values (non-negative int).
        layer: the layer of CAM methods; default the engine's default layer.
        groups: "blocks" (the model's blocks: its children, containers such as ``layer4``
            opened into their blocks), "modules" (every module that owns parameters, as
            Quantus' MPRT) or a list of module names (randomised in the order given).
            Otherwise groups are randomised from the output back to the input (forward order,
            reversed); groups the forward never calls are left out.
        init: "default" draws each parameter from a local generator: weights with a fan-in
            (>= 2-D) and their module's bias uniform in +-1/sqrt(fan_in) (torch's default
            initialisation), other parameters (normalisation scales and shifts) normal with
            the trained tensor's mean and standard deviation; buffers are kept. "reset" calls
            each module's ``reset_parameters()`` (Quantus' MPRT), with torch's global
            generator seeded with ``seed`` inside ``torch.random.fork_rng`` (restored after).
        top: the share of pixels the top-k overlap compares (0 < top <= 1).
        progress: progress bar: None shows one when the run takes more than a second.

    Returns:
        A ``Randomisation``, or a dict of them by method for a list of methods.

    Raises:
        ValueError, TypeError: for a bad argument, before any model pass.
    """
    methods = _methods(method)
    if not isinstance(cascade, bool):
        raise TypeError(f"cascade must be a bool, got {type(cascade).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise ValueError(f"seed must be an int in 0 .. 2**31 - 1, got {seed!r}")
    if init not in ("default", "reset"):
        raise ValueError(f"init must be 'default' or 'reset', got {init!r}")
    if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0 < top <= 1:
        raise ValueError(f"top must be a share of pixels in (0, 1], got {top!r}")
    cam_layer = _check_layer(engine, layer, methods)
    index = _target_index(engine, target)
    prepared = engine.prepare(image)
    if prepared.tensor.shape[0] != 1:
        raise ValueError("randomisation takes a single image, not a batch")
    twin = copy_model(engine.model)
    found = module_groups(twin, groups, prepared.tensor)

    originals: dict[str, torch.Tensor] = {}
    for name in methods:
        originals[name], index = _map(engine, prepared, name, cam_layer, index)
    assert index is not None
    from ..engine import GradCAM

    layouts = {cam_layer: engine._layouts[cam_layer]}
    copy_engine = GradCAM(
        twin,
        classes=engine.classes,
        transform=engine.transform,
        layers=[cam_layer],
        device=engine.device,
        score_fn=engine.score_fn,
        layouts=layouts,
    )
    trained = {id(t): t.detach().clone() for g in found for t in g.tensors()}
    maps: dict[str, list[torch.Tensor]] = {name: [] for name in methods}
    bar = progress_bar(len(found) * len(methods), "randomisation", progress, unit="map")
    try:
        for step, group in enumerate(found):
            if not cascade and step > 0:
                _restore(found[step - 1], trained)
            _randomise(group, seed, init)
            for name in methods:
                maps[name].append(_map(copy_engine, prepared, name, cam_layer, index)[0])
                bar.update(1)
    finally:
        bar.close()
    results = {
        name: _result(name, cam_layer, index, cascade, found, originals[name], maps[name], top)
        for name in methods
    }
    return results if not isinstance(method, str) else results[method]


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy, also of models whose attributes hold tensors computed from parameters
    (``torch.nn.utils.prune`` keeps ``weight = weight_orig * weight_mask``; deepcopy refuses
    such non-leaf tensors): those are copied detached, and the copy's own hooks recompute them
    at its next forward."""
    memo: dict[int, Any] = {}
    for module in model.modules():
        for value in vars(module).values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def module_groups(model: nn.Module, groups: Groups, example: torch.Tensor) -> list[_Group]:
    """The groups ``randomisation`` randomises, head first (``example`` finds forward order)."""
    named = dict(model.named_modules())
    if isinstance(groups, str):
        if groups == "blocks":
            found = _blocks(model)
        elif groups == "modules":
            found = [
                _Group(n, m, recurse=False)
                for n, m in named.items()
                if any(p.is_floating_point() for p in m.parameters(recurse=False))
            ]
        else:
            raise ValueError(f"groups must be 'blocks', 'modules' or a list of names: {groups!r}")
        ordered = _forward_order(model, found, example)
        ordered.reverse()
        if not ordered:
            raise ValueError("the model has no floating-point parameters to randomise")
        return ordered
    if not isinstance(groups, Sequence) or not groups:
        raise TypeError("groups must be 'blocks', 'modules' or a non-empty list of module names")
    chosen: list[_Group] = []
    for name in groups:
        if not isinstance(name, str) or name not in named:
            close = ", ".join(list(named)[1:8])
            raise ValueError(f"no module named {name!r} in the model (modules: {close}, ...)")
        group = _Group(name, named[name], recurse=name != "")
        if not group.parameters():
            raise ValueError(f"module {name!r} has no floating-point parameters to randomise")
        chosen.append(group)
    return chosen


# -- internals -------------------------------------------------------------------------------


def _methods(method: str | Sequence[str]) -> list[str]:
    """The method names asked for, checked (a str is one method)."""
    names = [method] if isinstance(method, str) else list(method)
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError("method must be a method name or a non-empty list of names")
    if len(set(names)) != len(names):
        raise ValueError(f"methods are listed more than once: {names}")
    for name in names:
        if name != GUIDED_BACKPROP:
            get_method(name)  # raises a ValueError listing the names
    return names


def _check_layer(engine: GradCAM, layer: str | None, methods: list[str]) -> str:
    """The CAM layer (checked against the engine and each method's availability there)."""
    name = engine.default_layer if layer is None else layer
    if name not in engine.layers:
        raise ValueError(f"unknown layer {name!r}; the engine has {', '.join(engine.layers)}")
    for method in methods:
        if method != GUIDED_BACKPROP:
            reason = get_method(method).unavailable(engine, name)
            if reason is not None:
                raise ValueError(reason)
    return name


def _target_index(engine: GradCAM, target: Any) -> int | None:
    """A class index from an index or a name (None: the top-1, found with the first map)."""
    if target is None:
        return None
    if isinstance(target, str):
        if target not in engine.classes:
            raise ValueError(f"unknown class name {target!r}")
        return engine.classes.index(target)
    if isinstance(target, bool) or not isinstance(target, int):
        raise TypeError(f"target must be a class index, a class name or None, got {target!r}")
    if not 0 <= target < engine.num_classes:
        raise ValueError(f"target {target} is out of range (0..{engine.num_classes - 1})")
    return target


def _map(
    engine: GradCAM, prepared: Any, method: str, layer: str, target: int | None
) -> tuple[torch.Tensor, int]:
    """One method's (H, W) map over the picture (CPU float32) and the class it explains."""
    if method == GUIDED_BACKPROP:
        if target is None:
            target = int(engine.scores(prepared).argmax(dim=1)[0])
        gradient = engine.guided_backprop(prepared, target=target)
        return gradient.abs().sum(dim=0).float().cpu(), target
    result = engine.explain(prepared, layer=layer, target=target, method=method)
    assert isinstance(result.target, int)
    return result.heatmap.float().cpu(), result.target


def _blocks(model: nn.Module) -> list[_Group]:
    """The model's children with parameters, containers opened (and a lone wrapper child)."""
    found: list[_Group] = []
    if any(p.is_floating_point() for p in model.parameters(recurse=False)):
        found.append(_Group("", model, recurse=False))
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

    def walk(prefix: str, module: nn.Module, wrapper: bool) -> None:
        children = [
            (f"{prefix}{n}", c)
            for n, c in module.named_children()
            if any(p.is_floating_point() for p in c.parameters())
        ]
        for name, child in children:
            own = any(p.is_floating_point() for p in child.parameters(recurse=False))
            # A model that only wraps another (``self.net = resnet``) is opened like a
            # container, so its blocks, not the whole network, are the steps.
            lone = wrapper and len(children) == 1 and not own
            if isinstance(child, containers) or lone:
                walk(f"{name}.", child, lone)
            else:
                found.append(_Group(name, child, recurse=True))

    walk("", model, not found)
    return found


def _forward_order(model: nn.Module, groups: list[_Group], example: torch.Tensor) -> list[_Group]:
    """``groups`` in the order the forward first calls them (the copy's forward, no grad)."""
    first: dict[int, int] = {}
    handles = []
    for number, group in enumerate(groups):

        def seen(module: nn.Module, args: Any, number: int = number) -> None:
            first.setdefault(number, len(first))

        handles.append(group.module.register_forward_pre_hook(seen))
    try:
        with evaluating(model), torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    called = sorted(first, key=first.__getitem__)
    return [groups[n] for n in called]


def _generator(seed: int, name: str) -> torch.Generator:
    """The group's own generator: the same values whichever order groups are randomised in."""
    return torch.Generator().manual_seed((seed << 32) | zlib.crc32(name.encode()))


def _randomise(group: _Group, seed: int, init: Init) -> None:
    """Give the group's parameters new values (see ``randomisation``'s ``init``)."""
    if init == "reset":
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            modules = group.module.modules() if group.recurse else [group.module]
            for module in modules:
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
        return
    generator = _generator(seed, group.name)
    modules = group.module.modules() if group.recurse else iter([group.module])
    with torch.no_grad():
        for module in modules:
            own = [
                (n, p) for n, p in module.named_parameters(recurse=False) if p.is_floating_point()
            ]
            fans = [p[0].numel() for _, p in own if p.dim() >= 2]
            for name, p in own:
                if p.dim() >= 2 or (name == "bias" and fans):
                    bound = 1 / math.sqrt(p[0].numel() if p.dim() >= 2 else fans[0])
                    new = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                    new = (2 * new - 1) * bound
                else:
                    trained = p.detach().double().cpu()
                    spread = float(trained.std()) if trained.numel() > 1 else 0.0
                    new = float(trained.mean()) + spread * torch.randn(
                        p.shape, generator=generator, dtype=torch.float64
                    )
                p.copy_(new.to(p.device, p.dtype))


def _restore(group: _Group, trained: dict[int, torch.Tensor]) -> None:
    """Put a group's trained parameters and buffers back (independent mode)."""
    with torch.no_grad():
        for t in group.tensors():
            t.copy_(trained[id(t)])


def _result(
    method: str,
    layer: str,
    target: int,
    cascade: bool,
    groups: list[_Group],
    original: torch.Tensor,
    maps: list[torch.Tensor],
    top: float,
) -> Randomisation:
    return Randomisation(
        method=method,
        layer=None if method == GUIDED_BACKPROP else layer,
        target=target,
        cascade=cascade,
        steps=tuple(g.name for g in groups),
        original=original,
        maps=torch.stack(maps),
        spearman=tuple(spearman(original, m) for m in maps),
        ssim=tuple(ssim(original, m) for m in maps),
        topk=tuple(topk_overlap(original, m, top) for m in maps),
        top=float(top),
    )
