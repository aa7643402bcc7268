"""The conventions a model brings (``Conventions``) and the geometry of a forward (``Frame``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ScoreFn = Callable[[object], torch.Tensor]
Transform = Callable[[Any], torch.Tensor]


@dataclass
class Frame:
    """How the model's internal batch lies over the input pictures, filled during a forward.

    Detection models resize each picture and pad the batch (``GeneralizedRCNNTransform``):
    ``padded`` is the batch's (H, W) and ``sizes`` each resized picture's (H, W) inside it, top
    left. Models without such a step leave both unset: their maps lie over the input itself.
    """

    padded: tuple[int, int] | None = None
    sizes: list[tuple[int, int]] = field(default_factory=list)

    def to_picture(self, maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(N, h, w) maps -> (N, H, W) over the input pictures, bilinear (align_corners=False).

        With a padded batch: spread over the padded batch, crop each picture's part (the
        padding dropped exactly), then resize that to the input size.
        """
        if self.padded is None:
            return _resize(maps, size)
        spread = _resize(maps, self.padded)
        rows = [
            _resize(spread[i : i + 1, :h, :w], size)
            for i, (h, w) in enumerate(self._per_image(len(maps)))
        ]
        return torch.cat(rows)

    def _per_image(self, count: int) -> list[tuple[int, int]]:
        if len(self.sizes) != count:
            raise RuntimeError(f"the model reported {len(self.sizes)} image sizes for {count}")
        return self.sizes


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]


@contextmanager
def _no_frame(model: nn.Module) -> Iterator[Frame]:
    yield Frame()


@dataclass(frozen=True)
class Conventions:
    """What the engine needs to know about a model family (all optional).

    Attributes:
        kind: "classifier", "detector" or "segmenter".
        score_fn: model output -> (N, classes) class view, when the output is not that already.
        transform: the default picture -> (C, H, W) transform.
        classes: the default class names.
        num_classes: the class count, when the class view cannot tell it from one forward.
        within: the only modules whose outputs are candidate maps (all channels-first), e.g. a
            detector's backbone; None: every module, layouts detected.
        default_layer: picks the default among the candidate names (None: the engine's rule).
        frame: a context manager around each forward that records the internal geometry.
        why_default: one sentence on the default layer, for the docs and ``repr``.
    """

    kind: str = "classifier"
    score_fn: ScoreFn | None = None
    transform: Transform | None = None
    classes: Sequence[str] | None = None
    num_classes: int | None = None
    within: Callable[[str], bool] | None = None
    default_layer: Callable[[Sequence[str]], str | None] | None = None
    frame: Callable[[nn.Module], AbstractContextManager[Frame]] = _no_frame
    why_default: str = ""
