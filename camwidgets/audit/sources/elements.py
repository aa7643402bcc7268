"""One dataset element, a loader batch or a columnar batch -> ``Item`` s.

A dataset element may be an image, ``(image, label)``, ``(image, label, extra)`` where ``extra``
is a boolean mask ``(H, W)`` or a dict with ``"mask"``/``"masks"`` and ``"boxes"``, or a dict
with the keys ``image``, ``label``, ``mask``, ``boxes`` and ``id``. Masks and boxes are in the
image's own pixels; boxes are ``(top, left, bottom, right)``, end-exclusive.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from .base import Item


def items_from_columns(batch: Mapping[str, Any]) -> list[Item]:
    """Items from a columnar batch (Ray's numpy batch format)."""
    key = "image" if "image" in batch else "path"
    count = len(batch[key])
    items = []
    for i in range(count):
        image = batch[key][i]
        if (
            isinstance(image, np.ndarray)
            and image.dtype.kind == "f"
            and image.ndim == 3
            and image.shape[0] in (1, 3, 4)
            and image.shape[-1] not in (1, 3, 4)
        ):
            # Ray hands tensors over as numpy: a float (C, H, W) array is a preprocessed tensor.
            image = torch.from_numpy(np.ascontiguousarray(image))
        element: dict[str, Any] = {"image": str(image) if key == "path" else image}
        for name in ("label", "mask", "boxes"):
            if name in batch:
                element[name] = batch[name][i]
        identifier = batch["id"][i] if "id" in batch else batch["path"][i]
        element["id"] = identifier
        label = element.get("label")
        if isinstance(label, np.ndarray) and label.dtype.kind in "US":
            element["label"] = str(label)
        if isinstance(label, np.str_):
            element["label"] = str(label)
        items.append(item_from(element, -1))
    return [Item(it.id, it.image, None, it.label, it.mask, it.boxes) for it in items]


def item_from(element: Any, index: int) -> Item:
    """An ``Item`` from one dataset element (see the module docstring for the accepted forms)."""
    mask: Any = None
    boxes: Any = None
    label: Any = None
    item_id = str(index)
    if isinstance(element, Mapping):
        if "image" not in element:
            raise ValueError(f"dataset element {index} is a dict without an 'image' key")
        image = element["image"]
        label = element.get("label")
        mask = element.get("mask", element.get("masks"))
        boxes = element.get("boxes")
        if element.get("id") is not None:
            item_id = str(element["id"])
    elif isinstance(element, (tuple, list)):
        if not 1 <= len(element) <= 3:
            raise ValueError(
                f"dataset element {index} has {len(element)} parts; expected (image,), "
                "(image, label) or (image, label, mask-or-dict)"
            )
        image = element[0]
        label = element[1] if len(element) > 1 else None
        extra = element[2] if len(element) > 2 else None
        if isinstance(extra, Mapping):
            mask = extra.get("mask", extra.get("masks"))
            boxes = extra.get("boxes")
        else:
            mask = extra
    else:
        image = element
    return Item(
        id=item_id,
        image=image,
        index=index,
        label=_label(label, index),
        mask=_mask(mask, index),
        boxes=_boxes(boxes, index),
    )


def _label(label: Any, index: int) -> int | str | None:
    """A label as an int or a name; None when unknown (None, or a negative 'ignore' index)."""
    if label is None or isinstance(label, str):
        return label
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    if isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    try:
        value = operator.index(label)
    except TypeError:
        raise TypeError(
            f"label of dataset element {index} must be an int or a class name, "
            f"got {type(label).__name__}"
        ) from None
    return value if value >= 0 else None


def _mask(mask: Any, index: int) -> np.ndarray | None:
    """A boolean (H, W) mask; a stack of masks (M, H, W) is merged into their union."""
    if mask is None:
        return None
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim == 3:
        array = np.asarray(array.any(axis=0))
    if array.ndim != 2:
        raise ValueError(f"mask of element {index} must be (H, W) or (M, H, W), got {array.shape}")
    return array.astype(bool)


def _boxes(boxes: Any, index: int) -> np.ndarray | None:
    """Boxes as float (M, 4)."""
    if boxes is None:
        return None
    array = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    array = array.astype(np.float64).reshape(-1, array.shape[-1] if array.ndim else 0)
    if array.shape[-1] != 4 or not np.isfinite(array).all():
        raise ValueError(
            f"boxes of element {index} must be (M, 4) (top, left, bottom, right) pixels, "
            f"got shape {np.shape(boxes)}"
        )
    return array


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight end-exclusive box around a mask's pixels."""
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def uncollate(batch: Any) -> list[Any]:
    """Split a loader batch into elements: collated columns, or a plain list of elements."""
    if isinstance(batch, torch.Tensor):
        return list(batch.unbind(0))
    if isinstance(batch, Mapping):
        keys = list(batch)
        columns = [_column(batch[k]) for k in keys]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    if isinstance(batch, (tuple, list)) and batch:
        # default_collate stacks the images into one (N, ...) tensor; a loader whose
        # collate_fn keeps the elements as they are gives a list of elements instead.
        if isinstance(batch[0], torch.Tensor) and batch[0].dim() >= 3:
            columns = [_column(c) for c in batch]
            if len({len(c) for c in columns}) == 1:
                return [tuple(row) for row in zip(*columns, strict=True)]
        return list(batch)
    raise TypeError(f"cannot split a DataLoader batch of type {type(batch).__name__} into images")


def _column(values: Any) -> list[Any]:
    """One collated column as a list of per-element values."""
    if isinstance(values, torch.Tensor):
        return list(values.unbind(0))
    if isinstance(values, Mapping):
        return uncollate(values)
    return list(values)
