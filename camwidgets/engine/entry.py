"""What one cached forward holds: scores with their graph, layer records, gradients."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .capture import Record
from .methods import MethodOutput


@dataclass(eq=False)
class ClassGradients:
    """The gradients of one class set: alpha for every layer a backward reached, and the full
    gradient tensors of the layers that a gradient-reading method asked for so far."""

    alphas: dict[str, torch.Tensor] = field(default_factory=dict)
    full: dict[str, torch.Tensor] = field(default_factory=dict)

    def has(self, layer: str, full: bool) -> bool:
        """Whether alpha (and, if ``full``, the full gradient) at ``layer`` is known."""
        return layer in self.alphas and (not full or layer in self.full)

    def nbytes(self) -> int:
        """Bytes held by the alphas and the full gradients."""
        tensors = [*self.alphas.values(), *self.full.values()]
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(eq=False)
class ImageEntry:
    """Cached state of one distinct input batch: scores with their graph, layer records, grads."""

    scores: torch.Tensor
    records: dict[str, Record]
    activation_bytes: int
    size: tuple[int, int]  # the input's (H, W): token layouts need it for their grid
    # classes -> alpha per layer (and full gradients where asked) of that class set
    gradients: dict[tuple[int, ...], ClassGradients] = field(default_factory=dict)
    # (classes, sign) -> guided-backpropagation input gradient (N, C, H, W)
    guided: dict[tuple[tuple[int, ...], float], torch.Tensor] = field(default_factory=dict)
    # (method, classes, sign, layer) -> output of a method that asks to be kept (Score-CAM)
    outputs: dict[tuple[str, tuple[int, ...], float, str], MethodOutput] = field(
        default_factory=dict
    )
    # Whether ``scores`` carries the autograd graph down to the recorded layers. A forward whose
    # recorded layers all sit on a proven pooled linear head needs none (alpha is analytic).
    graph: bool = True

    def nbytes(self) -> int:
        """Estimated bytes held: activations, about as much again in a retained graph, grads."""
        kept = [*self.guided.values()]
        for out in self.outputs.values():
            kept += [t for t in (out.weights, out.coarse, out.pixels) if t is not None]
        extra = sum(t.numel() * t.element_size() for t in kept)
        held = (2 if self.graph else 1) * self.activation_bytes
        return held + sum(g.nbytes() for g in self.gradients.values()) + extra
