"""The engine's shared state and the small helpers every part of it uses."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import nn

from .analytic import PooledHead
from .cache import ByteLRU
from .entry import ImageEntry
from .inputs import ImageLike, Prepared, Transform, prepare
from .layers import Discovery, ScoreFn, resolve_layer
from .layouts import Layout
from .methods import Method


class EngineState:
    """The state every part of the engine reads (set by ``GradCAM.__init__``), and the helpers
    they share: resolving a layer argument, preparing inputs, whether a layer needs a graph."""

    model: nn.Module
    transform: Transform
    score_fn: ScoreFn | None
    device: torch.device
    dtype: torch.dtype
    channels: int
    layers: list[str]
    layer_shapes: dict[str, tuple[int, int, int]]
    default_layer: str
    stages: list[str]
    num_classes: int
    classes: list[str]
    _device_argument: str | torch.device | None
    _lock: threading.RLock
    _found: Discovery
    _spatial: frozenset[str]
    _clone: frozenset[str]
    _layouts: dict[str, Layout]
    # Layers a gradient-reading method (Grad-CAM++, ...) was asked at: their full gradients
    # are kept by each later backward, so switching between such methods costs no pass.
    _full_layers: set[str]
    _cache: ByteLRU[str, ImageEntry]
    _head: str | None
    _depth: int  # index of the deepest layer gradients were asked for so far
    _forwards: int
    _backwards: int
    # What a cached forward records: the layers watched and those explained so far.
    _watched: set[str]
    _asked: set[str]
    _batched_backward: bool
    _proof_size: tuple[int, int]
    _pooled: PooledHead | None

    def prepare(self, image: ImageLike | Sequence[ImageLike] | Prepared) -> Prepared:
        """Preprocess an image (or a list, or an NCHW tensor) into a model-ready batch."""
        return prepare(image, self.transform, self.channels, self.device, self.dtype)

    def _layer(self, layer: str | nn.Module | None) -> str:
        """Resolve a layer argument against the candidates."""
        if isinstance(layer, str) and layer not in self.layers and layer in self._spatial:
            raise ValueError(
                f"layer {layer!r} is spatial but not one of this engine's layers "
                f"({', '.join(self.layers)}), which the layers= argument restricted"
            )
        return resolve_layer(
            layer,
            self.model,
            self.layers,
            self._found.outputs,
            self.default_layer,
            self._found.internal,
        )

    def _needs_graph(self, method: Method, layer: str, size: tuple[int, int]) -> bool:
        """Whether explaining ``layer`` with ``method`` needs the autograd graph at all."""
        if not (method.needs_alpha or method.needs_gradients):
            return False
        return not self._analytic(layer, size)

    def _analytic(self, layer: str, size: tuple[int, int]) -> bool:
        """Whether alpha at ``layer`` is proven analytic for inputs of this (H, W) size."""
        head = self._pooled
        if head is None or layer not in head.grids:
            return False
        # A proof pinned to a grid holds for the input size it was made at.
        return head.grids[layer] is None or size == self._proof_size
