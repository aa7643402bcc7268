"""``Explorer``: the notebook face of the engine. Thin: the panel does the work."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import torch
from torch import nn

from ..engine import CamResult, GradCAM
from ..engine.inputs import Transform
from ..engine.methods import get_method
from ..figures import PanelView, panel_figure
from ..figures.panel import DEFAULT_WIDTH
from . import state as st
from .controls import has_counterfactual
from .panel import Panel
from .panel.status import error_html
from .root import Root, in_kernel

NO_FRONT_END = (
    "camwidgets: the Explorer panel is a Jupyter widget and nothing here can display it (no "
    "Jupyter kernel). Open this code in JupyterLab, Jupyter Notebook, VS Code or Voila to use "
    "the panel, or export the view: explorer.save_png('panel.png') or "
    "explorer.save_html('panel.html')."
)


class Explorer:
    """An interactive Grad-CAM panel for Jupyter: ``Explorer(model).show(image)``.

    Pick the layer, the class (top predictions or a search over all classes), the
    counterfactual, and click a channel's bar to see its activation A^k and contribution
    alpha_k A^k. ``show`` loads the images into the Explorer's one panel: re-running a cell
    adds no widgets, engine, cache or hooks, and every output of one Explorer shows the same
    panel (``Explorer(explorer.engine)`` gives an independent one that shares the cache).

    Args:
        model: a ``torch.nn.Module``, or a ready ``GradCAM`` engine (then give no other argument).
        classes, transform, layers, device, weights, concept_encoder: as for ``GradCAM``
            (``weights=ResNet50_Weights.DEFAULT`` gives its transform and category names).
        names: channel names from ``camwidgets.dissect`` (one ``ChannelNames`` or a list, one
            per layer): hovering a bar names its channel, the channel view is titled with it,
            and a line under the chart says the map in words (``camwidgets.describe``).
        all_layer_gradients: make each class's backward reach every layer, so that switching
            layer never runs the model (``engine.gradient_depth`` set to the first layer).
            Default: yes for the engine the Explorer builds, no for an engine you give (it is
            left as you configured it).

    Example:
        >>> explorer = Explorer(model, classes=names)          # doctest: +SKIP
        >>> explorer.show("cat.jpg")                           # doctest: +SKIP
        >>> explorer.target = "tabby cat"                      # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module | GradCAM,
        classes: Sequence[str] | Any | None = None,
        transform: Transform | None = None,
        layers: Sequence[str | nn.Module] | None = None,
        device: str | torch.device | None = None,
        all_layer_gradients: bool | None = None,
        names: Any = None,
        weights: Any = None,
        concept_encoder: Any = None,
    ) -> None:
        if all_layer_gradients is not None and not isinstance(all_layer_gradients, bool):
            raise TypeError(
                f"all_layer_gradients must be a bool or None, got {all_layer_gradients!r}"
            )
        if isinstance(model, GradCAM):
            given = (classes, transform, layers, device, weights, concept_encoder)
            if any(x is not None for x in given):
                raise TypeError("Explorer(engine) takes no other arguments: configure the GradCAM")
            self.engine = model
            owned = False
        else:
            self.engine = GradCAM(
                model,
                classes=classes,
                transform=transform,
                layers=layers,
                device=device,
                weights=weights,
                concept_encoder=concept_encoder,
            )
            owned = True
        self.all_layer_gradients = owned if all_layer_gradients is None else all_layer_gradients
        self._panel: Panel | None = None
        self._told = False
        self._names: Any = None
        if names is not None:
            self.names = names

    @property
    def panel(self) -> Panel:
        """The panel, built on first use."""
        if self._panel is None or self._panel.closed:
            self._panel = Panel(
                self.engine, all_layer_gradients=self.all_layer_gradients, names=self._names
            )
        return self._panel

    @property
    def layer(self) -> str:
        """The layer explained; settable (any of ``engine.layers``)."""
        return self.panel.state.layer

    @layer.setter
    def layer(self, layer: str) -> None:
        if layer not in self.engine.layers:
            # The engine's own error: unknown layer, did you mean ..., the candidates.
            self.engine.methods(layer)
            raise TypeError(f"layer must be one of engine.layers (a name), got {layer!r}")
        panel = self.panel
        panel.change(lambda s: st.pick_layer(s, layer, panel.methods(layer)), strict=True)

    @property
    def method(self) -> str:
        """The explanation method; settable (any of ``engine.methods(explorer.layer)``)."""
        return self.panel.state.method

    @method.setter
    def method(self, method: str) -> None:
        get_method(method)  # an unknown name: the engine's words (unknown method, the names)
        panel = self.panel
        panel.change(lambda s: panel.pick_method(s, method), strict=True)

    @property
    def counterfactual(self) -> bool:
        """Whether the counterfactual is shown; settable."""
        return self.panel.state.counterfactual

    @counterfactual.setter
    def counterfactual(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise TypeError(f"counterfactual must be a bool, got {type(on).__name__}")
        self.panel.change(
            lambda s: st.set_counterfactual(s, on, has_counterfactual(s.method)), strict=True
        )

    @property
    def names(self) -> Any:
        """The channel names shown (``ChannelNames``, a list of them, or None)."""
        return self._names

    @names.setter
    def names(self, names: Any) -> None:
        self.panel.set_names(names)  # checks them
        self._names = names

    @property
    def target(self) -> int | None:
        """The class explained; set it by index or name (``explorer.target = "tabby cat"``).

        Any class of the model can be set, not only the top predictions; names are matched
        case-insensitively and an unknown one raises a ValueError with suggestions.
        """
        return self.panel.state.target if self._panel is not None else None

    @target.setter
    def target(self, query: Any) -> None:
        self.panel.set_target(query)

    def show(self, image: Any) -> Root:
        """Explain ``image`` (or pick among a list of them) in the panel, display and return it.

        Showing again reuses the same panel, figure and engine cache.
        """
        images = list(image) if isinstance(image, (list, tuple)) else [image]
        if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] > 1:
            images = list(image.unbind(0))
        panel = self.panel
        handle: Any = None
        if in_kernel():
            # A busy line at once (the first explanation of a big model takes seconds); the
            # panel replaces it, with its static picture, once there is something to show.
            handle = panel.root.placeholder("running the model and explaining its top class")
        elif not self._told:
            self._told = True
            print(NO_FRONT_END, file=sys.stderr)
        try:
            panel.load(images)
        except Exception as error:
            panel.error.value = error_html(error)
            raise
        finally:
            if in_kernel():
                panel.root.display_into(handle)
        return panel.root

    @property
    def result(self) -> CamResult | None:
        """The explanation on screen (None before ``show``)."""
        return self.panel.result if self._panel is not None else None

    def figure(self, width: int = DEFAULT_WIDTH) -> go.Figure:
        """The current view as a plain ``go.Figure``, the heat map at full resolution.

        Its title names the class explained, the prediction, layer, method and whether it is
        the counterfactual.

        Raises:
            RuntimeError: before ``show`` (there is nothing to export yet).
        """
        return panel_figure(self._export_view(), None, width=width, fixed=True)

    def save_html(self, path: str | Path, **kwargs: Any) -> Path:
        """Write ``figure()`` to a standalone HTML file, titled like it (kwargs: ``to_html``).

        Raises:
            RuntimeError: before ``show``.
        """
        figure = self.figure()
        path = Path(path)
        kwargs.setdefault("config", {"responsive": True})
        page = figure.to_html(**kwargs)
        if kwargs.get("full_html", True):
            # The browser tab and bookmarks name what is shown: class, layer, method.
            title = html.escape(_plain(str(figure.layout.title.text or "Grad-CAM")))
            page = page.replace("<head>", f"<head><title>{title}</title>", 1)
        path.write_text(page, encoding="utf-8")
        return path

    def save_png(self, path: str | Path) -> Path:
        """Write the current view as a PNG, drawn here with numpy and PIL (no browser needed).

        The picture carries the same title as ``figure()``: class, prediction, layer, method
        and the counterfactual state.

        Raises:
            RuntimeError: before ``show``.
        """
        view = self._export_view()
        from ..figures.static import render_png

        path = Path(path)
        path.write_bytes(render_png(view))
        return path

    def _export_view(self) -> PanelView:
        """The view to export (no "click a bar" hint), or a clear error before ``show``."""
        if self._panel is None or self._panel.closed or self._panel.result is None:
            raise RuntimeError(
                "nothing to export yet: call explorer.show(image) first, then export the view"
            )
        return replace(self._panel.view, hint="")

    def close(self) -> None:
        """Close the panel's widgets; the next ``show`` builds a new panel."""
        if self._panel is not None:
            self._panel.close()
            self._panel = None

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle: dict[str, Any] | None = self.panel.root._repr_mimebundle_(**kwargs)
        return bundle


def _plain(text: str) -> str:
    """Figure title text without plotly's HTML tags, on one line."""
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())
