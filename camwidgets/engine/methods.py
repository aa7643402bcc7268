"""How channel weights alpha are made, and the targets they are made for."""

from __future__ import annotations

from dataclasses import dataclass

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


def gradcam_weights(gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM: alpha_k = mean over i,j of dY/dA^k_ij; (N, K, h, w) -> (N, K)."""
    return gradients.mean(dim=(-2, -1))


def cam_weights(fc_weight: torch.Tensor, classes: tuple[int, ...]) -> torch.Tensor:
    """CAM (Zhou et al.): alpha_k = w_{c,k}, the linear head's row for each class; -> (N, K)."""
    return fc_weight[list(classes)]


METHODS = ("gradcam", "cam")
