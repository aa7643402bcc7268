"""Small seeded models and images for the widget tests: real torch networks, made here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

from camwidgets.engine import GradCAM
from tests.conftest import (
    TinyResNet,
    small_transform,
    tiny_resnet,
)
from tests.conftest import hook_state as hooks

CLASSES = [f"class {i}" for i in range(10)]


def picture(seed: int, size: tuple[int, int] = (80, 96)) -> np.ndarray:
    """A seeded smooth RGB picture (uint8 HWC) with a bright blob, so maps are not flat."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size[0] / 6) ** 2))
    base = rng.uniform(0, 1, 3)[None, None, :] * 0.5
    rgb = base + blob[..., None] * rng.uniform(0.3, 0.7, 3) + rng.normal(0, 0.05, (*size, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


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
