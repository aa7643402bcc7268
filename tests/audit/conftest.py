"""A small seeded CNN and a labelled, masked toy dataset for the audit tests, made here."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import transforms

from tests.conftest import with_random_batchnorm

SIZE = 32
CLASSES = ["zero", "one", "two", "three"]
MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.2, 0.3)


class SmallNet(nn.Module):
    """conv/bn/relu at 16x16, conv/bn/relu at 8x8 (the audited layer), pool, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, 2, 1)
        self.bn2 = nn.BatchNorm2d(12)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, len(CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.fc(torch.flatten(self.pool(out), 1))


def small_net(seed: int = 0) -> SmallNet:
    torch.manual_seed(seed)
    model = SmallNet()
    with_random_batchnorm(model)
    return model.eval()


def transform() -> transforms.Compose:
    return transforms.Compose(
        [transforms.Resize((SIZE, SIZE)), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    )


def picture(index: int, side: int = SIZE) -> np.ndarray:
    """A seeded noisy picture with a bright square somewhere."""
    rng = np.random.default_rng([7, index])
    pixels = rng.integers(0, 120, size=(side, side, 3)).astype(np.uint8)
    y, x = rng.integers(0, side - side // 4, size=2)
    pixels[y : y + side // 4, x : x + side // 4] = (250, 200, 40)
    return pixels


def square_mask(index: int, side: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng([7, index])
    rng.integers(0, 120, size=(side, side, 3))
    y, x = rng.integers(0, side - side // 4, size=2)
    mask = np.zeros((side, side), dtype=bool)
    mask[y : y + side // 4, x : x + side // 4] = True
    return mask


class ToyDataset:
    """(uint8 picture, label, mask) triples; counts which items were loaded."""

    def __init__(self, n: int, side: int = SIZE, fail_at: int | None = None) -> None:
        self.n, self.side, self.fail_at = n, side, fail_at
        self.loaded: list[int] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if index == self.fail_at:
            raise RuntimeError(f"simulated crash at item {index}")
        self.loaded.append(index)
        return picture(index, self.side), index % len(CLASSES), square_mask(index, self.side)


@pytest.fixture
def model() -> SmallNet:
    return small_net()
