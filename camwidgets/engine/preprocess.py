"""Image preprocessing without torchvision: the same numbers, a fraction of the import time.

``import torchvision`` (even for ``torchvision.transforms``) runs its package ``__init__``,
which imports every model and ``torchvision.ops``; those pull ``torch._dynamo`` and sympy and
cost several seconds, more than ``import torch`` itself adds on a small machine. The engine's
default ImageNet preprocessing and the zoo's scene preprocessing need only four steps, so they
are written here with PIL, numpy and torch, step for step as torchvision does them on PIL
images (PIL's own resize, crop and byte order), so a tensor made here equals torchvision's to
the bit (``tests/engine/test_preprocess.py`` checks it against torchvision).

The classes keep torchvision's names and attributes (``Compose.transforms``, ``Resize.size``,
``Resize.max_size``, ``CenterCrop.size``, ``Normalize.mean``/``std``), so code that reads a
transform's steps (undoing the normalisation for display, mapping a map back onto the picture)
reads these the same way.

Example:
    >>> from PIL import Image
    >>> t = Compose([Resize(73), CenterCrop(64), ToTensor(), Normalize((0.5,) * 3, (0.25,) * 3)])
    >>> t(Image.new("RGB", (100, 80))).shape
    torch.Size([3, 64, 64])
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CenterCrop",
    "Compose",
    "Normalize",
    "Resize",
    "ToTensor",
    "default_transform",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Size = int | Sequence[int]


class Compose:
    """Apply steps in order (``transforms`` lists them, as in torchvision)."""

    def __init__(self, transforms: Sequence[Callable[[Any], Any]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: Any) -> Any:
        for step in self.transforms:
            image = step(image)
        return image

    def __repr__(self) -> str:
        steps = "".join(f"\n    {step!r}" for step in self.transforms)
        return f"{type(self).__name__}({steps}\n)"


class Resize:
    """Resize a picture: an int sets the shorter side (aspect kept), (h, w) sets both.

    Bilinear with antialiasing (PIL's resize for PIL images, ``interpolate(antialias=True)``
    for tensors), the output size by torchvision's rule, ``max_size`` bounding the longer side.
    """

    def __init__(self, size: Size | None, max_size: int | None = None) -> None:
        if size is None and max_size is None:
            raise ValueError("Resize needs a size, or max_size when size is None")
        if not isinstance(size, int) and size is not None and len(size) not in (1, 2):
            raise ValueError(f"Resize size must be an int or 1 or 2 numbers, not {size!r}")
        if max_size is not None and not (isinstance(size, int) or size is None or len(size) == 1):
            raise ValueError("max_size applies only when size sets the shorter side (an int)")
        self.size = size
        self.max_size = max_size

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after the resize, by torchvision's rule (truncating the longer side)."""
        short, long = (width, height) if width <= height else (height, width)
        if self.size is None:
            assert self.max_size is not None  # checked in __init__
            new_short, new_long = int(self.max_size * short / long), self.max_size
        elif isinstance(self.size, int) or len(self.size) == 1:
            new_short = self.size if isinstance(self.size, int) else int(self.size[0])
            new_long = int(new_short * long / short)
            if self.max_size is not None and new_long > self.max_size:
                new_short, new_long = int(self.max_size * new_short / new_long), self.max_size
        else:
            return int(self.size[0]), int(self.size[1])
        return (new_long, new_short) if width <= height else (new_short, new_long)

    def __call__(self, image: Any) -> Any:
        height, width = _dimensions(image)
        new_h, new_w = self.output_size(height, width)
        if (new_h, new_w) == (height, width):
            return image
        if isinstance(image, Image.Image):
            return image.resize((new_w, new_h), Image.Resampling.BILINEAR)
        batch = image if image.ndim == 4 else image[None]
        floating = batch if batch.is_floating_point() else batch.float()
        out = F.interpolate(
            floating, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
        )
        if not batch.is_floating_point():
            out = out.round_().clamp_(0, 255).to(batch.dtype)
        return out if image.ndim == 4 else out[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, max_size={self.max_size})"


class CenterCrop:
    """Cut the centre (h, w) out of a picture, padding with zeros where it is smaller."""

    def __init__(self, size: Size) -> None:
        if not isinstance(size, int) and len(size) not in (1, 2):
            raise ValueError(f"CenterCrop size must be an int or 1 or 2 numbers, not {size!r}")
        self.size = size

    def __call__(self, image: Any) -> Any:
        crop_h, crop_w = _pair(self.size)
        height, width = _dimensions(image)
        top, left = _crop_start(height, crop_h), _crop_start(width, crop_w)
        if isinstance(image, Image.Image):
            if (top, left, crop_h, crop_w) == (0, 0, height, width):
                return image
            # PIL fills the part of the box outside the picture with zeros: torchvision's pad.
            return image.crop((left, top, left + crop_w, top + crop_h))
        pad = [max(0, -left), max(0, left + crop_w - width), max(0, -top)]
        pad.append(max(0, top + crop_h - height))
        if any(pad):
            image = F.pad(image, pad)
            top, left = top + pad[2], left + pad[0]
        return image[..., top : top + crop_h, left : left + crop_w]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class ToTensor:
    """PIL image or HWC numpy array -> CHW tensor; 8-bit pictures scaled to [0, 1]."""

    def __call__(self, picture: Any) -> torch.Tensor:
        if isinstance(picture, np.ndarray):
            array = picture[:, :, None] if picture.ndim == 2 else picture
            tensor = torch.from_numpy(array.transpose((2, 0, 1))).contiguous()
        elif isinstance(picture, Image.Image):
            tensor = _pil_to_tensor(picture)
        else:
            raise TypeError(f"ToTensor takes a PIL image or a numpy array, not {type(picture)}")
        if tensor.dtype == torch.uint8:
            return tensor.to(torch.get_default_dtype()).div(255)
        return tensor

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """``(x - mean) / std`` per channel, on a copy."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if any(float(s) == 0.0 for s in std):
            raise ValueError(f"std {tuple(std)} has a zero: dividing by it would give inf")
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        return tensor.sub(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def default_transform(size: int = 224) -> Compose:
    """ImageNet preprocessing: resize to 256/224 of ``size``, centre-crop, normalise.

    Equal, to the bit, to torchvision's ``Compose([Resize(round(size * 256 / 224)),
    CenterCrop(size), ToTensor(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])``.
    """
    return Compose(
        [
            Resize(round(size * 256 / 224)),
            CenterCrop(size),
            ToTensor(),
            Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _dimensions(image: Any) -> tuple[int, int]:
    """(height, width) of a PIL image or a (..., H, W) tensor."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, torch.Tensor) and image.ndim >= 2:
        return int(image.shape[-2]), int(image.shape[-1])
    raise TypeError(f"expected a PIL image or a (C, H, W) tensor, not {type(image).__name__}")


def _pair(size: Size) -> tuple[int, int]:
    """(h, w) from an int or one or two numbers."""
    if isinstance(size, int):
        return size, size
    values = [int(s) for s in size]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _crop_start(size: int, crop: int) -> int:
    """Where a centre crop starts (negative: torchvision pads (crop - size) // 2 in front)."""
    if crop > size:
        return -((crop - size) // 2)
    return round((size - crop) / 2.0)


_PIL_DTYPES = {
    "I": np.int32,
    "I;16" if sys.byteorder == "little" else "I;16B": np.int16,
    "F": np.float32,
}


def _pil_to_tensor(picture: Image.Image) -> torch.Tensor:
    """CHW tensor of a PIL image's pixels, in torchvision's dtypes per mode."""
    array = np.array(picture, _PIL_DTYPES.get(picture.mode, np.uint8), copy=True)
    tensor = torch.from_numpy(array)
    if picture.mode == "1":
        tensor = 255 * tensor
    channels = len(picture.getbands())
    return tensor.view(picture.height, picture.width, channels).permute(2, 0, 1).contiguous()
