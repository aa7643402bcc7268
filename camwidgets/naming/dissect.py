"""Network dissection (Bau et al., 2017): name each channel of a layer after a concept.

For channel k of the layer, with activation map A^k (h x w) on each image:

1. ``T_k`` is the channel's top-``quantile`` level over the whole dataset: with M = N*h*w
   activation values of the channel (every spatial cell of every image) and
   m = clip(round(quantile * M), 1, M - 1), ``T_k`` is the (M - m)-th smallest value, so exactly
   the m largest values lie above it (fewer when values tie). This is the paper's definition
   (the quantile is taken over the activation cells, before upsampling) and it is exact: the
   layer's activations are kept at their own resolution, N*K*h*w float32 numbers (1,000 zoo
   scenes at ``layer4``: 74 MB), and ``torch.kthvalue`` finds T_k.
2. ``M_k = upsample(A^k) > T_k``: the map is resized bilinearly (align_corners=False) to each
   image's mask size. As in NetDissect the comparison is strict, so values tied at T_k do not
   fire (a channel that is zero almost everywhere has T_k = 0 and fires only where positive).
3. ``IoU_{k,c} = sum_images |M_k & L_c| / sum_images |M_k | L_c|`` for every concept c with masks
   L_c, accumulated over the whole dataset (an image without concept c contributes L_c = 0).
4. Channel k is named after its best concept when that IoU >= ``iou_threshold`` (0.04 in the
   paper), else it stays unnamed.

Concept data is any iterable of ``(image, masks)`` pairs:

* ``image``: anything the engine takes for one picture (PIL image, HWC numpy array, CHW
  tensor, path). The engine's transform must not crop: the upsampled map is laid over the
  whole mask, so the model's input must show the whole picture the masks describe.
* ``masks``: a dict ``{concept name: bool array (H, W)}`` (numpy or torch), for the concepts
  present in the image (an absent concept needs no entry). All masks of one image share one
  size, which has the picture's aspect ratio (it may be a lower resolution, like Broden's
  half-resolution segmentations). Image-level concepts (a scene, a texture) are masks of ones.

Each batch is checked before it reaches the model; the first bad item raises a ValueError or
TypeError that says which item, what was wrong and what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from tqdm import tqdm

from .names import ChannelNames, _check_fraction

__all__ = ["ActivationSource", "dissect"]


class ActivationSource(Protocol):
    """What :func:`dissect` needs from an engine (``camwidgets.GradCAM`` provides it)."""

    model: nn.Module
    layers: list[str]

    def activations(self, image: Any, layer: str) -> torch.Tensor:
        """(N, K, h, w) float32 activations of a batch at ``layer``, no gradients."""
        ...


@dataclass
class _Stored:
    """One image's data kept between the forward pass and the IoU pass."""

    size: tuple[int, int]
    concepts: list[int]  # column indices of the concepts present
    bits: np.ndarray  # packed masks, (len(concepts), ceil(H*W/8)) uint8


def dissect(
    engine: ActivationSource,
    layer: str | nn.Module,
    concepts: Iterable[tuple[Any, Mapping[str, Any]]],
    quantile: float = 0.005,
    iou_threshold: float = 0.04,
    batch_size: int = 32,
    progress: bool = True,
) -> ChannelNames:
    """Name every channel of ``layer`` after the concept its strongest activations overlap.

    The procedure, the exact threshold and the concept-data format are defined in this
    module's docstring (:mod:`camwidgets.naming.dissect`). One no-grad forward per batch of
    ``batch_size`` images (``engine.activations``); the model is left exactly as found.

    Example:
        >>> from camwidgets import GradCAM, zoo
        >>> from camwidgets.naming import dissect
        >>> shapes = zoo.load("shapes")
        >>> engine = GradCAM(shapes.model, shapes.classes, shapes.transform)
        >>> names = dissect(engine, "layer4", zoo.concepts(200, seed=21), progress=False)
        >>> names.name(0)  # doctest: +SKIP
        'circle'
        >>> names.save("shapes-layer4.json")  # doctest: +SKIP

    Args:
        engine: a ``camwidgets.GradCAM`` (anything with ``activations(images, layer)``).
        layer: one of ``engine.layers`` (name or module).
        concepts: iterable of ``(image, {concept: bool mask (H, W)})``; a Sequence with a
            ``concept_names`` attribute fixes the column order (and ``categories``, a
            concept -> category dict, is kept), else columns are sorted by name.
        quantile: top quantile q of each channel's activations, in (0, 1) (paper: 0.005).
        iou_threshold: IoU a channel's best concept needs to name it, in [0, 1] (paper: 0.04).
        batch_size: images per forward.
        progress: show a tqdm progress bar (on stderr).

    Returns:
        The per-channel table (concept, IoU, runner-up, threshold), savable with ``.save``.

    Raises:
        ValueError, TypeError: bad arguments (before any model pass) or a bad concept item
            (before the model sees its batch); an empty dataset.
    """
    name = _layer_name(engine, layer)
    _check_fraction("quantile", quantile, open_low=True)
    _check_fraction("iou_threshold", iou_threshold, open_low=False)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    if isinstance(concepts, (str, bytes, Mapping)) or not isinstance(concepts, Iterable):
        raise TypeError(
            "concepts must be an iterable of (image, {concept name: bool mask}) pairs, got "
            f"{type(concepts).__name__}"
        )

    declared = [str(c) for c in getattr(concepts, "concept_names", ())]
    column: dict[str, int] = {c: i for i, c in enumerate(declared)}
    categories = dict(getattr(concepts, "categories", {}) or {})
    activations: list[torch.Tensor] = []
    stored: list[_Stored] = []
    concept_pixels: dict[int, int] = {}

    total = len(concepts) if isinstance(concepts, Sequence) else None
    iterator = iter(concepts)
    with tqdm(total=total, desc=f"dissect {name}", unit="img", disable=not progress) as bar:
        while True:
            items = list(islice(iterator, batch_size))
            if not items:
                break
            images: list[Any] = []
            for item in items:
                image, masks = _check_item(item, len(stored))
                present: list[int] = []
                rows: list[np.ndarray] = []
                for concept, mask in masks.items():
                    c = column.setdefault(concept, len(column))
                    present.append(c)
                    rows.append(np.packbits(mask.reshape(-1)))
                    concept_pixels[c] = concept_pixels.get(c, 0) + int(mask.sum())
                size = _mask_size(masks, image, len(stored))
                bits = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.uint8)
                stored.append(_Stored(size, present, bits))
                images.append(image)
            batch = engine.activations(images, name)
            if batch.dim() != 4 or batch.shape[0] != len(images):
                raise RuntimeError(
                    f"engine.activations returned shape {tuple(batch.shape)} for "
                    f"{len(images)} images; expected (N, K, h, w)"
                )
            activations.append(batch.detach().to("cpu", torch.float32))
            bar.update(len(items))
    if not stored:
        raise ValueError("concepts is empty: dissection needs at least one image")

    acts = torch.cat(activations)
    del activations
    if not torch.isfinite(acts).all():
        raise ValueError(f"the activations of {name!r} contain NaN or infinity")
    thresholds = _thresholds(acts, quantile)
    # Order the columns: declared concepts first (as declared), then the others by name.
    extra = sorted(c for c in column if c not in set(declared))
    order = [c for c in declared] + extra
    inter, fired = _intersections(acts, thresholds, stored, len(column))
    pixels = np.array([concept_pixels.get(column[c], 0) for c in order], dtype=np.int64)
    cols = np.array([column[c] for c in order], dtype=np.int64)
    inter = inter[:, cols] if len(cols) else inter[:, :0]
    union = fired[:, None] + pixels[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    # A declared concept that never appears keeps its column (IoU 0): tables from the same
    # concept source stay comparable.
    return ChannelNames(
        layer=name,
        concepts=order,
        iou=iou,
        thresholds=thresholds.double().numpy(),
        quantile=quantile,
        iou_threshold=iou_threshold,
        categories={c: categories[c] for c in order if c in categories},
        images=len(stored),
        concept_pixels=pixels,
        fired_pixels=fired,
    )


def _layer_name(engine: ActivationSource, layer: str | nn.Module) -> str:
    """Resolve ``layer`` to one of the engine's layer names (before any model pass)."""
    layers = getattr(engine, "layers", None)
    if not callable(getattr(engine, "activations", None)) or not isinstance(layers, list):
        raise TypeError(
            "engine must be a camwidgets.GradCAM (or provide .layers and .activations), got "
            f"{type(engine).__name__}"
        )
    if isinstance(layer, nn.Module):
        found = [n for n, m in engine.model.named_modules() if m is layer]
        if not found or found[0] not in layers:
            raise ValueError("layer is a module that is not one of the engine's layers")
        return str(found[0])
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name or module, got {type(layer).__name__}")
    if layer not in layers:
        raise ValueError(f"unknown layer {layer!r}; the engine's layers are {', '.join(layers)}")
    return layer


def _check_item(item: object, index: int) -> tuple[Any, dict[str, np.ndarray]]:
    """Validate one concept item; masks come back as contiguous bool numpy arrays."""
    where = f"concept item {index}"
    if not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(
            f"{where}: expected an (image, {{concept name: bool mask}}) pair, got "
            f"{type(item).__name__}"
        )
    image, masks = item
    if image is None:
        raise TypeError(f"{where}: the image is None")
    if not isinstance(masks, Mapping):
        raise TypeError(
            f"{where}: masks must be a dict {{concept name: bool (H, W) mask}}, got "
            f"{type(masks).__name__}"
        )
    checked: dict[str, np.ndarray] = {}
    shape: tuple[int, ...] | None = None
    for concept, mask in masks.items():
        if not isinstance(concept, str) or not concept:
            raise TypeError(f"{where}: concept names must be non-empty str, got {concept!r}")
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        if not isinstance(mask, np.ndarray):
            raise TypeError(
                f"{where}: the mask of {concept!r} is a {type(mask).__name__}; masks must be "
                "bool numpy arrays or torch tensors of shape (H, W)"
            )
        if mask.dtype != np.bool_:
            raise TypeError(
                f"{where}: the mask of {concept!r} has dtype {mask.dtype}; masks must be bool "
                "(convert a label map with e.g. `labels == k`, a 0/1 map with `m > 0`)"
            )
        if mask.ndim != 2 or 0 in mask.shape:
            raise ValueError(
                f"{where}: the mask of {concept!r} has shape {mask.shape}; expected (H, W)"
            )
        if shape is not None and mask.shape != shape:
            raise ValueError(
                f"{where}: masks differ in size ({shape} and {mask.shape} for {concept!r}); "
                "all masks of one image must share one size"
            )
        shape = mask.shape
        checked[concept] = np.ascontiguousarray(mask)
    return image, checked


def _mask_size(masks: dict[str, np.ndarray], image: Any, index: int) -> tuple[int, int]:
    """The (H, W) the maps are compared at: the masks', else the picture's."""
    picture = _picture_size(image)
    if not masks:
        if picture is None:
            raise ValueError(
                f"concept item {index}: no masks and a picture whose size cannot be read; "
                "give a PIL image, an HWC array or a CHW tensor"
            )
        return picture
    h, w = next(iter(masks.values())).shape
    if picture is not None:
        ph, pw = picture
        # Same aspect ratio, to within one mask pixel: masks may be at a lower resolution.
        if abs(ph * w / pw - h) > 1.0 or abs(pw * h / ph - w) > 1.0:
            raise ValueError(
                f"concept item {index}: masks of size {(h, w)} do not fit a picture of size "
                f"{(ph, pw)}; masks must cover the whole picture (same aspect ratio)"
            )
    return int(h), int(w)


def _picture_size(image: Any) -> tuple[int, int] | None:
    """(H, W) of a picture when it can be read cheaply, else None."""
    if isinstance(image, Image.Image):
        return image.height, image.width
    if isinstance(image, np.ndarray) and image.ndim in (2, 3):
        # HWC (or HW); a CHW array (1 or 3 leading channels) is read as such.
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[2] not in (1, 3, 4):
            return int(image.shape[1]), int(image.shape[2])
        return int(image.shape[0]), int(image.shape[1])
    if isinstance(image, torch.Tensor) and image.dim() == 3:
        return int(image.shape[1]), int(image.shape[2])
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            return opened.height, opened.width
    return None


def _thresholds(acts: torch.Tensor, quantile: float) -> torch.Tensor:
    """Per-channel T_k: exactly m = round(q * M) of the M values lie above it (ties aside)."""
    n, k, h, w = acts.shape
    count = n * h * w
    if count < 2:
        raise ValueError("dissection needs at least two activation values per channel")
    m = min(max(round(quantile * count), 1), count - 1)
    values = acts.permute(1, 0, 2, 3).reshape(k, count)
    return values.kthvalue(count - m, dim=1).values


def _intersections(
    acts: torch.Tensor, thresholds: torch.Tensor, stored: list[_Stored], concepts: int
) -> tuple[np.ndarray, np.ndarray]:
    """|M_k & L_c| (K, C) and |M_k| (K,) summed over the dataset, in chunks of equal size."""
    channels = acts.shape[1]
    inter = np.zeros((channels, concepts), dtype=np.int64)
    fired = np.zeros(channels, dtype=np.int64)
    limit = thresholds.view(1, -1, 1, 1)
    start = 0
    while start < len(stored):
        size = stored[start].size
        # Consecutive images of one mask size: at most ~64 Mi upsampled values per chunk, and
        # at most 2^24 pixels per channel so that float32 sums of 0/1 products stay exact.
        pixels = size[0] * size[1]
        cap = max(1, min((1 << 26) // (channels * pixels), (1 << 24) // pixels))
        stop = start + 1
        while stop < len(stored) and stop - start < cap and stored[stop].size == size:
            stop += 1
        up = F.interpolate(acts[start:stop], size=size, mode="bilinear", align_corners=False)
        hit = up > limit  # (n, K, H, W)
        fired += hit.sum(dim=(0, 2, 3)).numpy()
        present = sorted({c for s in stored[start:stop] for c in s.concepts})
        if present:
            labels = np.zeros((stop - start, pixels, len(present)), dtype=np.float32)
            slot = {c: j for j, c in enumerate(present)}
            for i, item in enumerate(stored[start:stop]):
                for row, c in zip(item.bits, item.concepts, strict=True):
                    labels[i, :, slot[c]] = np.unpackbits(row, count=pixels)
            flat = hit.permute(1, 0, 2, 3).reshape(channels, -1).float()
            counts = flat @ torch.from_numpy(labels.reshape(-1, len(present)))
            inter[:, present] += counts.round().long().numpy()
        start = stop
    return inter, fired
