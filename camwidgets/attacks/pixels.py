"""The engine's transform, replayed on a float picture tensor so gradients reach the pixels.

An attack perturbs the *picture* (values in [0, 1], at the picture's own size), so its budget
``eps`` means "at most eps of the full brightness range per pixel and channel". The model sees
``transform(picture)``; to get dY/d(picture) the transform must be differentiable. torchvision
transforms accept tensors as well as PIL images, and the deterministic ones (resize, crop,
normalise, dtype conversion) are differentiable on tensors; ``ToTensor`` becomes the identity
on a picture that already is a float tensor. Random augmentations and arbitrary callables cannot
be replayed: :func:`differentiable` refuses them with a message that names the step.

The replay is checked against the real transform on the clean picture (:func:`check_replay`):
tensor and PIL resizing differ by rounding, so a small difference is expected; a large one
means the replay is not the transform the model is used with, and the attack refuses.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch

from ..engine import preprocess

__all__ = ["NotDifferentiableError", "Replay", "check_replay", "differentiable"]

Replay = Callable[[torch.Tensor], torch.Tensor]
"""(N, 3, H, W) float pictures in [0, 1] -> the model's (N, C, h, w) input, differentiably."""

# Steps that turn a PIL picture into a float tensor in [0, 1]: the identity on our tensor.
_TO_TENSOR = {"ToTensor", "MaybeToTensor", "ToImage", "ToImageTensor"}
# The engine's torchvision-free preprocessing (the default and the zoo's transforms): the same
# steps as torchvision's, and they take (N, C, H, W) tensors too.
_OWN_TENSOR_STEPS: tuple[type, ...] = (
    preprocess.Resize,
    preprocess.CenterCrop,
    preprocess.Normalize,
)


def _tensor_steps() -> tuple[type, ...]:
    """Deterministic steps that take (N, C, H, W) tensors and are differentiable there.

    torchvision's are looked up only once torchvision is loaded: a transform made of its steps
    cannot exist before, and importing it costs seconds (see engine/preprocess.py).
    """
    if "torchvision" not in sys.modules:
        return _OWN_TENSOR_STEPS
    from torchvision import transforms

    return (
        *_OWN_TENSOR_STEPS,
        transforms.Resize,
        transforms.CenterCrop,
        transforms.Normalize,
        transforms.Pad,
        transforms.Grayscale,
        transforms.ConvertImageDtype,
    )


# The ``transforms()`` of torchvision's weights (resize, crop, dtype, normalise on tensors).
_PRESET_NAMES = {"ImageClassification"}
_RANDOM_HINT = (
    "random augmentations change the picture on every call, so there is no fixed function to "
    "attack; give the engine its evaluation transform (resize, crop, ToTensor, Normalize)"
)


class NotDifferentiableError(ValueError):
    """The engine's transform has a step that cannot be replayed on a picture tensor."""


def differentiable(transform: Any) -> Replay:
    """The engine's transform as a function of a float picture tensor, or a clear refusal.

    Accepted: ``transforms.Compose`` (v1 or v2) of ``Resize``, ``CenterCrop``, ``ToTensor``
    (``PILToTensor`` + ``ConvertImageDtype``), ``Normalize``, ``Pad``, ``Grayscale``;
    torchvision weights' ``transforms()`` presets; v2 ``ToImage``/``ToDtype``/``Resize``/...

    Raises:
        NotDifferentiableError: a step is random or unknown (named in the message).
    """
    steps: list[Replay] = []
    _collect(transform, steps, state={"uint8": False})

    def replay(pictures: torch.Tensor) -> torch.Tensor:
        out = pictures
        for step in steps:
            out = step(out)
        return out

    return replay


def _collect(step: Any, out: list[Replay], state: dict[str, bool]) -> None:
    """Append the tensor version of ``step`` (recursing into compositions) to ``out``."""
    name = type(step).__name__
    inner = getattr(step, "transforms", None)
    if name == "Compose" and isinstance(inner, (list, tuple)):
        for sub in inner:
            _collect(sub, out, state)
        return
    if name.startswith("Random") or name in {"AutoAugment", "RandAugment", "TrivialAugmentWide"}:
        raise NotDifferentiableError(f"the transform's step {name} is random: {_RANDOM_HINT}")
    if name in _TO_TENSOR:
        return
    if name == "PILToTensor":
        # uint8 values 0..255 follow; a later ConvertImageDtype(float) divides them back.
        state["uint8"] = True
        out.append(lambda x: x * 255.0)
        return
    if name in {"ConvertImageDtype", "ToDtype"}:
        dtype = getattr(step, "dtype", None)
        if isinstance(dtype, dict):  # v2 ToDtype may map types to dtypes
            dtype = next(iter(dtype.values()), None)
        if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
            if state["uint8"] and (name != "ToDtype" or getattr(step, "scale", False)):
                state["uint8"] = False
                out.append(lambda x: x / 255.0)
            return
        raise NotDifferentiableError(
            f"the transform's step {name}({dtype}) turns the picture into integers, which has "
            "no gradient; the model must receive a float tensor"
        )
    if isinstance(step, _tensor_steps()) or name in _PRESET_NAMES or _is_v2_tensor_step(step):
        out.append(_call(step))
        return
    raise NotDifferentiableError(
        f"the transform's step {name} is not one the attack can replay on a picture tensor "
        "(accepted: Compose of Resize, CenterCrop, ToTensor/PILToTensor+ConvertImageDtype, "
        "Normalize, Pad, Grayscale, and torchvision weights' transforms()); attack the "
        "preprocessed tensor instead, or give the engine a transform made of those steps"
    )


def _is_v2_tensor_step(step: Any) -> bool:
    """A deterministic torchvision.transforms.v2 step (they all take tensors)."""
    module = type(step).__module__
    name = type(step).__name__
    return module.startswith("torchvision.transforms.v2") and name in {
        "Resize",
        "CenterCrop",
        "Normalize",
        "Pad",
        "Grayscale",
        "ToPureTensor",
    }


def _call(step: Any) -> Replay:
    """A torchvision step applied to the tensor, returned as a plain tensor."""

    def apply(x: torch.Tensor) -> torch.Tensor:
        result = step(x)
        if not isinstance(result, torch.Tensor):
            raise NotDifferentiableError(
                f"the transform's step {type(step).__name__} returned "
                f"{type(result).__name__} for a tensor, not a tensor"
            )
        return result.as_subclass(torch.Tensor) if type(result) is not torch.Tensor else result

    return apply


# Largest mean absolute difference (in the model's normalised units) between the replay and the
# real transform on the clean picture. PIL's and torch's antialiased resizes differ by a few
# 1/255 steps at edges (a few hundredths after dividing by a typical std of 0.2); a wrong
# replay (a missing crop, another normalisation) differs by tenths or more.
REPLAY_TOLERANCE = 0.05


def check_replay(replayed: torch.Tensor, real: torch.Tensor, name: str) -> None:
    """Refuse when the replayed transform does not give the model the input it really gets."""
    if replayed.shape != real.shape:
        raise NotDifferentiableError(
            f"the engine's transform ({name}) gives a {tuple(real.shape)} input but its replay "
            f"on the picture gives {tuple(replayed.shape)}: it cannot be replayed faithfully"
        )
    gap = float((replayed.float() - real.float()).abs().mean())
    if gap > REPLAY_TOLERANCE:
        raise NotDifferentiableError(
            f"the engine's transform ({name}) replayed on the picture differs from the real "
            f"one by {gap:.3f} on average (at most {REPLAY_TOLERANCE} is accepted): the attack "
            "would not be of the input the model sees"
        )
