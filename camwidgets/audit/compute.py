"""One batch of items -> one table of results: the engine's batch path plus the statistics.

Both backends call :func:`explain_items`, so a local run and a Ray run compute every row with
the same code; Grad-CAM of an image does not depend on the other images of its batch (eval
mode), so the rows are the same whatever the batching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from camwidgets.engine import GradCAM
from camwidgets.engine.inputs import to_pil

from .sources import Item
from .stats import (
    Regions,
    boxes_mask,
    peaks,
    pointing_hits,
    region_shares,
    resize_mask,
    scale_boxes,
    shares_inside,
)
from .store import schema

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Prepared", "Settings", "explain_items", "label_index", "prepare_item", "resolve_target"]

TargetSpec = str | int
"""``"pred"`` (the top-1), ``"label"`` (the item's label), or a class index."""


@dataclass(frozen=True)
class Settings:
    """What to explain for every image, and how to summarise the maps.

    Attributes:
        layer: the engine layer explained.
        method: the engine method ("gradcam", "cam", ...).
        target: "pred", "label", or a class index.
        counterfactual: explain the counterfactual map instead.
        top_k: how many top predictions to store.
        regions: named fractional boxes the mass is measured on.
        tolerance: pointing-game tolerance in model-input pixels.
    """

    layer: str
    method: str
    target: TargetSpec
    counterfactual: bool
    top_k: int
    regions: Regions
    tolerance: float


def resolve_target(target: Any, classes: Sequence[str]) -> TargetSpec:
    """Validate a target argument: "pred", "label", a class index or a class name -> spec."""
    if isinstance(target, str):
        if target in ("pred", "label"):
            return target
        if target in classes:
            return list(classes).index(target)
        if target.lstrip("-").isdigit():
            target = int(target)
        else:
            raise ValueError(
                f"target must be 'pred', 'label', a class index or a class name; {target!r} is "
                "none of these"
            )
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(classes):
            raise ValueError(
                f"target class {int(target)} is out of range: the model has {len(classes)} "
                f"classes (0..{len(classes) - 1})"
            )
        return int(target)
    raise TypeError(
        "target must be 'pred', 'label', a class index or a class name, "
        f"got {type(target).__name__}"
    )


def label_index(label: int | str | None, classes: Sequence[str]) -> int | None:
    """The class index of a label, None when unknown or not one of the model's classes."""
    if label is None:
        return None
    if isinstance(label, str):
        return list(classes).index(label) if label in classes else None
    return label if 0 <= label < len(classes) else None


def _tensor(engine: GradCAM, image: Any) -> tuple[torch.Tensor, tuple[int, int]]:
    """The model-input tensor (C, H, W) of one image and the image's own (H, W)."""
    if isinstance(image, torch.Tensor):
        # A tensor is already preprocessed (the engine's rule): masks are in its frame.
        tensor = image.detach()
        if tensor.dim() == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.dim() != 3:
            raise ValueError(
                f"a tensor image must be (C, H, W) (preprocessed), got shape {tuple(image.shape)}"
            )
        return tensor, (int(tensor.shape[-2]), int(tensor.shape[-1]))
    picture = to_pil(image)
    out = engine.transform(picture)
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise TypeError("the transform must turn a PIL image into a (C, H, W) torch.Tensor")
    return out, (picture.height, picture.width)


Prepared = tuple[torch.Tensor, tuple[int, int]]
"""An item's model-input tensor (C, H, W) and its picture's own (H, W)."""


def prepare_item(engine: GradCAM, item: Item) -> Prepared:
    """Preprocess one item for the engine (safe to run in a loader thread)."""
    return _tensor(engine, item.image)


def explain_items(
    engine: GradCAM,
    items: Sequence[Item],
    settings: Settings,
    prepared: Sequence[Prepared] | None = None,
) -> pa.Table:
    """Explain ``items`` in batches of equal input shape and return their rows.

    ``prepared`` holds the items' tensors when they were preprocessed ahead (in threads).
    """
    import pyarrow as pa

    if not items:
        return schema().empty_table()
    if prepared is None:
        prepared = [_tensor(engine, item.image) for item in items]
    targets = [_target_of(item, settings.target, engine.classes) for item in items]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (tensor, _) in enumerate(prepared):
        groups.setdefault(tuple(tensor.shape), []).append(i)
    tables = []
    for members in groups.values():
        batch = torch.stack([prepared[i][0] for i in members])
        tables.append(
            _rows(
                engine,
                [items[i] for i in members],
                batch,
                [targets[i] for i in members],
                [prepared[i][1] for i in members],
                settings,
            )
        )
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def _target_of(item: Item, spec: TargetSpec, classes: Sequence[str]) -> int | None:
    """The class to explain for one item (None: the engine's top-1)."""
    if spec == "pred":
        return None
    if spec == "label":
        index = label_index(item.label, classes)
        if index is None:
            why = (
                "has no label"
                if item.label is None
                else f"has label {item.label!r}, not a class of the model"
            )
            raise ValueError(f"target='label' but item {item.id!r} {why}")
        return index
    assert isinstance(spec, int)
    return spec


def _rows(
    engine: GradCAM,
    items: Sequence[Item],
    batch: torch.Tensor,
    targets: list[int | None],
    sizes: list[tuple[int, int]],
    settings: Settings,
) -> pa.Table:
    """One engine call for a batch of equal-shape inputs, then the statistics."""
    import pyarrow as pa

    # Masks and boxes are checked and scaled before the model pass, so a bad one costs none.
    height, width = int(batch.shape[-2]), int(batch.shape[-1])
    pairs = list(zip(items, sizes, strict=True))
    masks = [_mask_for(it, s, (height, width)) for it, s in pairs]
    boxes = [_boxes_for(it, s, (height, width)) for it, s in pairs]
    res = engine.explain(
        batch,
        layer=settings.layer,
        target=cast(Any, targets),  # None entries mean the top-1, which the engine accepts
        counterfactual=settings.counterfactual,
        method=settings.method,
        cache=False,
    ).cpu()  # one transfer of the batch's maps: the audit keeps numpy on the host
    n = len(items)
    heat = res.heatmap.reshape(n, *res.heatmap.shape[-2:]).numpy()
    coarse = res.coarse.reshape(n, *res.coarse.shape[-2:]).numpy()
    logits = res.logits.reshape(n, -1).double()
    explained = [res.target] if isinstance(res.target, int) else list(res.target)
    names = [res.target_name] if isinstance(res.target_name, str) else list(res.target_name)
    scores = [res.score] if isinstance(res.score, float) else list(res.score)
    probs = [res.probability] if isinstance(res.probability, float) else list(res.probability)
    top = logits.softmax(dim=1).topk(min(settings.top_k, logits.shape[1]), dim=1)

    totals = heat.reshape(n, -1).sum(axis=1, dtype=np.float64)
    empty = totals <= 0
    rows, cols = peaks(heat)
    shares = region_shares(heat, settings.regions)
    in_mask, hit_mask = _inside(heat, rows, cols, masks, settings)
    in_boxes, hit_boxes = _inside(heat, rows, cols, boxes, settings)
    labels = [label_index(it.label, engine.classes) for it in items]
    label_names = [
        engine.classes[i] if i is not None else (it.label if isinstance(it.label, str) else None)
        for i, it in zip(labels, items, strict=True)
    ]
    top1 = top.indices[:, 0].tolist()
    coarse_h, coarse_w = coarse.shape[-2:]
    flat = coarse.astype(np.float16).reshape(-1)
    offsets = np.arange(0, (n + 1) * coarse_h * coarse_w, coarse_h * coarse_w, dtype=np.int32)

    def masked(values: np.ndarray | list[Any], drop: np.ndarray) -> list[Any]:
        return [None if d else v for v, d in zip(list(values), drop, strict=True)]

    columns: dict[str, Any] = {
        "id": [it.id for it in items],
        "index": [it.index for it in items],
        "label": labels,
        "label_name": label_names,
        "target": explained,
        "target_name": names,
        "score": scores,
        "probability": probs,
        "correct": [None if lab is None else lab == p for lab, p in zip(labels, top1, strict=True)],
        "top_classes": top.indices.tolist(),
        "top_probabilities": top.values.float().tolist(),
        "input_h": [height] * n,
        "input_w": [width] * n,
        "coarse_h": [coarse_h] * n,
        "coarse_w": [coarse_w] * n,
        "coarse": pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, type=pa.float16())),
        "mass": (totals / (height * width)).astype(np.float32),
        "peak_row": masked(rows.tolist(), empty),
        "peak_col": masked(cols.tolist(), empty),
        "peak_y": masked(((rows + 0.5) / height).tolist(), empty),
        "peak_x": masked(((cols + 0.5) / width).tolist(), empty),
        "regions": masked(shares.tolist(), empty),
        "in_mask": in_mask,
        "hit_mask": hit_mask,
        "in_boxes": in_boxes,
        "hit_boxes": hit_boxes,
    }
    return pa.table(columns, schema=schema())


def _mask_for(item: Item, size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray | None:
    """The item's mask in the map's pixels, or None."""
    if item.mask is None:
        return None
    if item.mask.shape != size:
        raise ValueError(
            f"the mask of item {item.id!r} is {item.mask.shape[0]}x{item.mask.shape[1]} but the "
            f"image is {size[0]}x{size[1]}; masks must be in the image's pixels"
        )
    return resize_mask(item.mask, *shape)


def _boxes_for(item: Item, size: tuple[int, int], shape: tuple[int, int]) -> np.ndarray | None:
    """The union of the item's boxes in the map's pixels, or None."""
    if item.boxes is None or len(item.boxes) == 0:
        return None
    return boxes_mask(scale_boxes(item.boxes, size, shape), *shape)


def _inside(
    heat: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    masks: list[np.ndarray | None],
    settings: Settings,
) -> tuple[list[float | None], list[bool | None]]:
    """Share inside and pointing hit per image; None where there is no mask or no map."""
    shares: list[float | None] = [None] * len(masks)
    hits: list[bool | None] = [None] * len(masks)
    known = [i for i, m in enumerate(masks) if m is not None and heat[i].max() > 0]
    if known:
        stack = np.stack([masks[i] for i in known])  # type: ignore[misc]
        inside = shares_inside(heat[known], stack)
        hit = pointing_hits(rows[known], cols[known], stack, settings.tolerance)
        for j, i in enumerate(known):
            shares[i] = float(inside[j])
            hits[i] = bool(hit[j])
    return shares, hits
