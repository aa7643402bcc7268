"""Where the model's input lies in the original picture, so maps can be drawn on the picture.

A classification transform resizes the picture (maybe keeping its aspect ratio) and often crops
its centre. Walking the transform's steps gives, per axis, a scale and an offset: a picture
coordinate ``x`` lands at model-input coordinate ``u = x * scale - offset`` (continuous pixel
coordinates, pixel i spanning [i, i + 1)). Transforms with steps of unknown geometry (random
crops, padding, custom callables) have no such map, and the caller says so.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from camwidgets.engine import preprocess


def _step_kinds() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """(neutral, resize, crop) step classes: camwidgets' own, and torchvision's if it is loaded.

    A transform made of torchvision steps has imported torchvision already; otherwise
    importing it here would only cost seconds (it pulls torch._dynamo) to recognise nothing.
    """
    neutral: tuple[type, ...] = (preprocess.ToTensor, preprocess.Normalize)
    resize: tuple[type, ...] = (preprocess.Resize,)
    crop: tuple[type, ...] = (preprocess.CenterCrop,)
    if "torchvision" in sys.modules:
        from torchvision import transforms
        from torchvision.transforms import v2

        # Steps that change pixel values but not where they are.
        neutral += (
            transforms.ToTensor,
            transforms.PILToTensor,
            transforms.ConvertImageDtype,
            transforms.Normalize,
            transforms.Grayscale,
            v2.ToImage,
            v2.ToDtype,
            v2.ToPureTensor,
            v2.Normalize,
            v2.Grayscale,
        )
        resize += (transforms.Resize, v2.Resize)
        crop += (transforms.CenterCrop, v2.CenterCrop)
    return neutral, resize, crop


_ROWS = 1024  # picture rows resampled at once


@dataclass(frozen=True)
class Geometry:
    """The model's view of a picture: per axis ``u = x * scale - offset``.

    Attributes:
        picture: (height, width) of the original picture.
        model_input: (height, width) of the model input.
        scale: (y, x) scale from picture to model-input coordinates.
        offset: (y, x) offset in model-input coordinates.
    """

    picture: tuple[int, int]
    model_input: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[float, float]

    def view(self) -> tuple[float, float, float, float]:
        """The part of the picture the model saw: (top, left, bottom, right), clipped to it."""
        (sy, sx), (oy, ox) = self.scale, self.offset
        (h, w), (mh, mw) = self.picture, self.model_input
        top, bottom = max(0.0, oy / sy), min(float(h), (mh + oy) / sy)
        left, right = max(0.0, ox / sx), min(float(w), (mw + ox) / sx)
        return top, left, bottom, right

    def covers_all(self) -> bool:
        """Whether the model saw the whole picture (nothing cropped away)."""
        top, left, bottom, right = self.view()
        h, w = self.picture
        # Within half a pixel: rounding in the resize step, not a crop.
        return top < 0.5 and left < 0.5 and bottom > h - 0.5 and right > w - 0.5

    def to_picture(self, values: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Resample a model-input-sized map onto the picture's pixels.

        Args:
            values: (H, W) map over the model input.

        Returns:
            The map at the picture's (height, width), bilinear, float32, zero where the model
            saw nothing; and a boolean mask of the pixels the model saw.
        """
        mh, mw = self.model_input
        if tuple(values.shape) != (mh, mw):
            raise ValueError(f"map has shape {tuple(values.shape)}, expected {(mh, mw)}")
        h, w = self.picture
        (sy, sx), (oy, ox) = self.scale, self.offset
        # Picture pixel centres (i + 0.5) in model-input coordinates, then in grid_sample's
        # [-1, 1] convention with align_corners=False (-1 and 1 are the outer pixel edges).
        u = (torch.arange(w, dtype=torch.float64) + 0.5) * sx - ox
        v = (torch.arange(h, dtype=torch.float64) + 0.5) * sy - oy
        gx = (2.0 * u / mw - 1.0).float()
        gy = (2.0 * v / mh - 1.0).float()
        source = values.detach().float().cpu()[None, None]
        rows = []
        # Blocks of rows keep the sampling grid small for very large photos.
        for start in range(0, h, _ROWS):
            block = gy[start : start + _ROWS]
            grid = torch.stack(torch.meshgrid(block, gx, indexing="ij")[::-1], dim=-1)
            rows.append(
                F.grid_sample(
                    source, grid[None], mode="bilinear", padding_mode="border", align_corners=False
                )[0, 0]
            )
        sampled = torch.cat(rows)
        inside_x = ((u >= 0) & (u <= mw)).numpy()
        inside_y = ((v >= 0) & (v <= mh)).numpy()
        inside = inside_y[:, None] & inside_x[None, :]
        picture_map = np.where(inside, sampled.numpy(), 0.0).astype(np.float32)
        return picture_map, inside


def geometry(transform: Any, picture: tuple[int, int]) -> Geometry | str:
    """The picture -> model-input map of ``transform``, or why it cannot be known.

    Args:
        transform: the model's preprocessing (a ``Compose`` of torchvision steps, or a preset
            such as ``weights.transforms()``).
        picture: (height, width) of the original picture.

    Returns:
        A :class:`Geometry`, or a sentence naming the step whose geometry is unknown.
    """
    h, w = picture
    scale, offset = [1.0, 1.0], [0.0, 0.0]
    neutral, resizes, crops = _step_kinds()
    for step in _steps(transform):
        if isinstance(step, neutral):
            continue
        if isinstance(step, resizes) or _is_preset(step):
            size = step.resize_size if _is_preset(step) else step.size
            new_h, new_w = _resized((h, w), size, getattr(step, "max_size", None))
            for axis, (old, new) in enumerate(((h, new_h), (w, new_w))):
                scale[axis] *= new / old
                offset[axis] *= new / old
            h, w = new_h, new_w
        if isinstance(step, crops) or _is_preset(step):
            crop = _pair(step.crop_size if _is_preset(step) else step.size)
            for axis, (size, cropped) in enumerate(((h, crop[0]), (w, crop[1]))):
                offset[axis] += _crop_start(size, cropped)
            h, w = crop
        elif not isinstance(step, resizes) and not _is_preset(step):
            return f"its step {type(step).__name__} has a geometry camwidgets cannot follow"
    return Geometry(picture, (h, w), (scale[0], scale[1]), (offset[0], offset[1]))


def _steps(transform: Any) -> list[Any]:
    """The transform's steps in order, flattening nested Compose objects."""
    inner = getattr(transform, "transforms", None)
    if isinstance(inner, Sequence) and not isinstance(inner, str):
        return [s for step in inner for s in _steps(step)]
    return [transform]


def _is_preset(step: Any) -> bool:
    """torchvision's ImageClassification preset (``weights.transforms()``): resize + crop."""
    return hasattr(step, "resize_size") and hasattr(step, "crop_size")


def _pair(size: Any) -> tuple[int, int]:
    """(h, w) from an int or a one- or two-element sequence."""
    if isinstance(size, int):
        return size, size
    values = [int(s) for s in size]
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _resized(image: tuple[int, int], size: Any, max_size: int | None) -> tuple[int, int]:
    """Output (h, w) of torchvision's Resize (mirrors its rule for the shorter edge)."""
    h, w = image
    short, long = (w, h) if w <= h else (h, w)
    if size is None:
        if not isinstance(max_size, int):
            raise ValueError("Resize(size=None) needs an int max_size")
        new_short, new_long = int(max_size * short / long), max_size
    elif isinstance(size, int) or len(size) == 1:
        new_short = size if isinstance(size, int) else int(size[0])
        new_long = int(new_short * long / short)
        if max_size is not None and new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    else:
        return int(size[0]), int(size[1])
    return (new_long, new_short) if w <= h else (new_short, new_long)


def _crop_start(size: int, crop: int) -> float:
    """Where a centre crop starts, in the input's coordinates (negative when it pads)."""
    if crop > size:
        # torchvision pads (crop - size) // 2 on the leading side, then the crop fits exactly.
        return -float((crop - size) // 2)
    return float(round((size - crop) / 2.0))
