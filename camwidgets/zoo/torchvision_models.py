"""Pretrained torchvision classifiers as :class:`ZooModel` s, for users with a network.

The weights come through torch hub's cache: the first call downloads them to
``torch.hub.get_dir()/checkpoints/``; without a network, put the file there by hand.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torchvision
from torchvision import transforms
from torchvision.models import WeightsEnum

from camwidgets.zoo.registry import ZooModel

__all__ = ["checkpoint_path", "pil_transform", "torchvision_model"]


def _resolve(name: str, weights: str | WeightsEnum) -> WeightsEnum:
    """Turn a weights name such as "DEFAULT" or "IMAGENET1K_V1" into the enum member."""
    try:
        enum: Any = torchvision.models.get_model_weights(name)
    except ValueError as err:
        raise ValueError(
            f"unknown torchvision model {name!r}; see torchvision.models.list_models()"
        ) from err
    if not isinstance(weights, str):
        if not isinstance(weights, enum):
            raise ValueError(f"{weights!r} are not weights of {name!r}")
        return weights
    try:
        member: WeightsEnum = enum[weights]
    except KeyError as err:
        names = ", ".join(["DEFAULT", *enum.__members__])
        raise ValueError(f"unknown weights {weights!r} for {name!r}; available: {names}") from err
    return member


def checkpoint_path(name: str = "resnet50", weights: str | WeightsEnum = "DEFAULT") -> str:
    """Where torch hub looks for (and downloads) the weight file of ``name``."""
    member = _resolve(name, weights)
    filename = os.path.basename(member.url)
    return os.path.join(torch.hub.get_dir(), "checkpoints", filename)


def pil_transform(preset: Any) -> transforms.Compose:
    """Re-express a classification preset as a Compose that ends in its ``Normalize``.

    torchvision's preset does resize, crop, to-float and normalise in one opaque module; the
    engine needs the ``Normalize`` as the last step of a ``Compose`` so it can undo it for
    display, so the same steps are spelled out here.
    """
    try:
        crop, resize = preset.crop_size, preset.resize_size
        mean, std = preset.mean, preset.std
    except AttributeError as err:
        raise TypeError(
            f"{type(preset).__name__} is not an image-classification preset; only "
            "classification weights are supported"
        ) from err
    return transforms.Compose(
        [
            transforms.Resize(
                resize, interpolation=preset.interpolation, antialias=preset.antialias
            ),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def torchvision_model(name: str = "resnet50", weights: str | WeightsEnum = "DEFAULT") -> ZooModel:
    """A pretrained torchvision classifier with its class names and preprocessing.

    Args:
        name: a torchvision model name, e.g. "resnet50", "resnet18", "convnext_tiny".
        weights: a member name of the model's weights enum ("DEFAULT", "IMAGENET1K_V1", ...)
            or the member itself.

    Returns:
        The model in eval mode, its ``meta["categories"]`` and a PIL transform whose last step
        is a ``transforms.Normalize``.

    Raises:
        ValueError: unknown model or weights name.
        RuntimeError: the weights are neither cached nor downloadable; the message says where
            to put the file. Chained from the original network error.
    """
    member = _resolve(name, weights)
    try:
        model = torchvision.models.get_model(name, weights=member)
    except OSError as err:  # URLError, socket errors and timeouts are all OSErrors
        target = checkpoint_path(name, member)
        raise RuntimeError(
            f"could not download the weights {member} for {name!r} ({err}). Without a network, "
            f"fetch {member.url} elsewhere and save it as {target} "
            "(that is torch.hub.get_dir()/checkpoints/; set TORCH_HOME to move it)."
        ) from err
    model.eval()
    crop = member.transforms().crop_size[0]
    return ZooModel(
        name=name,
        model=model,
        classes=list(member.meta["categories"]),
        transform=pil_transform(member.transforms()),
        input_size=(crop, crop),
        description=f"torchvision {name} with weights {member} ({member.url}).",
    )
