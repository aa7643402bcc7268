"""What is explained, beyond a class index: a detection, a segmentation region, a concept.

A target is a small callable from the model's output to one score per image, differentiable
through the model: the engine differentiates ``sign * sum_i score_i`` (the counterfactual is
``sign = -1``, a weighting, not a branch). Targets are frozen and hashable (arrays by content)
because the engine's cache keys gradients on them: one forward per image, one backward per
(image, target), serving every layer.

- ``Box(box, label, iou=0.5)``: the score the detector reports for its output box of ``label``
  with the largest IoU with ``box`` (x0, y0, x1, y1 in the input picture's pixels).
- ``Region(mask, label)``: the sum of class ``label``'s raw (pre-softmax) scores over ``mask``,
  given over the input picture and resized (nearest) to the output's grid.
- ``Similarity(vector)``: the cosine similarity of the model's (N, D) embedding to ``vector``.

Class indices and names stay targets as they are (``explain(target=3)``). ``label`` may be a
class name; the engine resolves it against its class names before any model pass.

Example:
    >>> import numpy as np
    >>> from camwidgets.targets import Box, Region
    >>> Box((10, 20, 60, 90), label=3) == Box([10.0, 20.0, 60.0, 90.0], 3)
    True
    >>> mask = np.zeros((8, 8), bool); mask[2:5, 2:5] = True
    >>> hash(Region(mask, 1)) == hash(Region(mask.copy(), 1))
    True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Outputs:
    """What a target reads: the model's output as it came, and the engine's class-score view.

    Attributes:
        raw: the model's return value (a tensor, a dict, a list of dicts, a ModelOutput).
        scores: the (N, classes) view the engine uses for classes (logits, an embedding, or a
            detector's best score per label).
        classes: the engine's class names (for messages).
    """

    raw: object
    scores: torch.Tensor
    classes: Sequence[str]


class Target:
    """Base of the target objects: a score per image from the model's output.

    Subclasses are frozen dataclasses; ``__call__`` returns (N,) scores that carry the autograd
    graph back to the model's layers, ``probability`` a readable companion (N,) (no graph).
    """

    label: int | str | None = None
    #: The model family the target is refused for before any pass ("detector", "segmenter").
    refused_for: tuple[str, ...] = ()

    def __call__(self, outputs: Outputs, rows: Sequence[int] | None = None) -> torch.Tensor:
        """The score of images ``rows`` (default all), (len(rows),), with its autograd graph."""
        raise NotImplementedError

    def probability(self, outputs: Outputs, rows: Sequence[int] | None = None) -> torch.Tensor:
        """A readable companion of the score, per image (default: the score itself)."""
        return self(outputs, rows).detach()

    def resolve(self, classes: Sequence[str], num_classes: int) -> Target:
        """This target with a class name replaced by its index, checked against the model."""
        return self

    def title(self, classes: Sequence[str]) -> str:
        """A short readable name, e.g. ``"dog box"``."""
        return type(self).__name__.lower()


def _label_index(label: object, classes: Sequence[str], count: int, what: str) -> int:
    """A class index from an index or a name, checked against ``count`` classes."""
    if isinstance(label, str):
        if label in classes:
            return list(classes).index(label)
        import difflib

        close = difflib.get_close_matches(label, list(classes), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"{what}: unknown class name {label!r}{hint}")
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)):
        raise TypeError(f"{what}: label must be a class index or name, got {label!r}")
    index = int(label)
    if not 0 <= index < count:
        raise ValueError(f"{what}: label {index} is out of range (the model has {count} classes)")
    return index


def _name(classes: Sequence[str], label: int | str | None) -> str:
    if isinstance(label, int) and 0 <= label < len(classes):
        return classes[label]
    return str(label)


@dataclass(frozen=True, eq=False)
class Box(Target):
    """A detection: the detector's reported score of its output box that best matches ``box``.

    Among the output boxes of class ``label``, the one with the largest IoU with ``box``; its
    score (after the detector's own softmax/sigmoid, thresholds and NMS) is differentiable
    through the box head, so its gradient reaches every backbone layer. When no output box of
    that label has IoU >= ``iou`` the call raises a ``ValueError`` naming the nearest detection.

    Args:
        box: (x0, y0, x1, y1) in the input picture's pixels.
        label: the class index (or name) of the detection.
        iou: the least IoU a matching output box must reach, in (0, 1].

    Example:
        >>> Box((0, 0, 10, 10), "dog").box
        (0.0, 0.0, 10.0, 10.0)
    """

    box: tuple[float, float, float, float]
    label: int | str  # type: ignore[assignment]
    iou: float = 0.5
    refused_for = ("segmenter",)

    def __post_init__(self) -> None:
        values = np.asarray(self.box, dtype=np.float64).reshape(-1) if _seq(self.box) else None
        if values is None or values.shape != (4,) or not np.isfinite(values).all():
            raise ValueError(f"Box: box must be 4 finite numbers (x0, y0, x1, y1), got {self.box}")
        x0, y0, x1, y1 = (float(v) for v in values)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"Box: need x0 < x1 and y0 < y1, got {(x0, y0, x1, y1)}")
        object.__setattr__(self, "box", (x0, y0, x1, y1))
        if isinstance(self.label, np.integer):
            object.__setattr__(self, "label", int(self.label))
        iou = float(self.iou) if isinstance(self.iou, (int, float)) else math.nan
        if not 0 < iou <= 1:
            raise ValueError(f"Box: iou must be in (0, 1], got {self.iou!r}")
        object.__setattr__(self, "iou", iou)

    def __eq__(self, other: object) -> bool:
        # Any Box (a Detection too) is the same target as another with the same fields.
        if not isinstance(other, Box):
            return NotImplemented
        return (self.box, self.label, self.iou) == (other.box, other.label, other.iou)

    def __hash__(self) -> int:
        return hash(("Box", self.box, self.label, self.iou))

    def resolve(self, classes: Sequence[str], num_classes: int) -> Target:
        index = _label_index(self.label, classes, num_classes, "Box")
        return self if index == self.label else Box(self.box, index, self.iou)

    def title(self, classes: Sequence[str]) -> str:
        return f"{_name(classes, self.label)} box"

    def match(self, outputs: Outputs, rows: Sequence[int] | None = None) -> list[int]:
        """The index of the matched output box in the detections of each image of ``rows``."""
        found = _detections(outputs)
        rows = range(len(found)) if rows is None else rows
        return [self._match(found[i], outputs.classes, i) for i in rows]

    def _match(self, det: Mapping[str, torch.Tensor], classes: Sequence[str], image: int) -> int:
        boxes, labels, scores = det["boxes"].detach(), det["labels"], det["scores"].detach()
        mine = torch.tensor([self.box], dtype=boxes.dtype, device=boxes.device)
        overlap = _iou(mine, boxes)[0] if len(boxes) else boxes.new_zeros(0)
        assert isinstance(self.label, int)
        same = torch.where(labels.eq(self.label), overlap, torch.full_like(overlap, -1.0))
        if len(same) and float(same.max()) >= self.iou:
            return int(same.argmax())
        if len(overlap) == 0:
            nearest = "the detector reported no boxes"
        else:
            j = int(overlap.argmax())
            x0, y0, x1, y1 = (round(float(v), 1) for v in boxes[j])
            nearest = (
                f"the nearest is {_name(classes, int(labels[j]))!r} (label {int(labels[j])}, "
                f"score {float(scores[j]):.3f}) at ({x0}, {y0}, {x1}, {y1}), IoU "
                f"{float(overlap[j]):.2f}"
            )
        raise ValueError(
            f"no detection of {_name(classes, self.label)!r} (label {self.label}) overlaps "
            f"box {self.box} with IoU >= {self.iou} in image {image}; {nearest}. Use "
            "engine.detect(image) to list the detections (each one is a target)"
        )

    def __call__(self, outputs: Outputs, rows: Sequence[int] | None = None) -> torch.Tensor:
        found = _detections(outputs)
        rows = range(len(found)) if rows is None else rows
        picked = [
            found[i]["scores"][j] for i, j in zip(rows, self.match(outputs, rows), strict=True)
        ]
        return torch.stack(picked)


@dataclass(frozen=True, eq=False)
class Detection(Box):
    """One output box of a detector (``engine.detect``); also a target (a ``Box`` on itself).

    Attributes:
        box: (x0, y0, x1, y1) in the input picture's pixels.
        label: class index; ``name`` its class name; ``score`` the detector's score.
        rank: its position in the detector's output for that image (highest score first).
    """

    name: str = field(default="", compare=False)
    score: float = field(default=math.nan, compare=False)
    rank: int = field(default=0, compare=False)

    def title(self, classes: Sequence[str]) -> str:
        return f"{self.name or _name(classes, self.label)} box {self.rank}"

    def __repr__(self) -> str:
        x0, y0, x1, y1 = (round(v, 1) for v in self.box)
        return (
            f"Detection({self.name!r}, label={self.label}, score={self.score:.3f}, "
            f"box=({x0}, {y0}, {x1}, {y1}))"
        )


@dataclass(frozen=True, eq=False)
class Region(Target):
    """A segmentation region: the sum of class ``label``'s raw scores over ``mask``.

    ``mask`` lies over the input picture (any (H, W) array-like; non-zero means inside) and is
    resized with nearest-neighbour sampling to the grid of the model's dense output
    (torchvision's ``out``, a ``.logits`` map, or an (N, classes, h, w) tensor). The scores are
    taken before any softmax, as Grad-CAM asks.

    Args:
        mask: (H, W) boolean or 0/1 array, tensor or PIL image.
        label: the class index (or name).

    Example:
        >>> import numpy as np
        >>> Region(np.eye(4, dtype=bool), 2).mask.sum()
        np.int64(4)
    """

    mask: np.ndarray
    label: int | str  # type: ignore[assignment]
    _digest: str = field(default="", repr=False, compare=False)
    refused_for = ("detector",)

    def __post_init__(self) -> None:
        raw = self.mask
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().cpu().numpy()
        array = np.asarray(raw)
        if array.ndim == 3 and array.shape[-1] in (1, 3, 4):  # a picture: any channel set
            array = np.asarray(array.any(axis=-1))
        if array.ndim != 2 or array.size == 0:
            raise ValueError(f"Region: mask must be a 2-D (H, W) array, got shape {array.shape}")
        if array.dtype.kind not in "biuf" or (
            array.dtype.kind == "f" and not np.isfinite(array).all()
        ):
            raise ValueError(f"Region: mask must be boolean or numeric, got {array.dtype}")
        mask = np.asarray(array).astype(bool)
        if not mask.any():
            raise ValueError("Region: mask is empty (no pixel inside)")
        mask.setflags(write=False)
        object.__setattr__(self, "mask", mask)
        if isinstance(self.label, np.integer):
            object.__setattr__(self, "label", int(self.label))
        digest = hashlib.blake2b(np.packbits(mask).tobytes(), digest_size=16)
        digest.update(str(mask.shape).encode())
        object.__setattr__(self, "_digest", digest.hexdigest())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Region):
            return NotImplemented
        return (self._digest, self.label) == (other._digest, other.label)

    def __hash__(self) -> int:
        return hash(("Region", self._digest, self.label))

    def __repr__(self) -> str:
        h, w = self.mask.shape
        return f"Region({int(self.mask.sum())} of {h}x{w} pixels, label={self.label!r})"

    def resolve(self, classes: Sequence[str], num_classes: int) -> Target:
        index = _label_index(self.label, classes, num_classes, "Region")
        return self if index == self.label else Region(self.mask, index)

    def title(self, classes: Sequence[str]) -> str:
        return f"{_name(classes, self.label)} region"

    def grid_mask(self, grid: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The mask resized (nearest) to ``grid``, as float 0/1 on ``device``."""
        mask = torch.from_numpy(self.mask.astype(np.float32))[None, None]
        small = F.interpolate(mask, size=grid, mode="nearest")[0, 0].to(device)
        if not bool(small.any()):
            raise ValueError(
                f"Region: the mask ({int(self.mask.sum())} pixels of {self.mask.shape}) has no "
                f"pixel left on the output's {grid[0]}x{grid[1]} grid; give a larger region"
            )
        return small

    def __call__(self, outputs: Outputs, rows: Sequence[int] | None = None) -> torch.Tensor:
        dense = _rows(dense_scores(outputs.raw), rows)
        mask = self.grid_mask((int(dense.shape[-2]), int(dense.shape[-1])), dense.device)
        assert isinstance(self.label, int)
        return (dense[:, self.label] * mask.to(dense.dtype)).sum(dim=(-2, -1))

    def probability(self, outputs: Outputs, rows: Sequence[int] | None = None) -> torch.Tensor:
        """The mean softmax probability of the class over the region, per image."""
        dense = _rows(dense_scores(outputs.raw), rows).detach().float()
        mask = self.grid_mask((int(dense.shape[-2]), int(dense.shape[-1])), dense.device)
        assert isinstance(self.label, int)
        prob = dense.softmax(dim=1)[:, self.label]
        return (prob * mask).sum(dim=(-2, -1)) / mask.sum()


@dataclass(frozen=True, eq=False)
class Similarity(Target):
    """A concept: the cosine similarity of the model's (N, D) embedding to ``vector``.

    ``vector`` is another image's embedding (``engine.scores(image)[0]``) or a text embedding
    from any encoder (CLIP-style); an engine built with ``concept_encoder=`` makes one from
    words (``engine.concept("a red circle")``).

    Args:
        vector: (D,) array-like, finite and not all zero.
        name: what the concept is called in titles (not part of its identity).

    Example:
        >>> Similarity([1.0, 0.0, 2.0]) == Similarity((1, 0, 2), name="x")
        True
    """

    vector: np.ndarray
    name: str = ""
    _digest: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        raw = self.vector
        if isinstance(raw, torch.Tensor):
            raw = raw.detach().float().cpu().numpy()
        array = np.asarray(raw, dtype=np.float64).reshape(-1) if _seq(raw) else None
        if array is None or array.ndim != 1 or array.size == 0 or np.asarray(raw).ndim > 2:
            raise ValueError(f"Similarity: vector must be a 1-D (D,) array, got {raw!r:.80}")
        if np.asarray(raw).ndim == 2 and np.asarray(raw).shape[0] != 1:
            raise ValueError("Similarity: vector must be one (D,) embedding, got a matrix")
        if not np.isfinite(array).all() or not np.any(array):
            raise ValueError("Similarity: vector must be finite and not all zero")
        array.setflags(write=False)
        object.__setattr__(self, "vector", array)
        digest = hashlib.blake2b(array.tobytes(), digest_size=16).hexdigest()
        object.__setattr__(self, "_digest", digest)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Similarity):
            return NotImplemented
        return self._digest == other._digest

    def __hash__(self) -> int:
        return hash(("Similarity", self._digest))

    def __repr__(self) -> str:
        what = f"{self.name!r}, " if self.name else ""
        return f"Similarity({what}D={self.vector.size})"

    def resolve(self, classes: Sequence[str], num_classes: int) -> Target:
        if self.vector.size != num_classes:
            raise ValueError(
                f"Similarity: the vector has {self.vector.size} values but the model's "
                f"embedding has {num_classes}"
            )
        return self

    def title(self, classes: Sequence[str]) -> str:
        return f"similarity to {self.name or 'the concept'}"

    def __call__(self, outputs: Outputs, rows: Sequence[int] | None = None) -> torch.Tensor:
        emb = _rows(outputs.scores, rows)
        concept = torch.tensor(self.vector, dtype=emb.dtype, device=emb.device)
        return F.cosine_similarity(emb, concept[None], dim=1, eps=1e-12)


def dense_scores(raw: object) -> torch.Tensor:
    """The (N, classes, h, w) raw score map of a segmentation output."""
    if isinstance(raw, Mapping) and isinstance(raw.get("out"), torch.Tensor):
        raw = raw["out"]
    elif not isinstance(raw, torch.Tensor) and isinstance(
        getattr(raw, "logits", None), torch.Tensor
    ):
        raw = raw.logits  # type: ignore[attr-defined]
    if not isinstance(raw, torch.Tensor) or raw.dim() != 4:
        what = f"{tuple(raw.shape)}" if isinstance(raw, torch.Tensor) else type(raw).__name__
        raise ValueError(
            f"Region needs a segmentation output, (N, classes, h, w) scores or a dict with "
            f"'out'; the model returned {what}"
        )
    return raw


def _detections(outputs: Outputs) -> list[Mapping[str, torch.Tensor]]:
    raw = outputs.raw
    ok = isinstance(raw, (list, tuple)) and all(
        isinstance(d, Mapping) and {"boxes", "labels", "scores"} <= set(d) for d in raw
    )
    if not ok:
        raise ValueError(
            "Box needs a detector's output (a list of dicts with 'boxes', 'labels', 'scores', "
            f"as torchvision's detection models return); the model returned {type(raw).__name__}"
        )
    assert isinstance(raw, (list, tuple))
    return [d for d in raw if isinstance(d, Mapping)]


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of (M, 4) and (K, 4) boxes in (x0, y0, x1, y1)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(dim=-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp_min(0).prod(dim=-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp_min(0).prod(dim=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp_min(1e-12)


def _rows(tensor: torch.Tensor, rows: Sequence[int] | None) -> torch.Tensor:
    """``tensor`` restricted to the batch rows ``rows`` (all when None)."""
    return tensor if rows is None else tensor[list(rows)]


def _seq(value: Any) -> bool:
    """Whether ``value`` is a sequence of numbers (array, tensor, list, tuple)."""
    return isinstance(value, (np.ndarray, torch.Tensor, list, tuple))


def is_target(value: object) -> bool:
    """Whether ``value`` is a target object (not a class index or name)."""
    return isinstance(value, Target)


def objective(keys: Sequence[int | Target], outputs: Outputs) -> torch.Tensor:
    """``sum_i score_i`` for one target per image: the quantity one backward differentiates.

    Images in a batch are independent in eval mode, so the gradient of the sum with respect to
    image i's activations is that image's own gradient. Each distinct target object is
    evaluated once on the batch and its own image's row taken.
    """
    rows: dict[int | Target, list[int]] = {}  # one evaluation per distinct target
    for i, key in enumerate(keys):
        rows.setdefault(key, []).append(i)
    parts: list[torch.Tensor] = []
    for key, images in rows.items():
        if isinstance(key, Target):
            parts.append(key(outputs, images).sum())
        else:
            parts.append(outputs.scores[images, key].sum())
    return torch.stack(parts).sum()
