"""A from-scratch Grad-CAM of any score of a model's output, the expected value for targets.

It shares no code with the engine: one forward hook on the layer's module (an entry of its
dict output for FPN levels), ``torch.autograd.grad`` of the score on that output, the formula;
for detectors, the resized picture and padded batch are read from ``model.transform`` by a
second hook, and the map is spread over the padded batch, cropped and resized to the picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform


@dataclass
class Reference:
    coarse: torch.Tensor  # (h, w) signed
    alpha: torch.Tensor  # (K,)
    activations: torch.Tensor  # (K, h, w)
    heatmap: torch.Tensor  # (H, W) over the input picture
    score: float


def reference_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    score_of: Callable[[Any], torch.Tensor],
    sign: float = 1.0,
    call: Callable[[nn.Module, torch.Tensor], Any] | None = None,
) -> Reference:
    """Grad-CAM of ``sign * score_of(model output)`` at ``layer`` for one (C, H, W) picture.

    ``layer`` is a module name, or ``module:key`` for one entry of a module's dict output.
    ``call`` runs the model (default: ``model(x[None])``).
    """
    name, _, key = layer.partition(":")
    module = dict(model.named_modules())[name]
    stored: list[torch.Tensor] = []
    geometry: list[Any] = []

    def hook(_m: nn.Module, _i: object, out: Any) -> Any:
        if key:
            stored[:] = [out[key]]
            return None
        stored[:] = [out]
        return out.clone()  # what the layer produced, whatever happens downstream

    def seen(_m: nn.Module, _i: object, out: Any) -> None:
        geometry[:] = [out[0]]

    handles = [module.register_forward_hook(hook)]
    transform = getattr(model, "transform", None)
    if isinstance(transform, GeneralizedRCNNTransform):
        handles.append(transform.register_forward_hook(seen))
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.enable_grad():
            source = x.clone().requires_grad_(True)
            output = call(model, source) if call is not None else model(source[None])
            score = score_of(output)
            (grad,) = torch.autograd.grad(sign * score, stored[0])
    finally:
        for handle in handles:
            handle.remove()
        for m, flag in flags:
            m.training = flag
    activations = stored[0].detach()[0]
    alpha = grad[0].mean(dim=(1, 2))
    coarse = (alpha[:, None, None] * activations).sum(0)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    relu = coarse.clamp_min(0)[None, None]
    if geometry:  # spread over the padded batch, crop the picture's part, resize to it
        images = geometry[0]
        padded = tuple(images.tensors.shape[-2:])
        h, w = images.image_sizes[0]
        spread = F.interpolate(relu, size=padded, mode="bilinear", align_corners=False)
        relu = spread[..., :h, :w]
    heat = F.interpolate(relu, size=size, mode="bilinear", align_corners=False)[0, 0]
    return Reference(coarse, alpha, activations, heat, float(score.detach()))


def assert_close_map(got: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-4) -> float:
    """``got`` equals ``expected`` to ``rtol`` of the expected map's largest magnitude; returns
    the observed relative difference."""
    assert got.shape == expected.shape
    scale = float(expected.abs().max())
    if scale == 0:  # a heat map whose coarse map is negative everywhere: ReLU gives zeros
        assert float(got.abs().max()) == 0
        return 0.0
    difference = float((got - expected).abs().max()) / scale
    assert difference <= rtol, f"relative difference {difference:.3g} > {rtol}"
    return difference
