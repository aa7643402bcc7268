"""Anything image-like -> a normalised NCHW tensor, plus the picture to display."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

ImageLike = Image.Image | np.ndarray | torch.Tensor | str | Path
Transform = Callable[[Image.Image], torch.Tensor]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ACCEPTED = (
    "a PIL image, a numpy array (H, W) or (H, W, C) with C in 1/3/4 (uint8, or float in [0, 1]), "
    "a torch tensor (C, H, W) or (N, C, H, W) already preprocessed for the model, a file path, "
    "or a list of these"
)


def default_transform(size: int = 224) -> transforms.Compose:
    """ImageNet preprocessing: resize to 256/224 of ``size``, centre-crop, normalise."""
    return transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


@dataclass(frozen=True)
class Prepared:
    """A model-ready batch, the pictures aligned with it, and a fingerprint of its content."""

    tensor: torch.Tensor
    display: np.ndarray
    fingerprint: str
    batched: bool

    @property
    def size(self) -> tuple[int, int]:
        """The model-input (H, W) that heat maps are resized to."""
        return int(self.tensor.shape[-2]), int(self.tensor.shape[-1])


def find_normalize(transform: Any) -> tuple[list[float], list[float]] | None:
    """Mean and std of the transform's normalisation, to undo it for display, if it has one."""
    if isinstance(transform, transforms.Normalize):
        return list(map(float, transform.mean)), list(map(float, transform.std))
    steps = getattr(transform, "transforms", None)
    if isinstance(steps, Sequence):
        for step in reversed(steps):
            found = find_normalize(step)
            if found is not None:
                return found
    mean, std = getattr(transform, "mean", None), getattr(transform, "std", None)
    if isinstance(mean, Sequence) and isinstance(std, Sequence):  # torchvision weights.transforms()
        return list(map(float, mean)), list(map(float, std))
    return None


def to_pil(image: Any) -> Image.Image:
    """Open paths and convert PIL images or HWC numpy arrays to an RGB PIL image."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ValueError(f"image path {str(path)!r} does not exist or is not a file")
        with Image.open(path) as opened:
            return _checked_pil(opened.convert("RGB"))
    if isinstance(image, Image.Image):
        return _checked_pil(image if image.mode == "RGB" else image.convert("RGB"))
    if isinstance(image, np.ndarray):
        return _array_to_pil(image)
    raise TypeError(f"cannot use a {type(image).__name__} as an image; accepted: {ACCEPTED}")


def _checked_pil(image: Image.Image) -> Image.Image:
    """Reject empty PIL images."""
    if image.width == 0 or image.height == 0:
        raise ValueError(f"image is empty ({image.width}x{image.height})")
    return image


def _array_to_pil(array: np.ndarray) -> Image.Image:
    """HW or HWC numpy (uint8, or float in [0, 1]) -> RGB PIL image."""
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"numpy image has shape {array.shape}, which looks channels-first; "
            "numpy images must be (H, W) or (H, W, C); pass a torch tensor for (C, H, W)"
        )
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ValueError(
            f"numpy image has shape {array.shape}; expected (H, W) or (H, W, C) with C in 1, 3, 4"
        )
    if array.size == 0:
        raise ValueError(f"image is empty (shape {array.shape})")
    if array.dtype == np.uint8:
        pixels = array
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("image contains NaN or infinite pixel values")
        if array.min() < 0.0 or array.max() > 1.0:
            raise ValueError(
                f"float numpy image values span [{array.min():.3g}, {array.max():.3g}]; "
                "float images must lie in [0, 1] (or pass uint8 in [0, 255])"
            )
        pixels = np.round(array * 255.0).astype(np.uint8)
    else:
        raise TypeError(f"numpy image dtype {array.dtype} not supported; use uint8 or float")
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
    return Image.fromarray(np.ascontiguousarray(pixels), mode=mode).convert("RGB")


def _check_tensor(tensor: torch.Tensor, channels: int) -> torch.Tensor:
    """Validate a preprocessed tensor and return it as NCHW."""
    if not torch.is_floating_point(tensor):
        raise TypeError(
            f"tensor images must be float (already preprocessed for the model), got {tensor.dtype}"
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
    if not torch.isfinite(tensor).all():
        raise ValueError("image contains NaN or infinite pixel values")
    return tensor


def prepare(
    image: ImageLike | Sequence[ImageLike] | Prepared,
    transform: Transform,
    channels: int,
    device: torch.device,
    dtype: torch.dtype,
) -> Prepared:
    """Turn any accepted image (or list of them) into a model-ready batch on ``device``."""
    if isinstance(image, Prepared):
        return image
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("got an empty list of images")
        parts = [prepare(one, transform, channels, device, dtype) for one in image]
        sizes = {tuple(p.tensor.shape[1:]) for p in parts}
        if len(sizes) > 1:
            raise ValueError(f"images in a batch must share one preprocessed shape, got {sizes}")
        tensor = torch.cat([p.tensor for p in parts])
        display = np.concatenate([p.display for p in parts])
        return Prepared(tensor, display, _fingerprint(tensor), batched=True)
    # An (N, C, H, W) tensor is a batch when N > 1; (1, C, H, W) is the usual single image.
    batched = isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] > 1
    if isinstance(image, torch.Tensor):
        tensor = _check_tensor(image.detach(), channels)
    else:
        out = transform(to_pil(image))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the transform must return a torch.Tensor, got {type(out).__name__}")
        tensor = _check_tensor(out, channels)
    tensor = tensor.to(device=device, dtype=dtype)
    display = to_display(tensor, find_normalize(transform))
    return Prepared(tensor, display, _fingerprint(tensor), batched=batched)


def to_display(
    tensor: torch.Tensor, normalize: tuple[list[float], list[float]] | None
) -> np.ndarray:
    """Undo the normalisation (or min-max scale when unknown) -> uint8 (N, H, W, 3)."""
    pixels = tensor.detach().float().cpu()
    if normalize is not None and len(normalize[0]) == pixels.shape[1]:
        mean = torch.tensor(normalize[0]).view(1, -1, 1, 1)
        std = torch.tensor(normalize[1]).view(1, -1, 1, 1)
        pixels = pixels * std + mean
    else:
        # No known normalisation: stretch each image to the full range so it is visible.
        low = pixels.amin(dim=(1, 2, 3), keepdim=True)
        high = pixels.amax(dim=(1, 2, 3), keepdim=True)
        pixels = (pixels - low) / (high - low).clamp_min(1e-12)
    if pixels.shape[1] == 1:
        pixels = pixels.expand(-1, 3, -1, -1)
    elif pixels.shape[1] != 3:
        pixels = pixels[:, :3]
    rgb = (pixels.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return np.ascontiguousarray(rgb.numpy())


def _fingerprint(tensor: torch.Tensor) -> str:
    """Content hash of a preprocessed batch: equal pixels give equal keys, whatever the object."""
    data = tensor.detach().cpu().contiguous()
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{tuple(data.shape)}|{data.dtype}".encode())
    digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()
