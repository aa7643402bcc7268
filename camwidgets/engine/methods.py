"""The method extension point: what the cache holds for (image, class, layer) -> a map.

A method is one small object: it says what it needs (``needs_gradients``, ``needs_alpha``,
``needs_head``), the engine hands it exactly that in a ``MethodInputs`` (taken from its cache
where possible, so switching between methods that share gradients runs no model pass), and it
returns the signed coarse map on the layer's grid (and channel weights, where the method has
them). The engine applies ReLU and the bilinear resize, and checks the result is finite.

Adding a method::

    class MeanActivation(Method):
        name = "mean-activation"
        supports_counterfactual = False

        def __call__(self, inputs: MethodInputs) -> MethodOutput:
            return MethodOutput(None, inputs.activations.mean(dim=1))

    register_method(MeanActivation())
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class ClassScore:
    """The differentiated quantity: ``sign * Y[i, c_i]`` summed over the batch.

    Images in a batch are independent in eval mode, so the gradient of the sum with respect to
    image i's activations is exactly that image's own gradient: one backward serves the batch.
    The counterfactual is ``sign=-1``; since gradients are linear in the target, the engine
    differentiates ``sign=+1`` once and scales, so toggling costs no pass.
    """

    classes: tuple[int, ...]
    sign: float = 1.0

    def __call__(self, scores: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(len(self.classes), device=scores.device)
        picked = scores[rows, torch.tensor(self.classes, device=scores.device)]
        return self.sign * picked.sum()


@dataclass(frozen=True)
class MethodInputs:
    """What a method may read for N images, one class each, at one layer.

    Attributes:
        activations: the layer output A, (N, K, h, w) float32, channels first.
        classes: the class explained for each image.
        sign: +1, or -1 for the counterfactual (already applied to the fields below).
        layer: the layer's name.
        image: the model input, (N, C, H, W).
        gradients: ``sign * dY_c/dA``, (N, K, h, w) float32, when ``needs_gradients``.
        alpha: ``sign * mean_ij dY_c/dA^k_ij``, (N, K), when ``needs_alpha``.
        head_weight: ``sign * W[c]`` of the pooled linear head, (N, K), when ``needs_head``.
        scores: batch (M, C, H, W) -> raw scores (M, classes), no gradients, eval mode.
    """

    activations: torch.Tensor
    classes: tuple[int, ...]
    sign: float
    layer: str
    image: torch.Tensor
    gradients: torch.Tensor | None
    alpha: torch.Tensor | None
    head_weight: torch.Tensor | None
    scores: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MethodOutput:
    """A method's answer: channel weights (N, K) where it has them, and the signed coarse map."""

    weights: torch.Tensor | None
    coarse: torch.Tensor


class EngineInfo(Protocol):
    """What a method may ask of the engine to say whether it applies at a layer."""

    @property
    def cam_layers(self) -> list[str]: ...


class Method:
    """Base class of the methods: set the class attributes and implement ``__call__``."""

    name: str = ""
    needs_gradients: bool = False
    needs_alpha: bool = False
    needs_head: bool = False
    supports_counterfactual: bool = True

    def unavailable(self, engine: EngineInfo, layer: str) -> str | None:
        """Why the method cannot run at ``layer`` (a sentence), or None when it can."""
        return None

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        raise NotImplementedError


def weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A^k: (N, K) x (N, K, h, w) -> (N, h, w)."""
    return torch.einsum("nk,nkhw->nhw", weights, activations)


class GradCAMMethod(Method):
    """Grad-CAM (Selvaraju et al., ICCV 2017, arXiv:1610.02391).

    alpha_k = (1 / hw) sum_ij dY_c/dA^k_ij;  coarse = sum_k alpha_k A^k.
    """

    name = "gradcam"
    needs_alpha = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.alpha is not None
        return MethodOutput(inputs.alpha, weighted_sum(inputs.alpha, inputs.activations))


class CAMMethod(Method):
    """CAM (Zhou et al., CVPR 2016, arXiv:1512.04150), for a global-average-pool + linear head.

    alpha_k = W_{c,k}, the head's row for class c; coarse = sum_k W_{c,k} A^k. At the pooled
    layer Grad-CAM's alpha equals W_{c,k} / (h w), so the two maps differ by that factor only.
    """

    name = "cam"
    needs_head = True

    def unavailable(self, engine: EngineInfo, layer: str) -> str | None:
        if layer in engine.cam_layers:
            return None
        where = ", ".join(engine.cam_layers) or "no layer: the model has no GAP + linear head"
        return f"CAM is defined only at the pooled layer(s): {where}; got {layer!r}"

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.head_weight is not None
        return MethodOutput(
            inputs.head_weight, weighted_sum(inputs.head_weight, inputs.activations)
        )


METHODS: dict[str, Method] = {}
"""Registered methods by name, in registration order."""


def register_method(method: Method) -> Method:
    """Make ``method`` available to ``GradCAM.explain(..., method=method.name)``."""
    if not isinstance(method, Method) or not method.name:
        raise TypeError("register_method takes a Method instance with a non-empty name")
    METHODS[method.name] = method
    return method


def get_method(name: object) -> Method:
    """The registered method called ``name``, or a ValueError listing the names."""
    if not isinstance(name, str):
        raise TypeError(f"method must be a name (str), got {type(name).__name__}")
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return method


register_method(GradCAMMethod())
register_method(CAMMethod())
