"""Which layers: CAM and analytic layers, the watched ones, the gradient depth, methods."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .locks import serialized
from .methods import METHODS as METHOD_REGISTRY
from .state import EngineState


class LayerCatalog(EngineState):
    """The layers the engine offers and which of them a forward and a backward reach."""

    @property
    def has_cam(self) -> bool:
        """Whether the model ends in global average pooling + linear, so CAM is available."""
        return self._found.cam is not None

    @property
    def cam_layers(self) -> list[str]:
        """The layers CAM is defined at (the ones the pooled head reads), forward order."""
        cam = self._found.cam
        return [n for n in self.layers if cam is not None and n in cam.layers]

    @property
    def analytic_layers(self) -> list[str]:
        """Layers where alpha = W_c / (h w) is proven (GAP + linear head): no backward needed.

        Proven at construction from the autograd graph (only linear operations between the
        layer and the scores) and checked against ``torch.autograd.grad``; see ``analytic.py``.
        """
        head = self._pooled
        return [n for n in self.layers if head is not None and n in head.grids]

    @property
    def watched(self) -> list[str]:
        """The layers every new forward records besides those explained so far, forward order."""
        return [n for n in self.layers if n in self._watched]

    @serialized
    def watch(self, layers: Sequence[str | nn.Module]) -> None:
        """Record these layers in every later forward, so switching among them costs no pass.

        A forward records only the layers that can be asked: the watched ones, those explained
        so far and the layer of the call; asking a layer a cached image did not record runs its
        forward again. The first backward of each class reaches the deepest watched layer, so
        one backward per class serves them all. ``watch([])`` stops watching.
        """
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        names = {self._layer(layer) for layer in layers}
        self._watched = names
        if names:
            self._depth = min(self._depth, min(self.layers.index(n) for n in names))

    @property
    def gradient_depth(self) -> str | None:
        """The deepest layer each new (image, class) backward reaches (None before the first).

        It follows the deepest layer asked for so far, so a first map at ``layer4`` costs only
        the backward down to ``layer4``. Set it to ``layers[0]`` to make every later layer
        switch free at the price of a full-depth backward per class (the Explorer does).
        """
        return self.layers[self._depth] if self._depth < len(self.layers) else None

    @gradient_depth.setter
    def gradient_depth(self, layer: str | nn.Module) -> None:
        index = self.layers.index(self._layer(layer))
        self._depth = min(self._depth, index)
        # Every layer from there on must be recorded for those switches to be free.
        self._watched |= set(self.layers[self._depth :])

    def methods(self, layer: str | nn.Module | None = None) -> list[str]:
        """The names of the methods usable at ``layer`` (default layer if None)."""
        name = self._layer(layer)
        return [n for n, m in METHOD_REGISTRY.items() if m.unavailable(self, name) is None]
