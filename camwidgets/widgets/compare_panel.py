"""The compare panel: one ``CompareState`` -> every model's engine -> one figure, in place.

Each model keeps its own engine (and cache): an image costs one forward per model, which
serves its predictions and every later map; a class, method, layer or counterfactual switch
asks each engine for a cached (image, class) and costs at most one backward per model.
"""

from __future__ import annotations

import html
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ipywidgets as w
import numpy as np
import torch
import torch.nn.functional as F

from ..engine import CacheInfo, CamResult, GradCAM
from ..figures.compare import (
    CompareView,
    compare_figure,
    compare_parts,
    relayout_compare,
    update_compare,
)
from ..figures.part import Part
from . import compare_state as cs
from .classes import resolve_class
from .compare_state import CompareState
from .controls import has_counterfactual, layer_label, method_name
from .figure_widget import FigureWidget
from .panel.images import TOP_K, PanelImage, image_label, predict_all
from .root import Root

WIRE_MAX_SIDE = 72


class ComparePanel:
    """Controls, one figure and a status line around several engines, driven by one state.

    Args:
        engines: name -> engine, in display order (two or more).
    """

    def __init__(self, engines: dict[str, GradCAM], max_side: int | None = WIRE_MAX_SIDE) -> None:
        self.engines = engines
        self.names = tuple(engines)
        self.max_side = max_side
        self.syncing = False
        first = [e.default_layer for e in engines.values()]
        self.state = CompareState(layers=tuple(first), pair=(1, 0))
        self.results: dict[str, CamResult] = {}
        self._images: list[list[PanelImage]] = []  # per image: one prepared input per model
        self.view = CompareView.blank(self.names)
        label = {"description_width": "initial"}
        wide = {"width": "270px", "margin": "2px 12px 2px 0"}
        common = self.common_layers()
        self.image = w.Dropdown(
            description="image", style=label, layout=w.Layout(display="none", **wide)
        )
        # Wide enough for every model's probability in each class's label.
        self.target = w.Dropdown(
            description="class",
            style=label,
            layout=w.Layout(width=f"{230 + 110 * len(self.names)}px", margin="2px 12px 2px 0"),
        )
        self.layer = w.Dropdown(
            options=[(self._common_label(n), n) for n in common],
            value=first[0] if first[0] in common and len(set(first)) == 1 else None,
            description="layer (all)",
            style=label,
            layout=w.Layout(display=None if common else "none", **wide),
        )
        same = all(e.layers == self._engine(0).layers for e in engines.values())
        self.model_layers = [
            w.Dropdown(
                options=[(layer_label(n, e.layer_shapes[n]), n) for n in e.layers],
                value=e.default_layer,
                description=f"layer · {name}",
                style=label,
                layout=w.Layout(display="none" if same else None, **wide),
            )
            for name, e in engines.items()
        ]
        self.method = w.Dropdown(description="method", style=label, layout=w.Layout(**wide))
        self.counterfactual = w.ToggleButton(
            description="counterfactual",
            tooltip="explain -score in every model",
            icon="exchange",
            layout=w.Layout(width="auto", margin="2px 12px 2px 0"),
        )
        pairs = [(a, b) for a in range(len(self.names)) for b in range(len(self.names)) if a != b]
        self.pair = w.Dropdown(
            options=[(f"{self.names[a]} − {self.names[b]}", (a, b)) for a, b in pairs],
            value=(1, 0),
            description="difference",
            style=label,
            layout=w.Layout(**wide),
        )
        self.opacity = w.FloatSlider(
            value=0.5, min=0.0, max=1.0, step=0.05, description="opacity", style=label
        )
        self.busy = w.HTML(layout=w.Layout(min_height="22px"))
        self.error = w.HTML()
        self.status = w.HTML("No image yet: call <code>compare.show(image)</code>.")
        self.figure = FigureWidget(compare_figure(self.view, max_side))
        self._shown: list[Part] | None = compare_parts(self.view, max_side)
        rows = [
            w.HBox([self.image, self.target, self.method, self.counterfactual]),
            w.HBox([self.layer, *self.model_layers], layout=w.Layout(flex_flow="row wrap")),
            w.HBox([self.pair, self.opacity]),
        ]
        for row in rows:
            row.layout.flex_flow = "row wrap"
        self.root = Root(
            [*rows, self.busy, self.error, self.figure, self.status],
            layout=w.Layout(width="100%", min_width="0"),
        )
        self.root.attach(self)
        self._write_controls()
        self._wire()

    # -- public ------------------------------------------------------------------------------

    def common_layers(self) -> list[str]:
        """Layer names every model has, in the first model's forward order."""
        first = self._engine(0).layers
        return [n for n in first if all(n in e.layers for e in self.engines.values())]

    def methods(self, layers: Sequence[str] | None = None) -> list[str]:
        """Methods every model has at its layer (``layers``: one per model; default current)."""
        chosen = self.state.layers if layers is None else layers
        found: list[str] | None = None
        for engine, layer in zip(self.engines.values(), chosen, strict=True):
            here = list(engine.methods(layer))
            found = here if found is None else [m for m in found if m in here]
        return found or []

    def load(self, images: Sequence[Any]) -> None:
        """Show ``images`` (a picker for several), explaining the first one's top class."""
        if not images:
            raise ValueError("got an empty list of images")
        loaded = [
            [PanelImage(e.prepare(x), image_label(x, i)) for e in self.engines.values()]
            for i, x in enumerate(images)
        ]
        self._images = loaded
        self.results = {}
        with self.quiet():
            self.image.options = [(row[0].label, i) for i, row in enumerate(loaded)]
        self.image.layout.display = None if len(images) > 1 else "none"
        self._pick_image(0, strict=True)

    def change(
        self, transition: Callable[[CompareState], CompareState], strict: bool = False
    ) -> bool:
        """Move to ``transition(state)`` and draw it; errors are shown (and raised if strict)."""
        try:
            new = transition(self.state)
        except (ValueError, TypeError) as error:
            return self.failed(error, strict)
        return self._render(new, strict)

    def set_target(self, query: Any) -> None:
        """Explain the class ``query`` names (index or name) in every model."""
        index = resolve_class(query, self._engine(0).classes)
        if not self._images:
            raise RuntimeError("no image is shown yet: call compare.show(image) first")
        self.change(lambda s: cs.pick_target(s, index, self._offered()), strict=True)

    def failed(self, error: Exception, strict: bool) -> bool:
        """Show ``error``; put the controls back to the state shown; raise if strict."""
        message = html.escape(f"{type(error).__name__}: {error}")
        self.error.value = f'<span style="color:#b00020">⚠ {message}</span>'
        self._write_controls()
        if strict:
            raise error
        return False

    def static_bundle(self) -> dict[str, Any]:
        """The view as a PNG beside the widget (for viewers without widgets)."""
        if not self.results:
            return {}
        import base64

        from ..figures.compare_static import render_compare_png

        data = render_compare_png(self.view)
        return {"image/png": base64.b64encode(data).decode("ascii")}

    def close(self) -> None:
        """Close every widget of the panel."""
        self.root.release()

    @property
    def closed(self) -> bool:
        """Whether the panel's widgets were closed."""
        return bool(self.root.released)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Control changes made by the panel itself trigger nothing."""
        self.syncing = True
        try:
            yield
        finally:
            self.syncing = False

    # -- internals ---------------------------------------------------------------------------

    def _engine(self, index: int) -> GradCAM:
        return self.engines[self.names[index]]

    def _common_label(self, name: str) -> str:
        shapes = {e.layer_shapes[name] for e in self.engines.values()}
        if len(shapes) == 1:
            return layer_label(name, next(iter(shapes)))
        return f"{name} (shapes differ)"

    def _wire(self) -> None:
        def available() -> list[list[str]]:
            return [list(e.layers) for e in self.engines.values()]

        def common(p: ComparePanel, v: Any) -> None:
            if v is None:
                return
            layers = tuple(v for _ in p.names)
            p.change(lambda s: cs.set_layer(s, v, available(), p.methods(layers)))

        self.layer.observe(_weak(self, common), names="value")
        for index, dropdown in enumerate(self.model_layers):

            def one(p: ComparePanel, v: Any, index: int = index) -> None:
                layers = tuple(v if i == index else x for i, x in enumerate(p.state.layers))
                p.change(
                    lambda s: cs.set_model_layer(
                        s, index, v, p._engine(index).layers, p.methods(layers)
                    )
                )

            dropdown.observe(_weak(self, one), names="value")
        reactions: list[tuple[w.Widget, Callable[[ComparePanel, Any], Any]]] = [
            (self.image, lambda p, v: p._pick_image(v)),
            (self.target, lambda p, v: p.change(lambda s: cs.pick_target(s, v, p._offered()))),
            (
                self.method,
                lambda p, v: p.change(
                    lambda s: cs.pick_method(s, v, p.methods(), has_counterfactual(v))
                ),
            ),
            (
                self.counterfactual,
                lambda p, v: p.change(
                    lambda s: cs.set_counterfactual(s, v, has_counterfactual(s.method))
                ),
            ),
            (self.pair, lambda p, v: p.change(lambda s: cs.set_pair(s, tuple(v)))),
            (self.opacity, lambda p, v: p.change(lambda s: cs.set_style(s, opacity=v))),
        ]
        for widget, reaction in reactions:
            widget.observe(_weak(self, reaction), names="value")
        self.figure.observe(_weak(self, ComparePanel._on_width), names="view_width")

    def _on_width(self, width: int) -> None:
        if width and width >= 100:
            relayout_compare(self.figure, width)

    def _offered(self) -> list[int]:
        row = self._images[self.state.image][0] if self._images else None
        return [p.index for p in ((row.predictions if row else None) or [])[:TOP_K]]

    def _pick_image(self, index: int, strict: bool = False) -> None:
        before = {n: e.cache_info() for n, e in self.engines.items()}
        started = time.perf_counter()
        try:
            for engine, item in zip(self.engines.values(), self._images[index], strict=True):
                if item.predictions is None:
                    with self._working("running the models"):
                        item.predictions = predict_all(engine, item.prepared)
            top = self._images[index][0].predictions
            assert top is not None
        except Exception as error:
            self.failed(error, strict)
            return
        self._render(cs.pick_image(self.state, index, top[0].index), strict, (started, before))

    def _render(
        self,
        new: CompareState,
        strict: bool,
        start: tuple[float, dict[str, CacheInfo]] | None = None,
    ) -> bool:
        if self.syncing:
            return False
        if not self._images:
            self.state = new
            self._write_controls()
            return True
        started, before = start or (
            time.perf_counter(),
            {n: e.cache_info() for n, e in self.engines.items()},
        )
        try:
            with self._working("explaining"):
                results = {}
                for index, (name, engine) in enumerate(self.engines.items()):
                    old = self.results.get(name)
                    if old is None or new.explanation(index) != self.state.explanation(index):
                        old = engine.explain(
                            self._images[new.image][index].prepared,
                            layer=new.layers[index],
                            target=new.target,
                            counterfactual=new.counterfactual,
                            method=new.method,
                        )
                    results[name] = old
                view = self._make_view(new, results)
                self._shown = update_compare(self.figure, view, self.max_side, self._shown)
        except Exception as error:
            self._shown = None
            return self.failed(error, strict)
        self.state, self.results, self.view = new, results, view
        self.error.value = ""
        self._write_controls()
        self.status.value = self._status(before, time.perf_counter() - started)
        return True

    def _make_view(self, state: CompareState, results: dict[str, CamResult]) -> CompareView:
        row = self._images[state.image]
        size = tuple(results[self.names[0]].heatmap.shape)
        heatmaps = []
        for name in self.names:
            heat = results[name].heatmap.detach().float().cpu()
            if tuple(heat.shape) != size:  # models with their own input sizes
                heat = F.interpolate(
                    heat[None, None], size=size, mode="bilinear", align_corners=False
                )[0, 0]
            heatmaps.append(heat.numpy())
        titles = []
        for index, name in enumerate(self.names):
            res = results[name]
            predictions = row[index].predictions or []
            top = predictions[0] if predictions else None
            said = (
                f" · predicts {html.escape(top.name)}"
                if top is not None and top.index != res.target
                else ""
            )
            titles.append(f"{html.escape(res.layer)} · p {res.probability:.1%}{said}")
        first = results[self.names[0]]
        mode = "<b>COUNTERFACTUAL</b> · what speaks against " if state.counterfactual else ""
        caption = (
            f"{mode}<b>{html.escape(str(first.target_name))}</b> (class {first.target}) in "
            f"{len(self.names)} models · {html.escape(method_name(state.method))}"
            " · one shared colour scale"
        )
        return CompareView(
            picture=row[0].png(),
            names=self.names,
            heatmaps=tuple(heatmaps),
            weights=tuple(_numpy(results[n].weights) for n in self.names),
            titles=tuple(titles),
            pair=state.pair,
            top=state.top,
            opacity=state.opacity,
            caption=caption,
            counterfactual=state.counterfactual,
        )

    def _write_controls(self) -> None:
        s = self.state
        with self.quiet():
            if self._images:
                self.image.value = s.image
                options = self._class_options()
                if list(self.target.options) != options:
                    self.target.options = options
                self.target.value = s.target
            same = len(set(s.layers)) == 1 and s.layers[0] in self.common_layers()
            self.layer.value = s.layers[0] if same else None
            for dropdown, layer in zip(self.model_layers, s.layers, strict=True):
                dropdown.value = layer
            methods = [(method_name(m), m) for m in self.methods()]
            if list(self.method.options) != methods:
                self.method.options = methods
            self.method.value = s.method
            self.counterfactual.disabled = not has_counterfactual(s.method)
            self.counterfactual.value = s.counterfactual
            self.pair.value = s.pair
            self.opacity.value = s.opacity

    def _class_options(self) -> list[tuple[str, int]]:
        """Top classes of the first model, then extras; each with every model's probability."""
        row = self._images[self.state.image]
        by_model = [{p.index: p for p in (item.predictions or [])} for item in row]
        first = row[0].predictions or []
        shown = [p.index for p in first[:TOP_K]]
        shown += [i for i in self.state.extra if i not in shown]
        options = []
        for index in shown:
            name = by_model[0][index].name
            odds = ", ".join(
                f"{n} {by_model[m][index].probability:.0%}"
                for m, n in enumerate(self.names)
                if index in by_model[m]
            )
            options.append((f"{index}: {name} ({odds})", index))
        return options

    def _status(self, before: dict[str, CacheInfo], seconds: float) -> str:
        costs = []
        for name, engine in self.engines.items():
            after = engine.cache_info()
            f = after.forwards - before[name].forwards
            b = after.backwards - before[name].backwards
            cost = "cached" if f == b == 0 else f"{f} forward, {b} backward"
            predictions = self._images[self.state.image][self.names.index(name)].predictions
            top = predictions[0] if predictions else None
            said = f"predicts <b>{html.escape(top.name)}</b> ({top.probability:.1%})" if top else ""
            costs.append(f"{html.escape(name)}: {said} · {cost}")
        return " · ".join(costs) + f" · {seconds * 1000:.0f} ms"

    @contextmanager
    def _working(self, what: str) -> Iterator[None]:
        self.busy.value = f'<span style="color:#555">{html.escape(what)}…</span>'
        try:
            yield
        finally:
            self.busy.value = ""


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    """A result's tensor as float32 numpy on the CPU (results may live on the device)."""
    return None if t is None else np.asarray(t.detach().float().cpu().numpy())


def _weak(panel: ComparePanel, method: Callable[..., Any]) -> Callable[..., None]:
    """A callback calling ``method(panel, new value)`` while the panel lives (and is not
    writing its own controls), doing nothing after: widgets never keep the engines alive."""
    ref = weakref.ref(panel)

    def call(change: dict[str, Any]) -> None:
        target = ref()
        if target is not None and not target.syncing:
            method(target, change["new"])

    return call
