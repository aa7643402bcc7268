"""Immutable results the engine hands out."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True, repr=False)
class CamResult:
    """One explanation of one image, or of a batch (which indexes and iterates as single ones).

    Tensors are detached float32 on the device the model computed them on (the CPU for a CPU
    model); ``.cpu()`` copies them all to the host in one transfer, ``.numpy()`` gives the heat
    map as a numpy array. A result is always truthy; a batch has ``len``. For a batch of N images
    every tensor gains a leading N axis and ``target``, ``target_name``, ``score`` and
    ``probability`` become tuples; ``res[i]`` is image i's own result and ``for r in res`` walks
    them.

    Attributes:
        heatmap: ReLU(coarse) bilinearly resized to the model-input size, (H, W). Not normalised.
        coarse: the signed map before ReLU, e.g. sum_k alpha_k A^k for Grad-CAM, (h, w).
        weights: the channel weights alpha, (K,); None for methods without channel weights.
        activations: the layer output A, (K, h, w), channels first.
        target: the class index explained.
        target_name: its name.
        score: the raw (pre-softmax) score of that class.
        probability: its softmax probability.
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
    target: int | tuple[int, ...]
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

    @property
    def device(self) -> torch.device:
        """Where the result's tensors live (where the model computed them)."""
        return self.heatmap.device

    def cpu(self) -> CamResult:
        """The same result with every tensor on the host: one device-to-host transfer.

        On the CPU this is the result itself (no copy).
        """
        names = [f.name for f in fields(self) if isinstance(getattr(self, f.name), torch.Tensor)]
        tensors = [getattr(self, n) for n in names]
        if all(t.device.type == "cpu" for t in tensors):
            return self
        # One packed copy: each tensor's own .cpu() would wait for the device once per tensor.
        packed = torch.cat([t.reshape(-1).float() for t in tensors]).cpu()
        parts = torch.split(packed, [t.numel() for t in tensors])
        moved: dict[str, Any] = {
            n: p.view(t.shape) for n, p, t in zip(names, parts, tensors, strict=True)
        }
        return dataclasses.replace(self, **moved)

    def numpy(self) -> np.ndarray:
        """The heat map as a float32 numpy array on the host, (H, W) or (N, H, W) for a batch."""
        return np.asarray(self.heatmap.detach().cpu().numpy(), dtype=np.float32)

    def __bool__(self) -> bool:
        """A result is truthy (a batch by its length, which is never 0); never raises."""
        return not isinstance(self.target, tuple) or len(self.target) > 0

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
    classes: tuple[int, ...],
    maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor],
    layer: str,
    counterfactual: bool,
    method: str,
    cached: bool,
    guided: torch.Tensor | None = None,
    check: Callable[[], None] | None = None,
) -> CamResult:
    """A CamResult from the engine's (N, ...) tensors, left on their device, the batch axis
    squeezed for a single image. ``maps`` is (heatmap, coarse, weights or None, activations).

    The scores, probabilities and whether the coarse map is finite cross to the host together:
    one device sync. ``check`` runs (and should raise, naming the cause) when it is not finite.
    """
    scores = scores.detach().float()
    coarse = maps[1]
    rows = torch.arange(len(classes), device=scores.device)
    picked = torch.tensor(classes, device=scores.device)
    values = scores[rows, picked]
    probabilities = scores.softmax(dim=1)[rows, picked]
    finite = torch.isfinite(coarse).all().to(values.dtype).reshape(1)
    host = torch.cat([finite, values, probabilities]).tolist()  # the one host sync of the call
    if host[0] != 1.0 and check is not None:
        check()
    count = len(classes)
    score, prob = tuple(host[1 : 1 + count]), tuple(host[1 + count :])
    names = tuple(class_names[c] for c in classes)

    def kept(t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None:
            return None
        t = t.detach().float()
        return t if batched else t[0]

    heatmap, coarse_map, weights, activations = (kept(t) for t in maps)
    logits, guided_map = kept(scores), kept(guided)
    assert heatmap is not None and coarse_map is not None and activations is not None
    assert logits is not None
    common = {"layer": layer, "counterfactual": counterfactual, "method": method}
    if batched:
        return CamResult(
            heatmap,
            coarse_map,
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
        coarse_map,
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
