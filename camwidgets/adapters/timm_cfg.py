"""timm models: their ``pretrained_cfg`` (input size, crop, interpolation, mean, std) is the
default transform for pictures, built as timm builds it (``resolve_data_config`` then
``create_transform``)."""

from __future__ import annotations

from torch import nn

from .base import Conventions, Transform


def is_timm_model(model: nn.Module) -> bool:
    """Whether ``model`` carries a timm ``pretrained_cfg``."""
    return isinstance(getattr(model, "pretrained_cfg", None), dict) and bool(
        getattr(model, "pretrained_cfg", None)
    )


def transform_of(model: nn.Module) -> Transform:
    """The evaluation transform timm resolves for ``model``."""
    from timm.data.config import resolve_data_config
    from timm.data.transforms_factory import create_transform

    config = resolve_data_config({}, model=model)  # type: ignore[no-untyped-call]
    transform: Transform = create_transform(**config, is_training=False)
    return transform


def conventions(model: nn.Module) -> Conventions:
    """The timm conventions (see the module docstring)."""
    try:
        transform = transform_of(model)
    except ImportError:  # a model that looks like timm's without timm installed
        return Conventions()
    return Conventions(transform=transform)
