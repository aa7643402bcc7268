"""Argument checks shared by the engine: one rule per kind of argument, one message style.

Every check runs before any model pass and raises ``TypeError`` (wrong kind of value) or
``ValueError`` (right kind, wrong value) with what was given and what is accepted. numpy
scalars count as their Python kind (``np.bool_`` is a bool, ``np.int64`` an int); bools never
count as ints, because ``target=True`` or ``k=True`` is almost always a mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .inputs import check_finite


def describe_value(value: object) -> str:
    """``type value`` for messages, short, with numpy and torch scalars named precisely."""
    if isinstance(value, torch.Tensor):
        shape = tuple(value.shape)
        return f"a {str(value.dtype).replace('torch.', '')} tensor of shape {shape}"
    if isinstance(value, np.generic):
        return f"numpy.{type(value).__name__} {value!r}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def is_bool_like(value: object) -> bool:
    """True for ``bool``, ``numpy.bool_`` and 0-d bool tensors or arrays."""
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, np.ndarray):
        return value.dtype == np.bool_ and value.ndim == 0
    return isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.dim() == 0


def as_bool(value: object, name: str) -> bool:
    """A bool from ``bool``, ``numpy.bool_`` or a 0-d bool tensor; anything else is a TypeError."""
    if is_bool_like(value):
        return bool(value)
    raise TypeError(
        f"{name} must be True or False (a bool or numpy.bool_), got {describe_value(value)}"
    )


def as_index(value: object, name: str) -> int:
    """An int from ``int``, numpy integers or a 0-d integer tensor; never from a bool or float."""
    if is_bool_like(value):
        raise TypeError(f"{name} must be an integer, not a bool ({describe_value(value)})")
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or value.dtype.is_floating_point or value.dtype.is_complex:
            raise TypeError(
                f"{name} must be an integer (int, numpy integer or 0-d integer tensor), "
                f"got {describe_value(value)}"
            )
        if value.device.type == "meta":
            raise ValueError(f"{name} is a tensor on the meta device, which holds no value")
        return int(value.item())
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iu":
        return int(value)
    raise TypeError(
        f"{name} must be an integer (int, numpy integer or 0-d integer tensor), "
        f"got {describe_value(value)}"
    )


def as_positive_int(value: object, name: str) -> int:
    """An integer >= 1 (see ``as_index`` for what counts as an integer)."""
    number = as_index(value, name)
    if number < 1:
        raise ValueError(f"{name} must be a positive integer, got {number}")
    return number


def as_cache_bytes(value: object) -> int:
    """A positive, finite byte count: an int-like, or a float with a whole value (``1e9``)."""
    if is_bool_like(value):
        raise TypeError(f"cache_bytes must be a number of bytes, not a bool ({value!r})")
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if not math.isfinite(number) or not number.is_integer():
            raise ValueError(
                f"cache_bytes must be a positive whole number of bytes (e.g. 1 << 30), got {value}"
            )
        count = int(number)
    elif isinstance(value, (int, np.integer, np.ndarray, torch.Tensor)):
        count = as_index(value, "cache_bytes")
    else:
        raise TypeError(
            "cache_bytes must be a positive whole number of bytes (e.g. 1 << 30), "
            f"got {describe_value(value)}"
        )
    if count <= 0:
        raise ValueError(
            f"cache_bytes must be a positive whole number of bytes (e.g. 1 << 30), got {value}"
        )
    return count


def check_layers_argument(layers: object) -> list[str | nn.Module] | None:
    """``None``, one name/module, or a non-empty sequence of names/modules -> a list or None."""
    if layers is None:
        return None
    if isinstance(layers, (str, nn.Module)):
        return [layers]
    if not isinstance(layers, Sequence):
        raise TypeError(
            "layers must be None, a layer name or module, or a list of them, "
            f"got {describe_value(layers)}"
        )
    if len(layers) == 0:
        raise ValueError(
            "layers is empty; pass None to use every spatial layer, or at least one layer name"
        )
    for item in layers:
        if not isinstance(item, (str, nn.Module)):
            raise TypeError(
                f"each entry of layers must be a layer name or a module, got {describe_value(item)}"
            )
    return list(layers)


def check_callable(value: object, name: str, what: str) -> None:
    """``value`` must be None or callable."""
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be {what} or None, got {describe_value(value)}")


def _floating_placement(model: nn.Module) -> tuple[torch.device | None, torch.dtype]:
    """The device and floating dtype of the model's first floating parameter or buffer."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return None, torch.float32


def parse_device(device: object) -> torch.device:
    """``'cpu'``, ``'cuda:1'``, ``torch.device`` or a CUDA index -> a usable ``torch.device``."""
    if is_bool_like(device):
        raise TypeError(f"device must be a str, torch.device or int, got {describe_value(device)}")
    accepted = "accepted: 'cpu', 'cuda', 'cuda:N', 'mps', a torch.device, or a CUDA index N >= 0"
    if isinstance(device, (int, np.integer)):
        if int(device) < 0:
            raise ValueError(f"device index must be >= 0, got {int(device)}; {accepted}")
        wanted = torch.device("cuda", int(device))
    elif isinstance(device, torch.device):
        wanted = device
    elif isinstance(device, str):
        try:
            wanted = torch.device(device)
        except (RuntimeError, ValueError):
            hint = ""
            if device.strip().lower() != device:
                hint = f" (device names are lower case: {device.strip().lower()!r})"
            raise ValueError(f"unknown device {device!r}{hint}; {accepted}") from None
    else:
        raise TypeError(f"device must be a str, torch.device or int, got {describe_value(device)}")
    if wanted.type == "meta":
        raise ValueError("device='meta' holds no data, so nothing can be computed there")
    if wanted.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(wanted)!r} asked, but CUDA is not available here")
        if wanted.index is not None and wanted.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(wanted)!r} asked, but only {torch.cuda.device_count()} CUDA "
                "device(s) exist"
            )
    if wanted.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' asked, but MPS is not available here")
    return wanted


def resolve_placement(model: nn.Module, device: object) -> tuple[torch.device, torch.dtype]:
    """Where inputs go and the floating dtype the model computes in; never moves the model.

    ``device=None`` follows the model. An explicit device must match where the model's
    parameters live (the engine does not move models behind the user's back).
    """
    model_device, dtype = _floating_placement(model)
    if model_device is not None and model_device.type == "meta":
        raise ValueError(
            "the model's parameters are on the meta device (no data); load weights into it "
            "first (e.g. model.to_empty(device='cpu') then load_state_dict)"
        )
    if device is None:
        return (model_device or torch.device("cpu")), dtype
    wanted = parse_device(device)
    if model_device is None:
        return wanted, dtype
    same_index = wanted.index is None or model_device.index in (None, wanted.index)
    if wanted.type != model_device.type or not same_index:
        raise ValueError(
            f"device={str(wanted)!r} but the model's parameters are on {model_device}; move the "
            "model first (the engine never moves it), or leave device=None"
        )
    return model_device if wanted.index is None else wanted, dtype


def check_scores(scores: object, batch: int, score_fn: Callable[..., Any] | None) -> torch.Tensor:
    """The (N, classes) float score matrix a forward must produce, checked.

    Under grad mode the scores must carry a graph back to the input: a ``score_fn`` that
    detaches (``.detach()``, ``.item()``, numpy, ``torch.no_grad``) would give zero gradients.
    """
    source = "score_fn" if score_fn is not None else "the model"
    hint = (
        "score_fn must return an (N, classes) float tensor"
        if score_fn is not None
        else "pass score_fn= to turn the model's output (e.g. a dict or tuple) into one"
    )
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        got = (
            f"{tuple(scores.shape)} {str(scores.dtype).replace('torch.', '')}"
            if isinstance(scores, torch.Tensor)
            else type(scores).__name__
        )
        raise ValueError(f"model output is {got}, expected raw class scores (N, classes); {hint}")
    if not scores.is_floating_point():
        raise ValueError(f"{source} returned {scores.dtype} scores; {hint}")
    if scores.shape[0] != batch or scores.shape[1] < 1:
        raise ValueError(
            f"{source} returned scores of shape {tuple(scores.shape)} for a batch of {batch}; "
            f"{hint}"
        )
    if torch.is_grad_enabled() and not scores.requires_grad:
        raise ValueError(
            f"{source} returned scores that do not depend on the input through autograd "
            "(detached?); Grad-CAM needs the graph: do not call .detach(), .item(), .numpy() "
            "or torch.no_grad() inside the model or score_fn"
        )
    return scores


def class_names(classes: Sequence[str] | Any | None, count: int) -> list[str]:
    """Class names from a list, from torchvision weights' metadata, or "0".."count-1"."""
    if classes is None:
        return [str(i) for i in range(count)]
    meta = getattr(classes, "meta", None)
    if isinstance(meta, dict) and "categories" in meta:
        classes = meta["categories"]
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError("classes must be a list of names or torchvision weights with categories")
    names = [str(c) for c in classes]
    if len(names) != count:
        raise ValueError(f"got {len(names)} class names but the model outputs {count} scores")
    return names


def check_scores_finite(scores: torch.Tensor) -> None:
    """Non-finite scores make every map and probability NaN: refuse them, naming the cause."""
    try:
        check_finite(scores.detach())
    except ValueError:
        raise ValueError(
            f"the model's scores contain NaN or infinite values for this input ({scores.dtype}); "
            "an activation overflowed inside the model (inputs far outside the range it was "
            "trained on, or float16 overflow); no map is computed from them"
        ) from None


def check_map(
    coarse: torch.Tensor,
    weights: torch.Tensor | None,
    activations: torch.Tensor,
    layer: str,
    method: str,
) -> None:
    """A map must be finite; if not, say whether the activations, weights or method caused it."""
    try:
        check_finite(coarse)
        return
    except ValueError:
        pass
    cause = f"the method {method!r} produced them from finite inputs"
    for what, tensor in (("activations", activations), ("channel weights", weights)):
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            cause = f"the {what} at layer {layer!r} are not finite (overflow inside the model)"
            break
    what = "output" if method == "activations" else f"{method} map"
    raise ValueError(f"the {what} at layer {layer!r} contains NaN or inf: {cause}")
