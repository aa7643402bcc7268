"""Hugging Face ``transformers`` image models and image processors.

A ``...ForImageClassification`` returns a ``ModelOutput``: the scores are its ``logits``, the
class names ``config.id2label``. An image processor (``ViTImageProcessor``, ``AutoImageProcessor``
...) given as ``transform=`` turns each picture into ``pixel_values`` as the model expects, and
its ``image_mean``/``image_std`` undo the normalisation for display. Without one, pictures are
resized to ``config.image_size`` with ImageNet statistics.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import nn

from ..engine import preprocess
from .base import Conventions
from .segmentation import IMAGENET_MEAN, IMAGENET_STD


def _from_transformers(obj: object) -> bool:
    return any(cls.__module__.split(".")[0] == "transformers" for cls in type(obj).__mro__)


def is_hf_model(model: nn.Module) -> bool:
    """Whether ``model`` is a ``transformers`` model (a ``PreTrainedModel``)."""
    return _from_transformers(model) and hasattr(model, "config")


def is_image_processor(value: object) -> bool:
    """Whether ``value`` is a ``transformers`` image processor."""
    return (
        value is not None
        and _from_transformers(value)
        and hasattr(value, "preprocess")
        and callable(value)
    )


def logits(output: object) -> torch.Tensor:
    """The ``logits`` of a ``ModelOutput`` (or the output itself if it is a tensor)."""
    if isinstance(output, torch.Tensor):
        return output
    value = getattr(output, "logits", None)
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"the model returned {type(output).__name__} without logits; pass score_fn= to "
            "read the scores from it"
        )
    return value


def id2label(model: nn.Module) -> list[str] | None:
    """``config.id2label`` as a list in index order, when it names every label."""
    config = getattr(model, "config", None)
    mapping = getattr(config, "id2label", None)
    if not isinstance(mapping, dict) or not mapping:
        return None
    try:
        by_index = {int(k): str(v) for k, v in mapping.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(len(by_index))):
        return None
    return [by_index[i] for i in range(len(by_index))]


class ProcessorTransform:
    """A ``transformers`` image processor as a picture -> (C, H, W) transform.

    ``mean``/``std`` are the processor's, so the engine can undo the normalisation for display.
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        mean, std = getattr(processor, "image_mean", None), getattr(processor, "image_std", None)
        normalizes = getattr(processor, "do_normalize", True)
        self.mean = list(map(float, mean)) if normalizes and mean is not None else None
        self.std = list(map(float, std)) if normalizes and std is not None else None

    def __call__(self, picture: Image.Image) -> torch.Tensor:
        batch = self.processor(images=picture, return_tensors="pt")
        values = batch["pixel_values"]
        if not isinstance(values, torch.Tensor) or values.dim() != 4:
            raise TypeError("the image processor did not return (1, C, H, W) pixel_values")
        return values[0].float()

    def __repr__(self) -> str:
        return f"ProcessorTransform({type(self.processor).__name__})"


def processor_transform(processor: Any) -> ProcessorTransform:
    """Wrap an image processor as the engine's transform."""
    return ProcessorTransform(processor)


def imagenet_transform(side: int) -> preprocess.Compose:
    """ImageNet preprocessing at ``side`` (resize 256/224 of it, centre crop, normalise).

    torchvision's steps, number for number, without importing torchvision (engine/preprocess).
    """
    return preprocess.Compose(
        [
            preprocess.Resize(round(side * 256 / 224)),
            preprocess.CenterCrop(side),
            preprocess.ToTensor(),
            preprocess.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def conventions(model: nn.Module) -> Conventions:
    """The Hugging Face conventions (see the module docstring)."""
    config = getattr(model, "config", None)
    size = getattr(config, "image_size", None)
    side = size if isinstance(size, int) else size[0] if isinstance(size, (list, tuple)) else None
    return Conventions(
        score_fn=logits,
        transform=imagenet_transform(int(side)) if side else None,
        classes=id2label(model),
    )
