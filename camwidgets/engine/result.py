"""Immutable results the engine hands out."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CamResult:
    """One Grad-CAM (or CAM) explanation of one image, or of a batch.

    Tensors are detached float32 on the CPU. For a batch of N images every tensor gains a leading
    N axis and ``target``, ``target_name``, ``score`` and ``probability`` become tuples.

    Attributes:
        heatmap: ReLU(coarse) bilinearly resized to the model-input size, (H, W). Not normalised.
        coarse: the signed map before ReLU, sum_k alpha_k A^k, (h, w).
        weights: the channel weights alpha, (K,).
        activations: the layer output A, (K, h, w).
        target: the class index explained.
        target_name: its name.
        score: the raw (pre-softmax) score of that class.
        probability: its softmax probability.
        layer: the layer's dotted name.
        counterfactual: whether alpha was negated.
        method: "gradcam" or "cam".
        cached: True when the call ran no model pass (forward or backward).
    """

    heatmap: torch.Tensor
    coarse: torch.Tensor
    weights: torch.Tensor
    activations: torch.Tensor
    target: int | tuple[int, ...]
    target_name: str | tuple[str, ...]
    score: float | tuple[float, ...]
    probability: float | tuple[float, ...]
    layer: str
    counterfactual: bool
    method: str
    cached: bool

    @property
    def batched(self) -> bool:
        """Whether this result covers a batch (tensors carry a leading N axis)."""
        return isinstance(self.target, tuple)


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
