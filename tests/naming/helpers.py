"""A planted-detector model and concept data whose right names are known by construction."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchvision import transforms

from camwidgets import GradCAM

SIDE = 64


class Detector(nn.Module):
    """Channel 0 fires on red pixels, 1 on blue ones, 2 on green ones (absent from the data).

    ``features`` is a fixed 1x1 convolution, a ReLU and a 4x4 average pool (a 16x16 map); the
    head pools and reads the channels linearly, so Grad-CAM's alpha is the head's row / 256.
    """

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            conv.weight.copy_(
                torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]]).view(
                    3, 3, 1, 1
                )
            )
            conv.bias.zero_()
        self.features = nn.Sequential(conv, nn.ReLU(), nn.AvgPool2d(4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, -1.0, 0.5], [-1.0, 2.0, 0.5]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def detector_engine() -> GradCAM:
    """An engine on a fresh Detector, classes ("red", "blue"), no normalisation."""
    model = Detector().eval()
    return GradCAM(
        model,
        classes=["red", "blue"],
        transform=transforms.Compose([transforms.Resize((SIDE, SIDE)), transforms.ToTensor()]),
    )


def planted(n: int, seed: int = 0) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Grey noisy scenes with a red and/or a blue square; masks of both and of the background."""
    rng = np.random.default_rng(seed)
    items: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    for i in range(n):
        image = np.clip(rng.normal(128, 10, size=(SIDE, SIDE, 3)), 0, 255)
        masks: dict[str, np.ndarray] = {}
        for name, colour, present in (
            ("red square", (230, 20, 20), i % 3 != 2),
            ("blue square", (20, 20, 230), i % 3 != 0),
        ):
            if not present:
                continue
            side = int(rng.integers(10, 20))
            top, left = rng.integers(0, SIDE - side, size=2)
            mask = np.zeros((SIDE, SIDE), dtype=bool)
            mask[top : top + side, left : left + side] = True
            # Noisy paint: exact ties at a channel's top would leave nothing above T_k.
            image[mask] = np.array(colour) + rng.normal(0, 8, size=(int(mask.sum()), 3))
            for other in masks.values():  # the new square covers part of an earlier one
                other &= ~mask
            masks[name] = mask
        masks["background"] = ~np.any(np.stack(list(masks.values())), axis=0)
        items.append((np.clip(image, 0, 255).astype(np.uint8), masks))
    return items
