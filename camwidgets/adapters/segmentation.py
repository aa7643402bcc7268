"""torchvision segmentation models: FCN, DeepLabV3, LR-ASPP (a dict with ``out`` in eval mode).

``out`` is (N, classes, H, W) raw scores at the input's size (the model upsamples inside). The
class view is each class's score summed over the picture, so ``target=c`` is the region of the
whole picture (``Region(all pixels, c)``); ``Region`` explains any part. The default layer is
the backbone's last map: the heads after it (ASPP, the classifier) already compute class
scores, and the last of them *is* the output, whose Grad-CAM map is only the mask again.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
from torch import nn

from camwidgets.targets import dense_scores

from ..engine import preprocess
from .base import Conventions

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WHY = (
    "the backbone's last map: the head after it computes the class scores themselves, so its "
    "maps only repeat the output"
)


def is_segmenter(model: nn.Module) -> bool:
    """Whether ``model`` is one of torchvision's semantic segmentation models."""
    if "torchvision" not in sys.modules:  # no torchvision model exists: don't pay its import
        return False
    from torchvision.models.segmentation._utils import _SimpleSegmentationModel
    from torchvision.models.segmentation.lraspp import LRASPP

    return isinstance(model, (_SimpleSegmentationModel, LRASPP))


def summed(output: object) -> torch.Tensor:
    """The class view: each class's raw score summed over the output grid, (N, classes)."""
    return dense_scores(output).sum(dim=(-2, -1))


def _default(names: Sequence[str]) -> str | None:
    inside = [n for n in names if n.startswith("backbone.") and ":" not in n]
    return inside[-1] if inside else None


def conventions(model: nn.Module) -> Conventions:
    """The segmentation conventions (see the module docstring)."""
    return Conventions(
        kind="segmenter",
        score_fn=summed,
        # No resize: the mask of a Region lies over the picture as given.
        transform=preprocess.Compose(  # torchvision's steps, without importing torchvision
            [preprocess.ToTensor(), preprocess.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
        ),
        default_layer=_default,
        why_default=WHY,
    )
