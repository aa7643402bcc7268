"""Small seeded models and images for the widget tests: real torch networks, made here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import transforms

from camwidgets.engine import GradCAM
from tests.conftest import with_random_batchnorm

SIZE = 64
CLASSES = [f"class {i}" for i in range(10)]


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus a (projected) shortcut, as in a ResNet basic block."""

    def __init__(self, inp: int, out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.down = nn.Conv2d(inp, out, 1, stride, bias=False) if stride > 1 or inp != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    """A ResNet-shaped CNN: stem, layer1..layer4 (4 px maps at 64x64 input), avgpool, fc."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.layer3 = Block(16, 24, 2)
        self.layer4 = Block(24, 32, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_resnet(seed: int = 0) -> TinyResNet:
    """A seeded TinyResNet in eval mode with BN statistics that are not trivial."""
    torch.manual_seed(seed)
    model = TinyResNet()
    with_random_batchnorm(model)
    return model


def small_transform(size: int = SIZE) -> transforms.Compose:
    """Resize and normalise to the tiny model's input size."""
    return transforms.Compose(
        [
            transforms.Resize(size),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.4, 0.3), (0.25, 0.2, 0.3)),
        ]
    )


def picture(seed: int, size: tuple[int, int] = (80, 96)) -> np.ndarray:
    """A seeded smooth RGB picture (uint8 HWC) with a bright blob, so maps are not flat."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size[0] / 6) ** 2))
    base = rng.uniform(0, 1, 3)[None, None, :] * 0.5
    rgb = base + blob[..., None] * rng.uniform(0.3, 0.7, 3) + rng.normal(0, 0.05, (*size, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def hooks(model: nn.Module) -> list[tuple[str, int]]:
    """The number of hooks of every kind on every module."""
    kinds = (
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_forward_hooks_with_kwargs",
        "_state_dict_hooks",
    )
    return [(f"{n}.{k}", len(getattr(m, k))) for n, m in model.named_modules() for k in kinds]


@pytest.fixture
def model() -> TinyResNet:
    return tiny_resnet()


@pytest.fixture
def images() -> list[np.ndarray]:
    return [picture(1), picture(2), picture(3)]


@pytest.fixture
def make_engine(model: TinyResNet) -> Callable[..., GradCAM]:
    """A GradCAM for the tiny model (the reference engines of tests are separate instances)."""

    def make(**kwargs: Any) -> GradCAM:
        kwargs.setdefault("classes", CLASSES)
        kwargs.setdefault("transform", small_transform())
        kwargs.setdefault("layers", ["layer1", "layer2", "layer3", "layer4"])
        return GradCAM(model, **kwargs)

    return make


@pytest.fixture(autouse=True)
def _two_threads() -> Iterator[None]:
    """Keep torch to the machine's share of cores during tests."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def kit() -> Any:
    """The helpers above, for tests (conftest modules are not imported by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(classes=CLASSES, hooks=hooks, transform=small_transform, picture=picture)


@pytest.fixture
def shows() -> Callable[..., None]:
    """``shows(fig, result, channel, bars)``: assert the figure draws ``result``."""
    from tests.widgets.helpers import assert_figure_shows

    return assert_figure_shows


@pytest.fixture
def grid() -> Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``grid(trace)``: the (rows, cols, values) a heat-map trace draws."""
    from tests.widgets.helpers import grid_of

    return grid_of
