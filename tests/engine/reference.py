"""An independent, from-scratch Grad-CAM used as the expected value in tests.

It shares no code with the engine: one hook that hands a *copy* downstream (so the stored
output is the layer's true output), ``torch.autograd.grad`` on that output, then the formula.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reference_gradcam(
    model: nn.Module, x: torch.Tensor, layer: str, target: int, sign: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(heatmap, coarse, alpha, activations) for one image x of shape (1, C, H, W)."""
    module = dict(model.named_modules())[layer]
    stored: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        stored.clear()
        stored.append(out)
        return out.clone()

    handle = module.register_forward_hook(hook)
    training = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.enable_grad():
            scores = model(x.clone().requires_grad_(True))
            (grad,) = torch.autograd.grad(sign * scores[0, target], stored[0])
    finally:
        handle.remove()
        for m, flag in training:
            m.training = flag
    activations = stored[0].detach()[0]
    alpha = grad[0].mean(dim=(1, 2))
    coarse = (alpha[:, None, None] * activations).sum(0)
    heat = F.interpolate(
        coarse.clamp_min(0)[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False
    )[0, 0]
    return heat, coarse, alpha, activations
