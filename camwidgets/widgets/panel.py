"""The Explorer's panel: control state -> engine -> in-place figure updates, and a status line.

Message size. plotly's FigureWidget sends a 2-D numpy array as a nested JSON list (a 224x224
float heat map is about 1 MB of text) and a 1-D numeric array as a binary buffer. Every map is
therefore drawn from 1-D (x, y, z) columns of float32 (``figures.grid``): x and y depend only on
the grid and are re-sent only when it changes, and the values travel as float32 binary. The heat
map over the picture is drawn from at most ``WIRE_MAX_SIDE`` pixels per axis (72 x 72 = 20 KB at
224 x 224 instead of 200 KB), with the map's exact values at those pixels and plotly.js
interpolating between them; the maps on the layer's own grid (coarse map, A^k, alpha_k A^k) are
always sent whole, so hover gives every exact value there. The picture is a PNG sent once per
image. Measured on ResNet-50 (benchmarks/bench_widget.py): a class switch or counterfactual
toggle sends 23 KB at layer4 and 59 KB at layer1 (56 x 56 maps); a layer switch also sends the
new grid's coordinates (24 KB to layer4, 78 KB to layer1).

Landing. All panels are subplots of ONE FigureWidget, built whole before it is wrapped: in Voila,
with several FigureWidgets on a page, an update right after the first draw sometimes did not
reach one of them. The widget also gives a front end that connects after the notebook ran
(Voila) the figure as it is, not as it was built, and re-sends its state to a view that drew an
old one (``figure_widget.FigureWidget``).
"""

from __future__ import annotations

import base64
import html
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import numpy as np

from ..engine import CacheInfo, CamResult, GradCAM, Prediction, Prepared
from ..figures import PanelView, Part, TraceRole, panel_figure, panel_parts, png_data_uri
from ..figures import update_panel as draw
from ..figures.channels import default_channel
from ..figures.overlay import guided_picture
from ..figures.panel import relayout_panel
from ..figures.scales import magnitude, peak, positive_range
from . import state as st
from .classes import resolve_class
from .controls import (
    Controls,
    build_controls,
    class_label,
    layer_label,
    layer_options,
    method_name,
    method_options,
    methods_at,
)
from .figure_widget import FigureWidget
from .root import Root
from .state import PanelState

if TYPE_CHECKING:
    from ..naming import ChannelNames

WIRE_MAX_SIDE = 72
TOP_K = 5


@dataclass
class _Image:
    """One image of the panel: its prepared tensor, picture, predictions, picker label."""

    prepared: Prepared
    label: str
    predictions: list[Prediction] | None = None
    picture: str | None = None


class Panel:
    """Controls, one figure and a status line around an engine, all driven by one state.

    ``state`` (a ``PanelState``) is the only record of what is shown: a control change is
    turned into a new state by a pure transition (``camwidgets.widgets.state``), the engine's
    result for it is drawn, and the controls are written back from it. If drawing fails, the
    error is shown and state, figure and controls stay as they were.

    Widget callbacks hold only a weak reference to the panel, so a widget that outlives it
    (or leaks, as FigureWidgets used to) never keeps the engine and its cache alive.

    Args:
        engine: the GradCAM engine; the panel reads from it and never reconfigures it, unless
            ``all_layer_gradients`` says so.
        max_side: the heat map over the picture is sent with at most this many pixels per axis.
        all_layer_gradients: set ``engine.gradient_depth`` to the first layer, so that each
            class's one backward reaches every layer and a layer switch never runs the model
            (a full-depth backward per class instead of one down to the layers visited).
    """

    def __init__(
        self,
        engine: GradCAM,
        max_side: int | None = WIRE_MAX_SIDE,
        all_layer_gradients: bool = False,
        names: Any = None,
    ) -> None:
        self.engine = engine
        self._names: dict[str, ChannelNames] = {}
        if all_layer_gradients and hasattr(engine, "gradient_depth"):
            engine.gradient_depth = engine.layers[0]
        self.max_side = max_side
        self.controls: Controls = build_controls(engine)
        self.state = PanelState(layer=engine.default_layer, bars=self.controls.bars.value)
        self.result: CamResult | None = None
        self.view = PanelView.blank()
        self.status = w.HTML("No image yet: call <code>explorer.show(image)</code>.")
        self.error = w.HTML()
        self.busy = w.HTML(layout=w.Layout(min_height="22px"))
        # Under the chart: the map in words (when channel names are loaded), faithfulness.
        self.words = w.HTML(layout=w.Layout(display="none"))
        self.faithfulness = w.HTML()
        # Its width follows the front end (FigureWidget fix 5); plotly's own ``layout``
        # argument would be the figure's layout, not a widget Layout.
        self.figure = FigureWidget(panel_figure(self.view, max_side))
        self.root = Root(
            [
                self.controls.box(),
                self.busy,
                self.error,
                self.figure,
                self.words,
                self.faithfulness,
                self.status,
            ],
            layout=w.Layout(width="100%", min_width="0"),
        )
        # Once displayed, the box keeps the panel (and so the engine) alive; callbacks never do.
        self.root.attach(self)
        self._shown: list[Part] | None = panel_parts(self.view, max_side)
        self._images: list[_Image] = []
        self._ranges: dict[tuple[Any, ...], tuple[float, float, np.ndarray]] = {}
        self._measured: dict[tuple[Any, ...], str] = {}
        self._syncing = False
        self._wire()
        if names is not None:
            self.set_names(names)

    # -- public ------------------------------------------------------------------------------

    def load(self, images: Sequence[Any]) -> None:
        """Show ``images`` (a picker appears for several), explaining the first one's top class.

        Raises:
            ValueError, TypeError: from the engine, for an image it cannot take.
        """
        if not images:
            raise ValueError("got an empty list of images")
        self._images = [_Image(self.engine.prepare(x), _label(x, i)) for i, x in enumerate(images)]
        self.result = None
        # Both are keyed by image index: they belong to the images shown before.
        self._ranges.clear()
        self._measured.clear()
        picker = self.controls.image
        with self._quiet():
            picker.options = [(item.label, i) for i, item in enumerate(self._images)]
        picker.layout.display = None if len(images) > 1 else "none"
        self._pick_image(0, strict=True)

    def set_target(self, query: Any) -> None:
        """Explain the class ``query`` names (index, name in any case, ``"3: cat"``).

        Raises:
            RuntimeError: before an image is shown.
            ValueError, TypeError: for a class the model does not have (with suggestions).
        """
        index = resolve_class(query, self.engine.classes)
        if not self._images:
            raise RuntimeError("no image is shown yet: call explorer.show(image) first")
        self.change(lambda s: st.pick_target(s, index, self._offered()), strict=True)

    def change(self, transition: Callable[[PanelState], PanelState], strict: bool = False) -> bool:
        """Move to ``transition(state)``, draw it and write the controls from it.

        Errors (from the transition, the engine or the figures) are shown in the panel and the
        panel stays as it was and usable; with ``strict`` they are also raised.

        Returns:
            Whether the new state is shown.
        """
        started, before = time.perf_counter(), self.engine.cache_info()
        try:
            new = transition(self.state)
        except (ValueError, TypeError) as error:
            return self._failed(error, strict)
        return self._render(new, strict, (started, before))

    def set_names(self, names: Any) -> None:
        """Load channel names (``camwidgets.dissect`` tables): one ``ChannelNames``, several
        (one per layer), or None to forget them. Shown for the layer each table is for.

        Raises:
            TypeError: for anything else; ValueError: a table of a layer the engine does not
                have, or with another channel count.
        """
        from ..naming import ChannelNames

        tables = [] if names is None else [names] if isinstance(names, ChannelNames) else names
        if not isinstance(tables, (list, tuple)) or not all(
            isinstance(t, ChannelNames) for t in tables
        ):
            raise TypeError(
                "names must be a ChannelNames (from camwidgets.dissect), a list of them, or None;"
                f" got {type(names).__name__}"
            )
        found: dict[str, ChannelNames] = {}
        for table in tables:
            if table.layer not in self.engine.layer_shapes:
                raise ValueError(f"names are for layer {table.layer!r}, which the engine lacks")
            channels = self.engine.layer_shapes[table.layer][0]
            if len(table) != channels:
                raise ValueError(
                    f"names for {table.layer!r} have {len(table)} channels, the layer {channels}"
                )
            found[table.layer] = table
        self._names = found
        self.controls.names.layout.display = None if found else "none"
        if self._images:
            self.change(lambda s: s, strict=True)  # draw again with (or without) the names

    def measure(self, steps: int = 40, runs: int = 3) -> str:
        """Deletion and insertion AUC of the map shown, next to random maps' (on demand).

        Random maps are drawn on the layer's grid and resized like a CAM (``runs`` of them);
        ``steps`` perturbation steps per curve. Results are kept per view.

        Returns:
            The readout (also shown under the chart).
        """
        if self.result is None or not self._images:
            raise RuntimeError("no image is shown yet: call explorer.show(image) first")
        from .. import metrics

        state, result = self.state, self.result
        key = (*state.explanation, steps, runs)
        if key not in self._measured:
            prepared = self._images[state.image].prepared
            grid = tuple(self.engine.layer_shapes[state.layer][1:])
            with self._working("measuring deletion and insertion"):
                found = metrics.faithfulness(
                    self.engine, prepared, result, steps=steps, progress=False
                )
                base = metrics.random_baseline(
                    self.engine,
                    prepared,
                    result.target,
                    runs=runs,
                    grid=(int(grid[0]), int(grid[1])),
                    steps=steps,
                    progress=False,
                )
            assert isinstance(found, metrics.Faithfulness)
            self._measured[key] = _faithfulness_html(found, base, method_name(state.method))
        self.faithfulness.value = self._measured[key]
        return self._measured[key]

    def close(self) -> None:
        """Close every widget of the panel (their front-end views disappear)."""
        self.root.release()

    @property
    def closed(self) -> bool:
        """Whether the panel's widgets were closed (by ``close`` or a re-run of its cell)."""
        return bool(self.root.released)

    def static_bundle(self) -> dict[str, Any]:
        """Extra mime data beside the widget view: the view as a PNG (none before a result),
        so converted notebooks, previews and viewers without widgets show the panel."""
        if self.result is None:
            return {}
        from ..figures.static import render_png

        data = render_png(replace(self.view, hint=""))
        return {"image/png": base64.b64encode(data).decode("ascii")}

    # -- events ------------------------------------------------------------------------------

    def _wire(self) -> None:
        """Connect control changes to transitions, through weak references to self."""
        c = self.controls
        pairs: list[tuple[w.Widget, Callable[[Panel, Any], Any]]] = [
            (c.image, lambda p, v: p._pick_image(v)),
            (c.layer, lambda p, v: p.change(lambda s: st.pick_layer(s, v, p._methods(v)))),
            (c.method, lambda p, v: p.change(lambda s: p._pick_method(s, v))),
            (c.names, lambda p, v: p.change(lambda s: st.show_names(s, v))),
            (c.target, lambda p, v: p.change(lambda s: st.pick_target(s, v, p._offered()))),
            (
                c.counterfactual,
                lambda p, v: p.change(
                    lambda s: st.set_counterfactual(s, v, _has_counterfactual(s.method))
                ),
            ),
            (c.search, Panel._on_search),
            (c.opacity, lambda p, v: p.change(lambda s: st.set_style(s, opacity=v))),
            (c.colorscale, lambda p, v: p.change(lambda s: st.set_style(s, colorscale=v))),
            (c.bars, lambda p, v: p.change(lambda s: st.set_style(s, bars=v))),
            (c.scale, lambda p, v: p.change(lambda s: st.set_scale(s, v))),
            (c.all_layers, lambda p, v: p.change(lambda s: st.show_all_layers(s, v))),
        ]
        for widget, method in pairs:
            widget.observe(_weak(self, method), names="value")
        self.figure.data[TraceRole.BARS].on_click(_weak(self, Panel._on_bar_click))
        self.figure.observe(_weak(self, Panel._on_width), names="view_width")
        c.measure.on_click(_weak(self, Panel._on_measure))

    def _on_measure(self, button: Any) -> None:
        try:
            self.measure()
        except Exception as error:  # shown in the panel, as every error from a control
            self._failed(error, strict=False)

    def _methods(self, layer: str) -> list[str]:
        return methods_at(self.engine, layer)

    def _pick_method(self, state: PanelState, method: str) -> PanelState:
        return st.pick_method(
            state, method, self._methods(state.layer), _has_counterfactual(method)
        )

    def _on_width(self, width: int) -> None:
        """The front end drew the figure ``width`` px wide: lay it out for that width."""
        if width and width >= 100:
            relayout_panel(self.figure, width)

    def _on_search(self, value: str) -> None:
        if not value.strip() or not self._images:
            return
        try:
            index = resolve_class(value, self.engine.classes)
        except (ValueError, TypeError) as error:
            self._failed(error, strict=False)
            return
        if self.change(lambda s: st.pick_target(s, index, self._offered())):
            with self._quiet():
                self.controls.search.value = ""

    def _on_bar_click(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            channel = int(trace.customdata[points.point_inds[0]])
            self.change(lambda s: st.pick_channel(s, channel))

    # -- state -> engine -> figure, controls, status ------------------------------------------

    def _pick_image(self, index: int | None, strict: bool = False) -> None:
        """Switch to image ``index``: its predictions (one cached forward) and top class."""
        if not self._images or index is None:
            return
        started, before = time.perf_counter(), self.engine.cache_info()
        try:
            item = self._images[index]
            if item.predictions is None:
                with self._working("running the model"):
                    item.predictions = self._predict(item.prepared)
            top = item.predictions[0].index
        except Exception as error:
            self._failed(error, strict)
            return
        self._render(st.pick_image(self.state, index, top), strict, (started, before))

    def _render(
        self, new: PanelState, strict: bool, start: tuple[float, CacheInfo] | None = None
    ) -> bool:
        """Show ``new``: explain it if the engine's question changed, draw, write controls."""
        if self._syncing:
            return False
        if not self._images:
            self.state = new
            self._write_controls()
            return True
        started, before = start or (time.perf_counter(), self.engine.cache_info())
        try:
            with self._working("explaining"):
                result = self.result
                if result is None or new.explanation != self.state.explanation:
                    result = self.engine.explain(
                        self._images[new.image].prepared,
                        layer=new.layer,
                        target=new.target,
                        counterfactual=new.counterfactual,
                        method=new.method,
                    )
                view = self._make_view(new, result)
                self._shown = draw(self.figure, view, self.max_side, self._shown)
                words = self._words(new, result)
        except Exception as error:  # shown in the panel, as the issue asks
            self._shown = None  # the figure may be half updated: next time, update it all
            return self._failed(error, strict)
        self.state, self.result, self.view = new, result, view
        self._write_controls()
        self.error.value = ""
        self.words.value = words
        self.words.layout.display = None if words else "none"
        self.faithfulness.value = self._measured.get(
            (*new.explanation, 40, 3),
            "",
        )
        seconds = time.perf_counter() - started
        self.status.value = self._status_html(result, seconds, before)
        return True

    def _failed(self, error: Exception, strict: bool) -> bool:
        """Show ``error``; put the controls back to the state still shown; raise if strict."""
        self.error.value = _error_html(error)
        self._write_controls()
        if strict:
            raise error
        return False

    def _write_controls(self) -> None:
        """Write every control from ``state`` (changes made here trigger nothing)."""
        s, c = self.state, self.controls
        with self._quiet():
            if self._images:
                c.image.value = s.image
                item = self._images[s.image]
                if item.predictions is not None:
                    options = _class_options(item.predictions, s.extra)
                    if list(c.target.options) != options:
                        c.target.options = options
                    c.target.value = s.target
            layers = layer_options(self.engine, s.all_layers, s.layer)
            if list(c.layer.options) != layers:
                c.layer.options = layers
            c.layer.value = s.layer
            c.all_layers.value = s.all_layers
            methods = method_options(self.engine, s.layer)
            if list(c.method.options) != methods:
                c.method.options = methods
            c.method.value = s.method
            c.counterfactual.disabled = not _has_counterfactual(s.method)
            c.names.value = s.names
            c.counterfactual.value = s.counterfactual
            c.opacity.value = s.opacity
            c.colorscale.value = s.colorscale
            c.bars.value = s.bars
            c.scale.value = s.scale

    def _offered(self) -> list[int]:
        """The top classes of the current image (the class list before any extra)."""
        predictions = self._images[self.state.image].predictions if self._images else None
        return [p.index for p in (predictions or [])[:TOP_K]]

    def _make_view(self, state: PanelState, result: CamResult) -> PanelView:
        """The figure's input for ``result`` drawn as ``state`` says."""
        item = self._images[state.image]
        if item.picture is None:
            display = item.prepared.display  # (1, H, W, 3) for one image
            item.picture = png_data_uri(display[0] if display.ndim == 4 else display)
        # Methods without channel weights (HiResCAM, LayerCAM) draw no bars.
        weights = (
            result.weights.numpy()
            if result.weights is not None
            else np.zeros(result.activations.shape[0], dtype=np.float32)
        )
        channel = state.channel
        if channel is not None and not 0 <= channel < weights.size:
            raise ValueError(f"channel {channel} is out of range: the layer has {weights.size}")
        shown = default_channel(weights) if channel is None else channel
        heat_max = coarse_max = contribution_max = None
        if state.scale == "shared":
            heat_max, coarse_max, alphas = self._shared_ranges(state)
            activation = result.activations[shown].numpy()
            contribution_max = float(alphas[shown]) * magnitude(activation)
        return PanelView(
            picture=item.picture,
            heatmap=result.heatmap.numpy(),
            coarse=result.coarse.numpy(),
            weights=weights,
            activations=result.activations.numpy(),
            channel=channel,
            top=state.bars,
            opacity=state.opacity,
            colorscale=state.colorscale,
            caption=self._caption(state, result),
            counterfactual=result.counterfactual,
            heat_max=heat_max,
            coarse_max=coarse_max,
            contribution_max=contribution_max,
            hint=(
                "click a bar to see its channel"
                if result.weights is not None
                else f"{method_name(result.method)} has no channel weights"
            ),
            names=self._channel_names(state),
            guided=(guided_picture(result.guided.numpy()) if result.guided is not None else None),
        )

    def _channel_names(self, state: PanelState) -> tuple[str, ...] | None:
        """One name per channel ("" for unnamed) when names for this layer are shown."""
        table = self._names.get(state.layer)
        if table is None or not state.names:
            return None
        return tuple(table.name(k) or "" for k in range(len(table)))

    def _words(self, state: PanelState, result: CamResult) -> str:
        """``describe`` of the view as a line of HTML, when names for the layer are loaded."""
        table = self._names.get(state.layer)
        if table is None or not state.names:
            return ""
        if result.weights is None:
            return (
                f"<i>{html.escape(method_name(result.method))} has no channel weights: no "
                "explanation in words for this method.</i>"
            )
        from ..naming import describe

        said = describe(result, table, k=3, classes=self.engine.classes)
        return f'<span style="font-size:13px">💬 {html.escape(said.sentence)}</span>'

    def _shared_ranges(self, state: PanelState) -> tuple[float, float, np.ndarray]:
        """One colour range per layer: over every listed class, both signs where defined.

        Returns the heat maps' largest value, the coarse maps' largest |value|, and per channel
        the largest |alpha_k| (times max |A^k| it bounds alpha_k A^k). Each class costs one
        backward the first time (then cached); the counterfactual costs nothing more.
        """
        classes = tuple(self._offered()) + state.extra
        key = (state.image, state.layer, state.method, classes)
        if key not in self._ranges:
            prepared = self._images[state.image].prepared
            signs = [False, True] if _has_counterfactual(state.method) else [False]
            heat, coarse, alphas = 0.0, 0.0, None
            for target in classes:
                for sign in signs:
                    res = self.engine.explain(
                        prepared,
                        layer=state.layer,
                        target=target,
                        counterfactual=sign,
                        method=state.method,
                    )
                    heat = max(heat, peak(res.heatmap.numpy()))
                    coarse = max(coarse, magnitude(res.coarse.numpy()))
                    if res.weights is not None:
                        size = np.abs(res.weights.numpy())
                        alphas = size if alphas is None else np.maximum(alphas, size)
            channels = self.engine.layer_shapes[state.layer][0]
            self._ranges[key] = (
                positive_range(heat),
                positive_range(coarse),
                alphas if alphas is not None else np.zeros(channels, np.float32),
            )
        return self._ranges[key]

    def _caption(self, state: PanelState, result: CamResult) -> str:
        """The figure's title: the class explained, the prediction, layer, method, mode."""
        predictions = self._images[state.image].predictions or []
        e = html.escape
        mode = (
            "<b>COUNTERFACTUAL</b> · what speaks against "
            if result.counterfactual
            else "explaining "
        )
        top = (
            f" · predicted <b>{e(predictions[0].name)}</b> ({predictions[0].probability:.1%})"
            if predictions
            else ""
        )
        shape = self.engine.layer_shapes[result.layer]
        return (
            f"{mode}<b>{e(str(result.target_name))}</b> (class {result.target}, "
            f"p {result.probability:.1%}){top} · layer {e(result.layer)} "
            f"{shape[1]}×{shape[2]} · {e(method_name(result.method))}"
        )

    def _status_html(self, result: CamResult, seconds: float, before: CacheInfo) -> str:
        """Predicted class, the class explained, its score, the layer, and what the update cost."""
        predictions = self._images[self.state.image].predictions
        assert predictions is not None
        top = predictions[0]
        after = self.engine.cache_info()
        forwards, backwards = after.forwards - before.forwards, after.backwards - before.backwards
        cost = (
            "cached"
            if forwards == backwards == 0
            else f"computed: {forwards} forward, {backwards} backward"
        )
        mode = " · <b>counterfactual</b>" if result.counterfactual else ""
        mode += f" · {method_name(result.method)}"
        mode += " · shared scale" if self.state.scale == "shared" else ""
        e = html.escape
        return (
            f"predicted <b>{e(top.name)}</b> ({top.probability:.1%}) · explaining "
            f"<b>{e(str(result.target_name))}</b> (class {result.target}, "
            f"score {result.score:.4g}, p {result.probability:.1%}){mode} · layer "
            f"<code>{e(layer_label(result.layer, self.engine.layer_shapes[result.layer]))}</code>"
            f" · {seconds * 1000:.0f} ms, {cost}"
        )

    # -- helpers -----------------------------------------------------------------------------

    def _current(self) -> _Image:
        return self._images[self.state.image]

    def _predict(self, prepared: Prepared) -> list[Prediction]:
        """Every class, most probable first (one cached forward serves all of them)."""
        found = self.engine.predict(prepared, k=self.engine.num_classes)
        return [p for p in found if isinstance(p, Prediction)]

    @contextmanager
    def _working(self, what: str) -> Iterator[None]:
        """Show a busy line while the engine works (the front end gets it before the work)."""
        self.busy.value = (
            f'<span style="color:#555"><i class="fa fa-spinner fa-spin"></i> {what}…</span>'
        )
        try:
            yield
        finally:
            self.busy.value = ""

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Control changes made by the panel itself inside the block trigger no update."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False


def _weak(panel: Panel, method: Callable[..., Any]) -> Callable[..., None]:
    """A callback calling ``method`` on ``panel`` while it lives, doing nothing after.

    A traitlets change (one dict argument) is passed on as its new value; a plotly click
    (trace, points, state) as it is.
    """
    ref = weakref.ref(panel)

    def call(*args: Any) -> None:
        target = ref()
        if target is None or target._syncing:
            return
        if len(args) == 1 and isinstance(args[0], dict) and "new" in args[0]:
            method(target, args[0]["new"])
        else:
            method(target, *args)

    return call


def _has_counterfactual(method: str) -> bool:
    """Whether ``method`` has a counterfactual (class-agnostic ones such as Eigen-CAM do not)."""
    from ..engine.methods import get_method

    return bool(get_method(method).supports_counterfactual)


def _faithfulness_html(found: Any, base: Any, method: str) -> str:
    """Deletion / insertion AUC of the map next to the random maps' mean ± sd."""
    better = found.deletion.auc < base.deletion and found.insertion.auc > base.insertion
    verdict = (
        "more faithful than random maps on both"
        if better
        else "<b>not</b> better than random maps on both"
    )
    return (
        f"faithfulness of this {html.escape(method)} map: deletion AUC "
        f"<b>{found.deletion.auc:.3f}</b> (random {base.deletion:.3f} ± {base.deletion_std:.3f};"
        f" lower is better) · insertion AUC <b>{found.insertion.auc:.3f}</b> (random "
        f"{base.insertion:.3f} ± {base.insertion_std:.3f}; higher is better) · {verdict} "
        f"({base.runs} random maps)"
    )


def _class_options(predictions: Sequence[Prediction], extra: Sequence[int]) -> list[Any]:
    """The class list: the top predictions, then the classes chosen beyond them."""
    shown = list(predictions[:TOP_K])
    by_index = {p.index: p for p in predictions}
    shown += [by_index[i] for i in extra if i in by_index and by_index[i] not in shown]
    return [(class_label(p.index, p.name, p.probability), p.index) for p in shown]


def _label(image: Any, index: int) -> str:
    """The image picker's label: a file's name, else "image N"."""
    if isinstance(image, (str, Path)):
        return Path(image).name
    return f"image {index + 1}"


def _error_html(error: Exception) -> str:
    """A readable one-line error for the panel."""
    message = html.escape(f"{type(error).__name__}: {error}")
    return f'<span style="color:#b00020">⚠ {message}</span>'
