"""Reading pictures: paths, PIL images and numpy arrays -> a checked RGB PIL image, and back.

Files are checked before any pixel is decoded (missing, a directory, unreadable, not an image,
truncated or corrupt, a decompression bomb), pictures for size and proportions (see
``MAX_ASPECT``); ``to_display`` turns a model-ready batch back into uint8 pictures.
"""

from __future__ import annotations

import errno
import os
import threading
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image

Normalize = tuple[list[float], list[float]]

#: Pictures thinner than 1:MAX_ASPECT are refused (see ``camwidgets.engine.inputs`` for why).
MAX_ASPECT = 32

ACCEPTED = (
    "a PIL image, a numpy array (H, W) or (H, W, C) with C in 1/3/4 (uint8, or float in [0, 1]), "
    "a torch tensor (C, H, W) or (N, C, H, W) already preprocessed for the model, a file path, "
    "or a list of these"
)


class ImageNotFoundError(FileNotFoundError, ValueError):
    """A path given as an image does not exist (also a ValueError, like every bad input).

    ``errno`` and ``filename`` are set as on any FileNotFoundError; the message names the path
    once (OSError's own text would repeat it after the errno).
    """

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


# warnings.catch_warnings swaps process-wide state; one lock keeps our own threads from
# restoring each other's filters in the wrong order.
_WARNINGS_LOCK = threading.Lock()


def to_pil(image: Any) -> Image.Image:
    """Open paths and convert PIL images or HWC numpy arrays to a checked RGB PIL image."""
    if isinstance(image, (str, os.PathLike)):
        return _open_path(image)
    if isinstance(image, Image.Image):
        check_picture_size(image.width, image.height, "image")
        return _decode(image, "image")
    if isinstance(image, np.ndarray):
        return _array_to_pil(image)
    raise TypeError(f"cannot use a {type(image).__name__} as an image; accepted: {ACCEPTED}")


def check_picture_size(width: int, height: int, what: str) -> None:
    """Refuse empty pictures, decompression bombs and extreme proportions (before decoding)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"{what} is empty ({width} x {height} pixels)")
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ValueError(
            f"{what} has {width} x {height} = {width * height:,} pixels, more than "
            f"PIL.Image.MAX_IMAGE_PIXELS ({limit:,}): it could be a decompression bomb. Resize "
            "it first, or raise PIL.Image.MAX_IMAGE_PIXELS if you trust it"
        )
    long, short = max(width, height), min(width, height)
    if long > MAX_ASPECT * short:
        raise ValueError(
            f"{what} is {width} x {height} pixels, proportions of 1:{long / short:.0f}; at most "
            f"1:{MAX_ASPECT} is accepted (resizing its short side to the model's input would "
            "need an enormous picture). Crop or pad it to proportions the model expects, or "
            "pass a preprocessed (C, H, W) tensor"
        )


def _open_path(image: str | os.PathLike[str]) -> Image.Image:
    """Open an image file, turning every way a file can be bad into a clear error."""
    text = os.fspath(image)
    if not isinstance(text, str):
        raise TypeError(f"image paths must be str or os.PathLike[str], got {type(text).__name__}")
    shown = text if len(text) <= 120 else f"{text[:60]}...{text[-40:]} ({len(text)} characters)"
    if not text:
        raise ValueError("the image path is an empty string")
    try:
        handle = open(text, "rb")  # noqa: SIM115 (closed below; PIL reads lazily from it)
    except FileNotFoundError:
        raise ImageNotFoundError(
            errno.ENOENT, f"image file {shown!r} does not exist", text
        ) from None
    except IsADirectoryError:
        raise ValueError(f"image path {shown!r} is a directory; give an image file") from None
    except ValueError as err:  # an embedded NUL character
        raise ValueError(f"image path {shown!r} is not a valid path: {err}") from None
    except OSError as err:
        reason = "the name is too long" if err.errno == errno.ENAMETOOLONG else err.strerror
        raise ValueError(f"cannot open image path {shown!r}: {reason}") from None
    with handle:
        try:
            with _WARNINGS_LOCK, warnings.catch_warnings():
                # PIL only warns between 1x and 2x MAX_IMAGE_PIXELS; refuse those too.
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                opened = Image.open(handle)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ValueError(
                f"image file {shown!r} could be a decompression bomb: {err}. Resize it first, or "
                "raise PIL.Image.MAX_IMAGE_PIXELS if you trust it"
            ) from None
        except MemoryError:
            raise
        except Exception as err:
            raise ValueError(
                f"cannot read {shown!r} as an image ({type(err).__name__}: {err}); accepted: "
                "image files that PIL decodes (PNG, JPEG, BMP, GIF, TIFF, WebP, ...)"
            ) from None
        with opened:
            check_picture_size(opened.width, opened.height, f"image file {shown!r}")
            return _decode(opened, f"image file {shown!r}")


def _decode(image: Image.Image, what: str) -> Image.Image:
    """Decode the pixels and convert to RGB; a truncated or corrupt picture is a ValueError."""
    try:
        image.load()  # a lazily opened picture decodes here, not inside the user's transform
        return image if image.mode == "RGB" else image.convert("RGB")
    except MemoryError:
        raise
    except Exception as err:
        raise ValueError(
            f"cannot decode {what} ({type(err).__name__}: {err}); it may be truncated or corrupt"
        ) from None


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
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"numpy image dtype {array.dtype} not supported; use uint8 or float")
    check_picture_size(int(array.shape[1]), int(array.shape[0]), "numpy image")
    if array.dtype == np.uint8:
        pixels = array
    else:
        low, high = float(np.min(array)), float(np.max(array))  # NaN propagates through both
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("image contains NaN or infinite pixel values")
        if low < 0.0 or high > 1.0:
            raise ValueError(
                f"float numpy image values span [{low:.3g}, {high:.3g}]; "
                "float images must lie in [0, 1] (or pass uint8 in [0, 255])"
            )
        pixels = np.round(array.astype(np.float32) * 255.0).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
    return Image.fromarray(np.ascontiguousarray(pixels), mode=mode).convert("RGB")


def to_display(tensor: torch.Tensor, normalize: Normalize | None) -> np.ndarray:
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
