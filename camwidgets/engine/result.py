"""Immutable results the engine hands out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields

import torch

from camwidgets.targets import Target


@dataclass(frozen=True, repr=False)
class CamResult:
    """One explanation of one image, or of a batch (which indexes and iterates as single ones).

    Tensors are detached float32 on the CPU. For a batch of N images every tensor gains a leading
    N axis and ``target``, ``target_name``, ``score`` and ``probability`` become tuples;
    ``res[i]`` is image i's own result and ``for r in res`` walks them.

    Attributes:
        heatmap: ReLU(coarse) bilinearly resized to the model-input size, (H, W). Not normalised.
        coarse: the signed map before ReLU, e.g. sum_k alpha_k A^k for Grad-CAM, (h, w).
        weights: the channel weights alpha, (K,); None for methods without channel weights.
        activations: the layer output A, (K, h, w), channels first.
        target: the class index explained, or the target object (``camwidgets.targets``:
            a Box, Detection, Region or Similarity).
        target_name: its name (a target object's title, e.g. ``"dog box"``).
        score: the raw (pre-softmax) score of that class, or the target's score (a box's
            detection score, a region's summed raw scores, a cosine similarity).
        probability: its softmax probability; for a target object its own companion: the
            detection score, the mean pixel probability over the region, the cosine.
        layer: the layer's dotted name.
        counterfactual: whether the explanation is of -Y_c (regions that lower the score).
        method: the method's name ("gradcam", "cam", ...).
        cached: True when the call ran no model pass (forward or backward).
        logits: raw scores of every class, (classes,).
        guided: guided backpropagation times the map, (3, H, W), for "guided-gradcam" only.

    Example:
        >>> import torch, torchvision
        >>> from camwidgets import GradCAM
        >>> engine = GradCAM(torchvision.models.resnet18(num_classes=3).eval())
        >>> res = engine.explain(torch.randn(2, 3, 64, 64), target=[0, 2])
        >>> [r.target for r in res], res[1].heatmap.shape
        ([0, 2], torch.Size([64, 64]))
    """

    heatmap: torch.Tensor
    coarse: torch.Tensor
    weights: torch.Tensor | None
    activations: torch.Tensor
    target: int | Target | tuple[int | Target, ...]
    target_name: str | tuple[str, ...]
    score: float | tuple[float, ...]
    probability: float | tuple[float, ...]
    layer: str
    counterfactual: bool
    method: str
    cached: bool
    logits: torch.Tensor
    guided: torch.Tensor | None = None

    @property
    def batched(self) -> bool:
        """Whether this result covers a batch (tensors carry a leading N axis)."""
        return isinstance(self.target, tuple)

    def __len__(self) -> int:
        if not isinstance(self.target, tuple):
            raise TypeError("a single image's CamResult has no len(); batch results do")
        return len(self.target)

    def __getitem__(self, index: int) -> CamResult:
        """Image ``index`` of a batch result, as a single-image result."""
        if not isinstance(self.target, tuple):
            raise TypeError("a single image's CamResult cannot be indexed; batch results can")
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"batch results are indexed by int, got {type(index).__name__}")
        count = len(self.target)
        if not -count <= index < count:
            raise IndexError(f"index {index} out of range for a batch of {count}")
        i = index % count
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (torch.Tensor, tuple)):
                value = value[i]
            values[f.name] = value
        return CamResult(**values)

    def __iter__(self) -> Iterator[CamResult]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        shape = "x".join(map(str, self.heatmap.shape))
        mode = ", counterfactual" if self.counterfactual else ""
        if isinstance(self.target, tuple):
            return (
                f"CamResult(batch of {len(self.target)}, method={self.method!r}, "
                f"layer={self.layer!r}, targets={list(self.target)}, heatmap {shape}{mode})"
            )
        return (
            f"CamResult(method={self.method!r}, layer={self.layer!r}, target={self.target} "
            f"({self.target_name!r}), score={self.score:.4g}, p={self.probability:.3f}, "
            f"heatmap {shape}, max {float(self.heatmap.max()):.4g}{mode})"
        )


def assemble_result(
    class_names: Sequence[str],
    batched: bool,
    scores: torch.Tensor,
    classes: tuple[int | Target, ...],
    maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor],
    layer: str,
    counterfactual: bool,
    method: str,
    cached: bool,
    guided: torch.Tensor | None = None,
    described: Mapping[int, tuple[float, float, str]] | None = None,
) -> CamResult:
    """A CamResult on the CPU from the engine's (N, ...) tensors, the batch axis squeezed for a
    single image. ``maps`` is (heatmap, coarse, weights or None, activations); ``described``
    gives (score, probability, name) of the images whose target is a target object."""
    scores = scores.detach().float().cpu()  # once: per-element reads on a GPU would each sync
    probabilities = scores.softmax(dim=1)
    described = described or {}
    rows = list(range(len(classes)))
    score = tuple(
        described[i][0] if isinstance(c, Target) else float(scores[i, c])
        for i, c in zip(rows, classes, strict=True)
    )
    prob = tuple(
        described[i][1] if isinstance(c, Target) else float(probabilities[i, c])
        for i, c in zip(rows, classes, strict=True)
    )
    names = tuple(
        described[i][2] if isinstance(c, Target) else class_names[c]
        for i, c in zip(rows, classes, strict=True)
    )

    def host(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        t = t.detach().float().cpu()
        return t if batched else t[0]

    heatmap, coarse, weights, activations = (host(t) for t in maps)
    logits, guided_map = host(scores), host(guided)
    assert heatmap is not None and coarse is not None and activations is not None
    assert logits is not None
    common = {"layer": layer, "counterfactual": counterfactual, "method": method}
    if batched:
        return CamResult(
            heatmap,
            coarse,
            weights,
            activations,
            classes,
            names,
            score,
            prob,
            cached=cached,
            logits=logits,
            guided=guided_map,
            **common,  # type: ignore[arg-type]
        )
    return CamResult(
        heatmap,
        coarse,
        weights,
        activations,
        classes[0],
        names[0],
        score[0],
        prob[0],
        cached=cached,
        logits=logits,
        guided=guided_map,
        **common,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Prediction:
    """One of the model's top classes for an image."""

    index: int
    name: str
    probability: float
    logit: float


@dataclass(frozen=True)
class CacheInfo:
    """Counters of the engine's cache and of the model passes it ran."""

    forwards: int
    backwards: int
    hits: int
    misses: int
    entries: int
    bytes: int
    max_bytes: int
