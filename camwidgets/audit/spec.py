"""What it takes to build the audit's engine again, in this process or in a Ray actor."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from camwidgets.engine import GradCAM
from camwidgets.engine.inputs import Transform

__all__ = ["EngineSpec", "engine_spec"]


@dataclass(frozen=True)
class EngineSpec:
    """What it takes to build the engine again in another process (a Ray actor).

    Attributes:
        model: the network, or a zoo name ("shapes", "shortcut").
        classes: class names (None: the zoo's, or "0".."n-1").
        transform: PIL image -> normalised tensor (None: the zoo's, or ImageNet's).
        layers: restrict the engine's layers.
        score_fn: as for ``GradCAM``.
    """

    model: nn.Module | str
    classes: Sequence[str] | None = None
    transform: Transform | None = None
    layers: Sequence[str] | None = None
    score_fn: Callable[[Any], torch.Tensor] | None = None

    def build(self, device: str | torch.device | None = None, own: bool = False) -> GradCAM:
        """A fresh engine on ``device``.

        The model is moved there only when it is ours to move: a zoo model, or (``own``) the
        copy a Ray actor unpickled; a user's model is left where it is.
        """
        model, classes, transform = self.model, self.classes, self.transform
        if isinstance(model, str):
            from camwidgets.zoo import load

            bundle = load(model)
            model = bundle.model
            classes = classes if classes is not None else bundle.classes
            transform = transform if transform is not None else bundle.transform
            own = True
        if device is not None and own:
            model = model.to(device)
        return GradCAM(
            model,
            classes=classes,
            transform=transform,
            layers=self.layers,
            score_fn=self.score_fn,
            device=device,
            cache_bytes=1 << 20,  # the audit uses the uncached batch path only
        )


def engine_spec(
    model: nn.Module | GradCAM | str,
    classes: Sequence[str] | None = None,
    transform: Transform | None = None,
) -> EngineSpec:
    """Normalise the ``model`` argument: a module, a ready engine, or ``"zoo:NAME"``."""
    if isinstance(model, GradCAM):
        if classes is not None or transform is not None:
            raise TypeError("with a GradCAM engine as the model, give no classes or transform")
        return EngineSpec(
            model.model, model.classes, model.transform, list(model.layers), model.score_fn
        )
    if isinstance(model, str):
        name = model.removeprefix("zoo:")
        from camwidgets.zoo.registry import DESCRIPTIONS

        if name not in DESCRIPTIONS:
            raise ValueError(
                f"unknown model {model!r}; give a torch.nn.Module, a GradCAM, or one of "
                f"{', '.join('zoo:' + n for n in DESCRIPTIONS)}"
            )
        return EngineSpec(name, classes, transform)
    if isinstance(model, nn.Module):
        return EngineSpec(model, classes, transform)
    raise TypeError(
        f"model must be a torch.nn.Module, a GradCAM or 'zoo:NAME', got {type(model).__name__}"
    )
