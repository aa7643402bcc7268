"""An independent, from-scratch Grad-CAM used as the expected value in tests.

It shares no code with the engine: one hook that hands a *copy* downstream (so the stored
output is the layer's true output), ``torch.autograd.grad`` on that output, then the formula.
``layer_output_and_gradient`` is that first half, shared by every test that needs A and dY/dA.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def layer_output_and_gradient(
    model: nn.Module, x: torch.Tensor, layer: str, targets: list[int], sign: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, d(sign * sum_i Y[i, targets[i]]) / dA) of ``layer`` for a batch x, in eval mode.

    Both in the layer's own layout and dtype; the model's flags are restored afterwards.
    """
    module = dict(model.named_modules())[layer]
    stored: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        stored[:] = [out]
        return out.clone()

    handle = module.register_forward_hook(hook)
    training = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.enable_grad():
            scores = model(x.clone().requires_grad_(True))
            rows = torch.arange(len(targets), device=scores.device)
            picked = scores[rows, torch.tensor(targets, device=scores.device)].sum()
            (grad,) = torch.autograd.grad(sign * picked, stored[0])
    finally:
        handle.remove()
        for m, flag in training:
            m.training = flag
    return stored[0].detach(), grad


def reference_gradcam(
    model: nn.Module, x: torch.Tensor, layer: str, target: int, sign: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(heatmap, coarse, alpha, activations) for one image x of shape (1, C, H, W)."""
    output, grad = layer_output_and_gradient(model, x, layer, [target], sign)
    activations = output[0]
    alpha = grad[0].mean(dim=(1, 2))
    coarse = (alpha[:, None, None] * activations).sum(0)
    heat = F.interpolate(
        coarse.clamp_min(0)[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False
    )[0, 0]
    return heat, coarse, alpha, activations
