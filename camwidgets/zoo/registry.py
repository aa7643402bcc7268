"""The shipped zoo models: what each is, how it is built, and how its weights are stored."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from camwidgets.engine.preprocess import Compose, Normalize, Resize, ToTensor
from camwidgets.zoo.models import SmallResNet
from camwidgets.zoo.scenes import MEAN, SHAPE_CLASSES, STD

__all__ = [
    "DESCRIPTIONS",
    "INPUT_SIZE",
    "WEIGHTS_DIR",
    "ZooModel",
    "build_model",
    "load",
    "load_weights",
    "save_weights",
    "scene_transform",
]

INPUT_SIZE: tuple[int, int] = (96, 96)
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

DESCRIPTIONS: dict[str, str] = {
    "shapes": (
        "Small ResNet (widths 16/32/64/128, layer4 map 12x12 at 96x96) trained on synthetic "
        "scenes of one or two coloured shapes (circle, square, triangle, star, cross, ring) on "
        "textured backgrounds. Grad-CAM at layer4 points at the explained shape."
    ),
    "shortcut": (
        "Same architecture, trained on single-shape scenes that always carry a small "
        "class-coloured mark in the top-left corner. It learned the mark, not the shape: "
        "Grad-CAM looks at the corner, and accuracy collapses when the mark is swapped."
    ),
}
"""The shipped models by name (``zoo.load(name)``), each with one paragraph on what it is."""


@dataclass(frozen=True)
class ZooModel:
    """A ready-to-explain model with everything needed to feed it.

    Attributes:
        name: registry name ("shapes", "shortcut", or a torchvision model name).
        model: the network, float32, in eval mode.
        classes: class names, indexed like the logits.
        transform: PIL image -> normalised (3, H, W) tensor; its last step is a ``Normalize``.
        input_size: (height, width) the transform produces.
        description: one paragraph on what the model is and what it teaches.
    """

    name: str
    model: nn.Module
    classes: list[str] = field(repr=False)
    transform: Callable[[Any], torch.Tensor] = field(repr=False)
    input_size: tuple[int, int]
    description: str = field(repr=False)


def scene_transform(size: tuple[int, int] = INPUT_SIZE) -> Compose:
    """PIL image -> normalised tensor, matching :func:`camwidgets.zoo.scenes.to_tensor`.

    Built from camwidgets' torchvision-free steps (the same numbers as torchvision's), so
    loading a zoo model does not import torchvision.
    """
    return Compose([Resize(size), ToTensor(), Normalize(MEAN, STD)])


def build_model() -> SmallResNet:
    """The zoo architecture with fresh (random) weights."""
    return SmallResNet(num_classes=len(SHAPE_CLASSES))


def save_weights(model: nn.Module, path: str | Path) -> None:
    """Store a state_dict with floating tensors in float16 (halves the file; accuracy is kept)."""
    state = {
        k: v.detach().to(torch.float16) if v.is_floating_point() else v.detach()
        for k, v in model.state_dict().items()
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a file written by :func:`save_weights` into ``model``, back in float32."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})


def load(name: str) -> ZooModel:
    """Load a shipped model by name.

    Args:
        name: "shapes" or "shortcut".

    Returns:
        The model in eval mode with its classes, transform and description.

    Raises:
        ValueError: ``name`` is not a shipped model.
        FileNotFoundError: the package was installed without its weight files.
    """
    if name not in DESCRIPTIONS:
        available = ", ".join(repr(n) for n in DESCRIPTIONS)
        raise ValueError(f"unknown zoo model {name!r}; available: {available}")
    path = WEIGHTS_DIR / f"{name}.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"weights for {name!r} missing at {path}; rebuild them with "
            f"`python -m camwidgets.zoo.train --model {name} --seed 0 --out {path}`"
        )
    model = build_model()
    load_weights(model, path)
    model.eval()
    return ZooModel(
        name=name,
        model=model,
        classes=list(SHAPE_CLASSES),
        transform=scene_transform(),
        input_size=INPUT_SIZE,
        description=DESCRIPTIONS[name],
    )
