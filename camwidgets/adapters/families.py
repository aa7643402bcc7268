"""Which family a model belongs to, and so which conventions it brings."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from . import detection, huggingface, segmentation, timm_cfg
from . import weights as tv_weights
from .base import Conventions


def conventions(
    model: nn.Module,
    weights: object = None,
    transform: object = None,
) -> Conventions:
    """The conventions of ``model`` (torchvision detection/segmentation, Hugging Face, timm),
    with ``weights`` (torchvision) and an image processor given as ``transform`` applied."""
    if detection.is_detector(model):
        found = detection.conventions(model)
    elif segmentation.is_segmenter(model):
        found = segmentation.conventions(model)
    elif huggingface.is_hf_model(model):
        found = huggingface.conventions(model)
    elif timm_cfg.is_timm_model(model):
        found = timm_cfg.conventions(model)
    else:
        found = Conventions()
    if huggingface.is_image_processor(transform):
        found = _replace(found, transform=huggingface.processor_transform(transform))
    if weights is not None:
        transform_of, categories = tv_weights.read(weights)
        found = _replace(found, transform=transform_of, classes=categories)
    return found


def _replace(found: Conventions, **changes: Any) -> Conventions:
    return dataclasses.replace(found, **changes)
