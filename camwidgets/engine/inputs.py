"""Anything image-like -> a checked, normalised NCHW tensor (+ its picture and key, lazily).

Pictures (files, PIL images, numpy arrays) are read in ``pictures.py``, content keys made in
``fingerprints.py``; this module prepares tensors and remembers the ones it has seen.

What is checked, before any model pass and before any large allocation:

- files: missing (``FileNotFoundError``), a directory, a name too long for the file system,
  unreadable, not an image, truncated or corrupt, or a decompression bomb (more pixels than
  ``PIL.Image.MAX_IMAGE_PIXELS``; PIL only warns between 1x and 2x that limit, we refuse both
  from the header, before decoding any pixel);
- pictures (files, PIL images, numpy arrays): empty, more than ``PIL.Image.MAX_IMAGE_PIXELS``
  pixels, or thinner than 1:``MAX_ASPECT``. Extreme proportions are refused rather than resized:
  a resize of the short side (the usual ImageNet transform) would blow a 1 x 6000 strip up to
  256 x 1,536,000 pixels (GBs), and the transform is the user's, so the only bound that holds
  for every transform is on the picture that goes into it;
- tensors: dense (not sparse/nested), real floating point, not on the ``meta`` device,
  (C, H, W) or (N, C, H, W) with the model's channels, and finite *after* the cast to the
  model's dtype (a float64 1e300 becomes inf in float32): one fused ``aminmax`` pass.

Repeated calls with the same tensor object are free: the object (by identity, held weakly)
and its autograd ``_version`` recognise it, so it is neither re-checked nor re-hashed. Writes
that bypass PyTorch's version counter (through a numpy view, ``.data``) are not seen: pass a
new tensor, or clear the engine's cache, after such writes.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from .fingerprints import _device_hash, fingerprint
from .pictures import (
    ACCEPTED,
    MAX_ASPECT,
    ImageNotFoundError,
    Normalize,
    check_picture_size,
    to_display,
    to_pil,
)

# The engine's preprocessing is built without torchvision (see preprocess.py).
from .preprocess import IMAGENET_MEAN, IMAGENET_STD, default_transform

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | Path
Transform = Callable[[Image.Image], torch.Tensor]


class _Key:
    """A content key computed at most once, shared by every Prepared made from one tensor."""

    __slots__ = ("value",)

    def __init__(self, value: str | None = None) -> None:
        self.value = value


class Prepared:
    """A checked, model-ready batch; its content key and its pictures are made when first asked.

    Attributes:
        tensor: (N, C, H, W) on the model's device, in the model's dtype.
        batched: whether the input was a batch (a list, or N > 1), not a single image.
        fingerprint: a content key (equal pixels, equal key), computed once on first use, on
            the tensor's own device (no host copy of a CUDA batch).
        display: uint8 (N, H, W, 3) pictures with the normalisation undone, built on first use.

    Example:
        >>> import torch
        >>> p = Prepared(torch.zeros(1, 3, 8, 8), batched=False)
        >>> p.size, p.display.shape
        ((8, 8), (1, 8, 8, 3))
    """

    def __init__(
        self,
        tensor: torch.Tensor,
        batched: bool,
        normalize: Normalize | None = None,
        fingerprint: str | None = None,
        key: _Key | None = None,
    ) -> None:
        self._tensor = tensor
        self._batched = batched
        self._normalize = normalize
        self._key = key if key is not None else _Key(fingerprint)
        self._display: np.ndarray | None = None
        self._version = _version_of(tensor)

    @property
    def tensor(self) -> torch.Tensor:
        """The (N, C, H, W) model input."""
        return self._tensor

    @property
    def batched(self) -> bool:
        """Whether the input was a batch rather than one image."""
        return self._batched

    @property
    def size(self) -> tuple[int, int]:
        """The model-input (H, W) that heat maps are resized to."""
        return int(self._tensor.shape[-2]), int(self._tensor.shape[-1])

    @property
    def fingerprint(self) -> str:
        """Content key of the batch (computed once; idempotent, so racing threads agree)."""
        if self._key.value is None:
            self._key.value = fingerprint(self._tensor)
        return self._key.value

    @property
    def display(self) -> np.ndarray:
        """uint8 (N, H, W, 3) pictures, the normalisation undone (built once, on first use)."""
        if self._display is None:
            self._display = to_display(self._tensor, self._normalize)
        return self._display

    @property
    def current(self) -> bool:
        """False once the tensor was changed in place after it was prepared."""
        return _version_of(self._tensor) == self._version

    def __repr__(self) -> str:
        shape = tuple(self._tensor.shape)
        return f"Prepared(shape={shape}, dtype={self._tensor.dtype}, device={self._tensor.device})"


def find_normalize(transform: Any) -> Normalize | None:
    """Mean and std of the transform's normalisation, to undo it for display, if it has one.

    Read by duck typing (a ``transforms`` list of steps; ``mean`` and ``std``), so torchvision's
    steps, its ``weights.transforms()`` presets and camwidgets' own (preprocess.py) all count,
    without importing torchvision.
    """
    steps = getattr(transform, "transforms", None)
    if isinstance(steps, Sequence):
        for step in reversed(steps):
            found = find_normalize(step)
            if found is not None:
                return found
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    if isinstance(mean, (Sequence, torch.Tensor)) and isinstance(std, (Sequence, torch.Tensor)):
        return list(map(float, mean)), list(map(float, std))
    return None


# -- tensors -------------------------------------------------------------------------------


def _check_tensor(tensor: torch.Tensor, channels: int) -> torch.Tensor:
    """Validate a preprocessed tensor's kind and shape (no pass over its values); -> NCHW."""
    if tensor.layout != torch.strided or tensor.is_nested:
        raise TypeError(
            f"tensor images must be dense, got layout {tensor.layout}; call .to_dense() first"
        )
    if tensor.device.type == "meta":
        raise ValueError("the tensor image is on the meta device, which holds no pixel values")
    if tensor.is_complex() or not torch.is_floating_point(tensor):
        raise TypeError(
            "tensor images must be real floating point (already preprocessed for the model), "
            f"got {tensor.dtype}"
        )
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4:
        raise ValueError(
            f"tensor image has shape {tuple(tensor.shape)}; expected (C, H, W) or (N, C, H, W)"
        )
    if tensor.numel() == 0:
        raise ValueError(f"image is empty (shape {tuple(tensor.shape)})")
    if tensor.shape[1] != channels:
        raise ValueError(
            f"tensor image has {tensor.shape[1]} channels; the model takes {channels} "
            f"(shape {tuple(tensor.shape)}, expected (N, {channels}, H, W))"
        )
    return tensor


def check_finite(tensor: torch.Tensor, source: torch.Tensor | None = None) -> None:
    """Raise if any value is NaN or infinite: one fused min/max pass and one host sync.

    ``source`` is the tensor before the cast to the model's dtype; it is only read to say
    whether the values were non-finite already or overflowed in the cast.
    """
    low, high = torch.aminmax(tensor)  # NaN propagates to both; +-inf lands in one of them
    if bool((low * 0 + high * 0) == 0):
        return
    if source is not None and source.dtype != tensor.dtype:
        src_low, src_high = torch.aminmax(source.detach())
        if bool((src_low * 0 + src_high * 0) == 0):
            raise ValueError(
                f"image values span [{float(src_low):.3g}, {float(src_high):.3g}] in "
                f"{source.dtype}, which overflows the model's {tensor.dtype} "
                f"(largest finite value {torch.finfo(tensor.dtype).max:.3g})"
            )
    raise ValueError("image contains NaN or infinite pixel values")


# Same tensor object + same version -> same prepared input: no re-check, no re-hash.
# Keyed by id; the weak reference proves the object is the one seen (ids are reused).
@dataclass
class _Seen:
    ref: weakref.ref[torch.Tensor]
    state: tuple[object, ...]
    prepared: Prepared | None  # kept only when it shares storage with the source
    key: _Key


_SEEN: OrderedDict[tuple[int, torch.device, torch.dtype, int], _Seen] = OrderedDict()
_SEEN_LIMIT = 256
_SEEN_LOCK = threading.RLock()  # re-entrant: a weakref callback may run while it is held


def _version_of(tensor: torch.Tensor) -> int | None:
    """The autograd version counter; None for inference tensors, which have none."""
    return None if tensor.is_inference() else tensor._version


def _tensor_state(tensor: torch.Tensor) -> tuple[object, ...]:
    """What must be equal for a tensor object to still hold the same values."""
    return (
        tensor._version,
        tensor.data_ptr(),
        tensor.shape,
        tensor.stride(),
        tensor.dtype,
        tensor.device,
    )


def _prepare_tensor(
    image: torch.Tensor,
    channels: int,
    device: torch.device,
    dtype: torch.dtype,
    normalize: Callable[[], Normalize | None],
) -> Prepared:
    """A tensor input, recognised without any pass over its values when seen unchanged."""
    # An (N, C, H, W) tensor is a batch when N > 1; (1, C, H, W) is the usual single image.
    batched = image.dim() == 4 and image.shape[0] > 1
    key = (id(image), device, dtype, channels)
    seen = None if image.is_inference() else _SEEN.get(key)
    if seen is not None and seen.ref() is image and seen.state == _tensor_state(image):
        if seen.prepared is not None:
            return seen.prepared
        tensor = _check_tensor(image.detach(), channels).to(device=device, dtype=dtype)
        return Prepared(tensor, batched, normalize(), key=seen.key)
    tensor = _check_tensor(image.detach(), channels)
    converted = tensor.to(device=device, dtype=dtype)
    check_finite(converted, tensor)
    prepared = Prepared(converted, batched, normalize())
    # A converted copy is not kept (it would double the memory held), only its content key.
    shares = converted.untyped_storage().data_ptr() == image.untyped_storage().data_ptr()
    if not image.is_inference():  # no version counter: changes could not be seen
        _remember(key, image, prepared, keep=shares)
    return prepared


def _remember(
    key: tuple[int, torch.device, torch.dtype, int],
    image: torch.Tensor,
    prepared: Prepared,
    keep: bool,
) -> None:
    """Note a checked tensor (bounded count; the entry goes when the tensor is collected)."""

    def forget(ref: weakref.ref[torch.Tensor]) -> None:
        with _SEEN_LOCK:
            entry = _SEEN.get(key)
            if entry is not None and entry.ref is ref:
                del _SEEN[key]

    try:
        ref = weakref.ref(image, forget)
    except TypeError:  # a tensor subclass without weak references: no memo
        return
    entry = _Seen(ref, _tensor_state(image), prepared if keep else None, prepared._key)
    with _SEEN_LOCK:
        _SEEN[key] = entry
        _SEEN.move_to_end(key)
        while len(_SEEN) > _SEEN_LIMIT:
            _SEEN.popitem(last=False)


def prepare(
    image: ImageLike | Sequence[ImageLike] | Prepared,
    transform: Transform,
    channels: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Prepared:
    """Turn any accepted image (or list of them) into a checked, model-ready batch on ``device``."""
    if isinstance(image, Prepared):
        tensor = image.tensor
        same = tensor.device == device and tensor.dtype == dtype and tensor.shape[1] == channels
        if same and image.current:
            return image
        return _prepare_tensor(tensor, channels, device, dtype, lambda: image._normalize)
    if isinstance(image, torch.Tensor):
        return _prepare_tensor(image, channels, device, dtype, lambda: find_normalize(transform))
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("got an empty list of images")
        parts = [prepare(one, transform, channels, device, dtype) for one in image]
        sizes = {tuple(p.tensor.shape[1:]) for p in parts}
        if len(sizes) > 1:
            raise ValueError(f"images in a batch must share one preprocessed shape, got {sizes}")
        tensor = torch.cat([p.tensor for p in parts])
        return Prepared(tensor, True, find_normalize(transform))
    out = transform(to_pil(image))
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"the transform must return a torch.Tensor, got {type(out).__name__}")
    tensor = _check_tensor(out.detach(), channels)
    converted = tensor.to(device=device, dtype=dtype)
    check_finite(converted, tensor)
    return Prepared(converted, False, find_normalize(transform))


__all__ = [
    "ACCEPTED",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_ASPECT",
    "ImageLike",
    "ImageNotFoundError",
    "Normalize",
    "Prepared",
    "Transform",
    "_device_hash",
    "check_finite",
    "check_picture_size",
    "default_transform",
    "find_normalize",
    "fingerprint",
    "prepare",
    "to_display",
    "to_pil",
]
