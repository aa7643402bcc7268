"""torchvision detection models: Faster/Mask/Keypoint R-CNN, RetinaNet, FCOS, SSD, SSDlite.

They take a list of (C, H, W) pictures in [0, 1] (an (N, C, H, W) batch iterates as one), and in
eval mode return one dict per picture with ``boxes`` (in the input's pixels), ``labels`` and
``scores``, after their own score threshold and NMS. The chosen box's score is still a
function of the backbone's features (softmax or sigmoid of the box head's logits, indexed by
the thresholding and NMS), so its gradient is exact.

Inside, ``model.transform`` (``GeneralizedRCNNTransform``) normalises, resizes each picture
(``min_size``/``max_size``, or SSD's fixed size) and pads the batch to a multiple of
``size_divisible``: every backbone map lies over that padded batch. The engine's heat map is
brought back to the input picture through ``Frame``: spread over the padded batch, the padding
cropped, then resized to the picture.

Layers: the backbone's modules (its trunk's stages and, for dict outputs, each level, named
``module:key``, e.g. ``backbone.fpn:0`` ... ``backbone.fpn:pool``). The default is the trunk's
last stage (``backbone.body.layer4`` for the ResNet-FPN models, the last map of
``backbone.features`` for SSD): every detection, whatever FPN level its box was pooled from,
reads it (through the FPN's top-down path), while one FPN level sees only the objects of its
scale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..engine import preprocess
from .base import Conventions, Frame

WHY = (
    "the trunk's last stage: every detection reads it (through the FPN's top-down path when "
    "there is one), while an FPN level sees only the boxes of its scale"
)


def is_detector(model: nn.Module) -> bool:
    """Whether ``model`` is built on torchvision's ``GeneralizedRCNNTransform``."""
    if "torchvision" not in sys.modules:  # no torchvision model exists: don't pay its import
        return False
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return isinstance(getattr(model, "transform", None), GeneralizedRCNNTransform) and isinstance(
        getattr(model, "backbone", None), nn.Module
    )


def num_classes(model: nn.Module) -> int | None:
    """The detector's class count, labels included background where it has one."""
    roi = getattr(model, "roi_heads", None)
    predictor = getattr(roi, "box_predictor", None)
    cls_score = getattr(predictor, "cls_score", None)
    if isinstance(cls_score, nn.Linear):
        return int(cls_score.out_features)
    head = getattr(getattr(model, "head", None), "classification_head", None)
    for attribute in ("num_classes", "num_columns"):
        value = getattr(head, attribute, None)
        if isinstance(value, int):
            return value
    return None


def best_per_label(count: int) -> Any:
    """The class view of detections: (N, classes), each label's best box score, else 0."""

    def score(output: object) -> torch.Tensor:
        found = detections_of(output)
        rows = []
        for det in found:
            scores, labels = det["scores"], det["labels"].long()
            row = scores.new_zeros(count)
            if len(scores):
                row = row.scatter_reduce(0, labels, scores, "amax", include_self=True)
            rows.append(row)
        view = torch.stack(rows)
        # Empty detections still carry the graph (an empty index of the head's output), so
        # the view depends on the input through autograd even when nothing was detected.
        touch = [d["scores"].sum() for d in found if d["scores"].requires_grad]
        return view + 0 * torch.stack(touch).sum() if touch else view

    return score


def detections_of(output: object) -> list[Mapping[str, torch.Tensor]]:
    """The per-picture dicts of a detection output, checked."""
    if not isinstance(output, (list, tuple)) or not all(
        isinstance(d, Mapping) and {"boxes", "labels", "scores"} <= set(d) for d in output
    ):
        raise ValueError(
            "expected a detector's output, a list of dicts with 'boxes', 'labels' and "
            f"'scores'; got {type(output).__name__} (is the model in training mode?)"
        )
    return [d for d in output if isinstance(d, Mapping)]


@contextmanager
def _frame(model: nn.Module) -> Iterator[Frame]:
    """Record the resized picture sizes and the padded batch size of one forward."""
    frame = Frame()

    def seen(module: nn.Module, args: Any, output: Any) -> None:
        images = output[0] if isinstance(output, tuple) else output
        tensor = getattr(images, "tensors", None)
        sizes = getattr(images, "image_sizes", None)
        if isinstance(tensor, torch.Tensor) and isinstance(sizes, list):
            frame.padded = (int(tensor.shape[-2]), int(tensor.shape[-1]))
            frame.sizes = [(int(h), int(w)) for h, w in sizes]

    transform = model.transform
    assert isinstance(transform, nn.Module)
    handle = transform.register_forward_hook(seen)
    try:
        yield frame
    finally:
        handle.remove()


def _within(name: str) -> bool:
    return name == "backbone" or name.startswith(("backbone.", "backbone:"))


def _default(names: Sequence[str]) -> str | None:
    """The trunk's last map: under ``backbone.body`` / ``backbone.features``, else the backbone."""
    for trunk in ("backbone.body", "backbone.features"):
        inside = [n for n in names if n.startswith(trunk + ".") and ":" not in n]
        if inside:
            return inside[-1]
    plain = [n for n in names if ":" not in n]
    return plain[-1] if plain else None


def conventions(model: nn.Module) -> Conventions:
    """The detection conventions (see the module docstring)."""
    count = num_classes(model)
    return Conventions(
        kind="detector",
        score_fn=best_per_label(count) if count is not None else None,
        # The model normalises and resizes inside: the picture goes in as it is, in [0, 1]
        # (torchvision's PILToTensor + ConvertImageDtype(float32), without importing it).
        transform=preprocess.Compose([preprocess.ToTensor()]),
        num_classes=count,
        within=_within,
        default_layer=_default,
        frame=_frame,
        why_default=WHY,
    )
