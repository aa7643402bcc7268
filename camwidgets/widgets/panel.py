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

import html
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as w
import numpy as np

from ..engine import CacheInfo, CamResult, GradCAM, Prediction, Prepared
from ..figures import BARS, PanelView, Part, panel_figure, panel_parts, png_data_uri, update_panel
from .controls import Controls, build_controls, layer_label, search_option
from .figure_widget import FigureWidget

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
    """Controls, one figure and a status line around an engine.

    Widget callbacks hold only a weak reference to the panel, so a widget that outlives it
    (or leaks, as FigureWidgets used to) never keeps the engine and its cache alive.
    """

    def __init__(self, engine: GradCAM, max_side: int | None = WIRE_MAX_SIDE) -> None:
        self.engine = engine
        # Each class's one backward reaches every layer in the dropdown, so a layer switch on
        # an explained (image, class) never runs a model pass, even to a layer not yet visited.
        engine.gradient_depth = engine.layers[0]
        self.max_side = max_side
        self.controls: Controls = build_controls(engine)
        self.result: CamResult | None = None
        self.view = PanelView.blank()
        self.status = w.HTML("No image yet: call <code>explorer.show(image)</code>.")
        self.error = w.HTML()
        self.figure = FigureWidget(panel_figure(self.view, max_side))
        self.root = Root([self.controls.box(), self.error, self.figure, self.status])
        # The displayed box keeps the panel (and so the engine) alive, callbacks do not.
        self.root.panel = self
        self._shown: list[Part] | None = panel_parts(self.view, max_side)
        self._images: list[_Image] = []
        self._channel: int | None = None
        self._syncing = False
        self._wire()

    # -- public ------------------------------------------------------------------------------

    def load(self, images: Sequence[Any]) -> None:
        """Show ``images`` (a picker appears for several), explaining the first one.

        Raises:
            ValueError, TypeError: from the engine, for an image it cannot take.
        """
        if not images:
            raise ValueError("got an empty list of images")
        self._images = [_Image(self.engine.prepare(x), _label(x, i)) for i, x in enumerate(images)]
        picker = self.controls.image
        with self._quiet():
            picker.options = [(item.label, i) for i, item in enumerate(self._images)]
            picker.value = 0
        picker.layout.display = None if len(images) > 1 else "none"
        self._select_image(strict=True)

    def close(self) -> None:
        """Close every widget of the panel (their front-end views disappear)."""
        self.root.close_all()

    # -- events ------------------------------------------------------------------------------

    def _wire(self) -> None:
        """Connect control changes to the update paths, through weak references to self."""
        c = self.controls
        pairs: list[tuple[w.Widget, Callable[[Panel, dict[str, Any]], None]]] = [
            (c.image, Panel._on_image),
            (c.layer, Panel._on_layer),
            (c.target, Panel._on_explain),
            (c.counterfactual, Panel._on_explain),
            (c.search, Panel._on_search),
            (c.opacity, Panel._on_style),
            (c.colorscale, Panel._on_style),
            (c.bars, Panel._on_style),
        ]
        for widget, method in pairs:
            widget.observe(_weak(self, method), names="value")
        self.figure.data[BARS].on_click(_weak(self, Panel._on_bar_click))

    def _on_image(self, change: dict[str, Any]) -> None:
        self._select_image()

    def _on_layer(self, change: dict[str, Any]) -> None:
        self._channel = None  # channel indices mean nothing across layers
        self._update(explain=True)

    def _on_explain(self, change: dict[str, Any]) -> None:
        self._update(explain=True)

    def _on_style(self, change: dict[str, Any]) -> None:
        self._update(explain=False)

    def _on_search(self, change: dict[str, Any]) -> None:
        index = _search_index(change["new"], self.engine.classes)
        if index is not None and self._images:
            self._set_target(index)

    def _on_bar_click(self, trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            self._channel = int(trace.customdata[points.point_inds[0]])
            self._update(explain=False)

    # -- state -> figure ---------------------------------------------------------------------

    def _select_image(self, strict: bool = False) -> None:
        """Switch to the picked image: its top predictions, its top-1 class, default channel.

        Args:
            strict: raise errors instead of showing them (for calls made by user code).
        """
        if self._syncing or not self._images:
            return
        start = (time.perf_counter(), self.engine.cache_info())  # the forward is this action's
        item = self._current()
        if item.predictions is None:
            item.predictions = self._predict(item.prepared)
        with self._quiet():
            self.controls.class_options(item.predictions[:TOP_K], None)
            self.controls.target.value = item.predictions[0].index
        self._channel = None
        self._update(explain=True, strict=strict, start=start)

    def _set_target(self, index: int) -> None:
        """Explain class ``index`` (chosen by search), adding it to the class list if needed."""
        item = self._current()
        assert item.predictions is not None
        chosen = next(p for p in item.predictions if p.index == index)
        with self._quiet():
            self.controls.class_options(item.predictions[:TOP_K], chosen)
            self.controls.target.value = index
            self.controls.search.value = ""
        self._update(explain=True)

    def _update(
        self, explain: bool, strict: bool = False, start: tuple[float, CacheInfo] | None = None
    ) -> None:
        """Bring the figure and the status line in line with the controls.

        Errors (from the engine or the figures) are shown in the panel instead of the figure
        changing, and the panel stays usable: the next change starts from a clean state. With
        ``strict`` they are shown and raised. ``start`` is when the action began (time, cache
        counters), if before this call.
        """
        if self._syncing or not self._images:
            return
        started, before = start or (time.perf_counter(), self.engine.cache_info())
        try:
            if explain or self.result is None:
                c = self.controls
                self.result = self.engine.explain(
                    self._current().prepared,
                    layer=c.layer.value,
                    target=c.target.value,
                    counterfactual=c.counterfactual.value,
                )
            view = self._make_view(self.result)
            self._shown = update_panel(self.figure, view, self.max_side, self._shown)
            self.view = view
        except Exception as error:  # shown in the panel, as the issue asks
            self._shown = None  # the figure may be half updated: next time, update it all
            self.error.value = _error_html(error)
            if strict:
                raise
            return
        self.error.value = ""
        seconds = time.perf_counter() - started
        self.status.value = self._status_html(self.result, seconds, before)

    def _make_view(self, result: CamResult) -> PanelView:
        """The figure's input for ``result`` and the style controls."""
        item = self._current()
        if item.picture is None:
            display = item.prepared.display  # (1, H, W, 3) for one image
            item.picture = png_data_uri(display[0] if display.ndim == 4 else display)
        # Methods without channel weights (HiResCAM, LayerCAM) draw no bars.
        weights = (
            result.weights.numpy()
            if result.weights is not None
            else np.zeros(result.activations.shape[0], dtype=np.float32)
        )
        channel = self._channel
        if channel is not None and not 0 <= channel < weights.size:
            channel = self._channel = None
        c = self.controls
        return PanelView(
            picture=item.picture,
            heatmap=result.heatmap.numpy(),
            coarse=result.coarse.numpy(),
            weights=weights,
            activations=result.activations.numpy(),
            channel=channel,
            top=c.bars.value,
            opacity=c.opacity.value,
            colorscale=c.colorscale.value,
        )

    def _status_html(self, result: CamResult, seconds: float, before: CacheInfo) -> str:
        """Predicted class, the class explained, its score, the layer, and what the update cost."""
        predictions = self._current().predictions
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
        return self._images[self.controls.image.value or 0]

    def _predict(self, prepared: Prepared) -> list[Prediction]:
        """Every class, most probable first (one cached forward serves all of them)."""
        found = self.engine.predict(prepared, k=self.engine.num_classes)
        return [p for p in found if isinstance(p, Prediction)]

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        """Control changes made by the panel itself inside the block trigger no update."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False


class Root(w.VBox):  # type: ignore[misc]
    """The panel's outer box. ``Explorer.show`` displays it and also returns it; when that call
    is the cell's last expression, IPython would display it a second time: that one is skipped.
    """

    _shown_in: int | None = None
    panel: Panel | None = None

    def display_now(self) -> None:
        """Display the panel in the current output and remember the cell it was shown in."""
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
        if shell is None:
            return  # not in IPython: nothing can show a widget
        self._shown_in = getattr(shell, "execution_count", None)
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[no-untyped-call]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Every way of displaying the panel comes here: hold figure updates until the new view
        # has drawn once, or its click listeners may never attach (FigureWidget, fix 4).
        if self.panel is not None:
            self.panel.figure.hold_updates()
        return super()._repr_mimebundle_(**kwargs)

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
        if self._shown_in is not None and getattr(shell, "execution_count", None) == self._shown_in:
            self._shown_in = None
            return
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[no-untyped-call]

    def close_all(self) -> None:
        """Close this box and every widget inside it, their layout and style widgets too."""
        stack: list[w.Widget] = [self]
        while stack:
            widget = stack.pop()
            stack.extend(getattr(widget, "children", ()))
            # A FigureWidget's ``layout`` is plotly's, not a widget: only widgets are closed.
            stack.extend(
                x
                for x in (getattr(widget, "layout", None), getattr(widget, "style", None))
                if isinstance(x, w.Widget)
            )
            widget.close()


def _weak(panel: Panel, method: Callable[..., None]) -> Callable[..., None]:
    """A callback calling ``method`` on ``panel`` while it lives, doing nothing after."""
    ref = weakref.ref(panel)

    def call(*args: Any) -> None:
        target = ref()
        if target is not None:
            method(target, *args)

    return call


def _search_index(value: str, classes: list[str]) -> int | None:
    """The class index of a search-box entry (``"3: cat"``), None for partial input."""
    return {search_option(i, name): i for i, name in enumerate(classes)}.get(value)


def _label(image: Any, index: int) -> str:
    """The image picker's label: a file's name, else "image N"."""
    if isinstance(image, (str, Path)):
        return Path(image).name
    return f"image {index + 1}"


def _error_html(error: Exception) -> str:
    """A readable one-line error for the panel."""
    message = html.escape(f"{type(error).__name__}: {error}")
    return f'<span style="color:#b00020">⚠ {message}</span>'
