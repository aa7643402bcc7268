"""``Compare``: several models' Grad-CAM of one picture, side by side, in one panel."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..engine import CamResult, GradCAM
from ..engine.inputs import Transform
from . import compare_state as cs
from .compare_panel import ComparePanel
from .controls import has_counterfactual
from .root import Root, in_kernel

NO_FRONT_END = (
    "camwidgets: the Compare panel is a Jupyter widget and nothing here can display it (no "
    "Jupyter kernel); compare.results holds every model's explanation."
)


class Compare:
    """Two or more models explained on the same picture: ``Compare({"before": a, "after": b})``.

    Every model is asked the same question (image, class, method, counterfactual, and the same
    layer name where all have it, else a layer per model), each by its own ``GradCAM`` engine
    and cache: an image costs one forward per model. The panel shows their heat maps side by
    side on ONE colour range, the signed difference of a pair, and their channel weights alpha
    as grouped bars (matched by channel index when the layers have the same width):

        heat_m = bilinear(ReLU(sum_k alpha^m_k A^m_k)),   difference = heat_a - heat_b

    It fits two checkpoints of one architecture, a pruned or quantised copy
    (``torch.nn.utils.prune``, ``torch.ao.quantization.quantize_dynamic``) and two
    architectures (``compare.layer = {"resnet": "layer4", "vgg": "features.28"}``).

    Args:
        models: name -> ``nn.Module`` or a ready ``GradCAM`` engine, in display order.
        classes: class names shared by the models (or torchvision weights); every model must
            have the same number of classes.
        transform: one transform for every model, or a mapping name -> transform.
        device: where the engines it builds put inputs (default: each model's own device).

    Example:
        >>> from camwidgets import Compare, zoo
        >>> shapes, shortcut = zoo.load("shapes"), zoo.load("shortcut")
        >>> compare = Compare({"shapes": shapes.model, "shortcut": shortcut.model},
        ...                   classes=shapes.classes, transform=shapes.transform)
        >>> scene = zoo.make_scene(0, 3, mark="correct")
        >>> _ = compare.show(scene.image)   # doctest: +ELLIPSIS
        camwidgets: ...
        >>> sorted(compare.results), compare.layer
        (['shapes', 'shortcut'], 'layer4')
    """

    def __init__(
        self,
        models: Mapping[str, nn.Module | GradCAM],
        classes: Sequence[str] | Any | None = None,
        transform: Transform | Mapping[str, Transform] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if not isinstance(models, Mapping):
            raise TypeError(
                "models must be a mapping name -> model, e.g. {'before': model_a, 'after': "
                "model_b}; got " + type(models).__name__
            )
        if len(models) < 2:
            raise ValueError(f"Compare needs two or more models, got {len(models)}")
        for name, model in models.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"model names must be non-empty strings, got {name!r}")
            if not isinstance(model, (nn.Module, GradCAM)):
                raise TypeError(
                    f"model {name!r} must be a torch.nn.Module or a GradCAM, "
                    f"got {type(model).__name__}"
                )
        if isinstance(transform, Mapping):
            unknown = set(transform) - set(models)
            if unknown:
                raise ValueError(f"transforms given for unknown models: {sorted(unknown)}")
        engines: dict[str, GradCAM] = {}
        for name, model in models.items():
            if isinstance(model, GradCAM):
                engines[name] = model
                continue
            own = transform.get(name) if isinstance(transform, Mapping) else transform
            engine = GradCAM(model, classes=classes, transform=own, device=device)
            # Each class's backward reaches every layer: a layer switch never runs the model.
            engine.gradient_depth = engine.layers[0]
            engines[name] = engine
        counts = {name: e.num_classes for name, e in engines.items()}
        if len(set(counts.values())) != 1:
            raise ValueError(
                f"the models have different numbers of classes ({counts}); Compare explains "
                "the same class in every model"
            )
        self.engines = engines
        self._panel: ComparePanel | None = None
        self._told = False

    @property
    def panel(self) -> ComparePanel:
        """The panel, built on first use."""
        if self._panel is None or self._panel.closed:
            self._panel = ComparePanel(self.engines)
        return self._panel

    @property
    def names(self) -> list[str]:
        """The models' names, in display order."""
        return list(self.engines)

    def show(self, image: Any) -> Root:
        """Explain ``image`` (or pick among a list) in every model; display and return the panel."""
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] > 1:
            images = list(image.unbind(0))
        panel = self.panel
        if not in_kernel() and not self._told:
            self._told = True
            print(NO_FRONT_END, file=sys.stderr)
        try:
            panel.load(images)
        except Exception as error:
            panel.failed(error, strict=False)
            raise
        if in_kernel():
            panel.root.display_now()
        return panel.root

    @property
    def results(self) -> dict[str, CamResult]:
        """Each model's explanation on screen (empty before ``show``)."""
        return dict(self.panel.results) if self._panel is not None else {}

    @property
    def layers(self) -> dict[str, str]:
        """The layer explained in each model."""
        return dict(zip(self.names, self.panel.state.layers, strict=True))

    @property
    def layer(self) -> str | dict[str, str]:
        """The layer: one name when every model uses the same, else name -> layer. Set a name
        every model has, or a mapping name -> layer for some or all models."""
        layers = self.panel.state.layers
        return layers[0] if len(set(layers)) == 1 else self.layers

    @layer.setter
    def layer(self, layer: str | Mapping[str, str]) -> None:
        panel = self.panel
        available = [list(e.layers) for e in self.engines.values()]
        if isinstance(layer, str):
            layers = tuple(layer for _ in self.names)
            everywhere = all(layer in names for names in available)
            methods = panel.methods(layers) if everywhere else None
            panel.change(lambda s: cs.set_layer(s, layer, available, methods), strict=True)
            return
        if not isinstance(layer, Mapping):
            raise TypeError(f"layer must be a name or a mapping model -> name, got {layer!r}")
        unknown = set(layer) - set(self.names)
        if unknown:
            raise ValueError(f"unknown models {sorted(unknown)}; the models are {self.names}")
        wanted = tuple(layer.get(n, current) for n, current in self.layers.items())
        for index, (name, chosen) in enumerate(zip(self.names, wanted, strict=True)):
            if chosen not in available[index]:
                raise ValueError(
                    f"model {name!r} has no layer {chosen!r}; it has {', '.join(available[index])}"
                )
        methods = panel.methods(wanted)

        def move(state: cs.CompareState) -> cs.CompareState:
            for index, chosen in enumerate(wanted):
                state = cs.set_model_layer(state, index, chosen, available[index], methods)
            return state

        panel.change(move, strict=True)

    @property
    def target(self) -> int | None:
        """The class explained in every model; set it by index or name."""
        return self.panel.state.target if self._panel is not None else None

    @target.setter
    def target(self, query: Any) -> None:
        self.panel.set_target(query)

    @property
    def method(self) -> str:
        """The method, the same in every model; settable."""
        return self.panel.state.method

    @method.setter
    def method(self, method: str) -> None:
        panel = self.panel
        panel.change(
            lambda s: cs.pick_method(s, method, panel.methods(), has_counterfactual(method)),
            strict=True,
        )

    @property
    def counterfactual(self) -> bool:
        """Whether every model explains -score; settable."""
        return self.panel.state.counterfactual

    @counterfactual.setter
    def counterfactual(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise TypeError(f"counterfactual must be a bool, got {type(on).__name__}")
        self.panel.change(
            lambda s: cs.set_counterfactual(s, on, has_counterfactual(s.method)), strict=True
        )

    @property
    def pair(self) -> tuple[str, str]:
        """The difference map's two models (first minus second); settable by names."""
        a, b = self.panel.state.pair
        return self.names[a], self.names[b]

    @pair.setter
    def pair(self, names: tuple[str, str]) -> None:
        if not isinstance(names, (tuple, list)) or len(names) != 2:
            raise TypeError(f"pair must be two model names, got {names!r}")
        for name in names:
            if name not in self.engines:
                raise ValueError(f"unknown model {name!r}; the models are {self.names}")
        pair = (self.names.index(names[0]), self.names.index(names[1]))
        self.panel.change(lambda s: cs.set_pair(s, pair), strict=True)

    def close(self) -> None:
        """Close the panel's widgets; the next ``show`` builds a new panel."""
        if self._panel is not None:
            self._panel.close()
            self._panel = None

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = self.panel.root._repr_mimebundle_(**kwargs)
        return bundle
