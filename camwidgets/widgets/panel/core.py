"""The panel itself: one state, the render loop that turns it into figure and widget updates,
and the public calls (``load``, ``set_target``, ``change``, ``measure``, ``set_names``)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import ipywidgets as w

from ...engine import CacheInfo, CamResult, GradCAM
from ...figures import PanelView, Part, panel_figure, panel_parts
from ...figures import update_panel as draw
from .. import state as st
from ..classes import resolve_class
from ..controls import (
    Controls,
    build_controls,
    has_counterfactual,
    layer_options,
    method_options,
    methods_at,
)
from ..figure_widget import FigureWidget
from ..root import Root
from ..state import PanelState
from . import layout, reactions
from .base import Section, Shown
from .faithfulness import FaithfulnessSection
from .images import PanelImage, class_options, load_images, offered, predict_all
from .sections import default_sections
from .status import Lines, error_html, status_html
from .view import SharedRanges, make_view

if TYPE_CHECKING:
    from ...naming import ChannelNames

WIRE_MAX_SIDE = 72
"""The heat map over the picture travels with at most this many pixels per axis."""


class Panel:
    """Controls, one figure, sections and a status line around an engine, driven by one state.

    ``state`` (a ``PanelState``) is the only record of what is shown: a control change is
    turned into a new state by a pure transition (``camwidgets.widgets.state``), the engine's
    result for it is drawn, each section is shown, and the controls are written back from
    it. If drawing fails, the error is shown and state, figure and controls stay as they were.

    Widget callbacks hold only a weak reference to the panel, so a widget that outlives it
    (or leaks, as FigureWidgets used to) never keeps the engine and its cache alive.

    Args:
        engine: the GradCAM engine; the panel reads from it and never reconfigures it, unless
            ``all_layer_gradients`` says so.
        max_side: the heat map over the picture is sent with at most this many pixels per axis.
        all_layer_gradients: set ``engine.gradient_depth`` to the first layer, so that each
            class's one backward reaches every layer and a layer switch never runs the model
            (a full-depth backward per class instead of one down to the layers visited).
        names: channel names to load (see ``set_names``).
        sections: the parts under the chart (default: ``sections.default_sections()``).
    """

    def __init__(
        self,
        engine: GradCAM,
        max_side: int | None = WIRE_MAX_SIDE,
        all_layer_gradients: bool = False,
        names: Any = None,
        sections: Sequence[Section] | None = None,
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
        self.lines = Lines()
        self.sections: dict[str, Section] = {}
        for section in default_sections() if sections is None else sections:
            if section.name in self.sections:
                raise ValueError(f"two sections are named {section.name!r}")
            self.sections[section.name] = section
        # Its width follows the front end (FigureWidget fix 5); plotly's own ``layout``
        # argument would be the figure's layout, not a widget Layout.
        self.figure = FigureWidget(panel_figure(self.view, max_side))
        parts = layout.arrange(self.controls, self.lines, self.figure, list(self.sections.values()))
        self.root = Root(parts, layout=layout.root_layout())
        # Once displayed, the box keeps the panel (and so the engine) alive; callbacks never do.
        self.root.attach(self)
        self._shown: list[Part] | None = panel_parts(self.view, max_side)
        self._images: list[PanelImage] = []
        self._ranges = SharedRanges()
        self._syncing = False
        reactions.wire(self)
        for section in self.sections.values():
            section.wire(self)
        if names is not None:
            self.set_names(names)

    # -- the widgets by role -----------------------------------------------------------------

    @property
    def status(self) -> w.HTML:
        """The status line: prediction, class explained, layer, what the update cost."""
        return self.lines.status

    @property
    def error(self) -> w.HTML:
        """The error line (empty while all is well)."""
        return self.lines.error

    @property
    def busy(self) -> w.HTML:
        """The busy line (shown while the engine works)."""
        return self.lines.busy

    @property
    def words(self) -> w.HTML:
        """The map in words (``WordsSection``)."""
        return cast(w.HTML, self.sections["words"].widget)

    @property
    def faithfulness(self) -> w.HTML:
        """The faithfulness readout's words (``FaithfulnessSection``; its curves beside)."""
        return cast(FaithfulnessSection, self.sections["faithfulness"]).text

    # -- public ------------------------------------------------------------------------------

    def load(self, images: Sequence[Any]) -> None:
        """Show ``images`` (a picker appears for several), explaining the first one's top class.

        Raises:
            ValueError, TypeError: from the engine, for an image it cannot take.
        """
        self._images = load_images(self.engine, images)
        self.result = None
        # Kept by image index: they belong to the images shown before.
        self._ranges.clear()
        for section in self.sections.values():
            section.forget()
        picker = self.controls.image
        with self.quiet():
            picker.options = [(item.label, i) for i, item in enumerate(self._images)]
        picker.layout.display = None if len(images) > 1 else "none"
        self.pick_image(0, strict=True)

    def set_target(self, query: Any) -> None:
        """Explain the class ``query`` names (index, name in any case, ``"3: cat"``).

        Raises:
            RuntimeError: before an image is shown.
            ValueError, TypeError: for a class the model does not have (with suggestions).
        """
        index = resolve_class(query, self.engine.classes)
        if not self._images:
            raise RuntimeError("no image is shown yet: call explorer.show(image) first")
        self.change(lambda s: st.pick_target(s, index, self.offered()), strict=True)

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
            return self.failed(error, strict)
        return self._render(new, strict, (started, before))

    def set_names(self, names: Any) -> None:
        """Load channel names (``camwidgets.dissect`` tables): one ``ChannelNames``, several
        (one per layer), or None to forget them. Shown for the layer each table is for.

        Raises:
            TypeError: for anything else; ValueError: a table of a layer the engine does not
                have, or with another channel count.
        """
        from ...naming import ChannelNames

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
        section = self.sections.get("faithfulness")
        if not isinstance(section, FaithfulnessSection):
            raise RuntimeError("this panel has no faithfulness section")
        return section.measure(self, steps=steps, runs=runs)

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
        from ...figures.static import render_png

        data = render_png(replace(self.view, hint=""))
        return {"image/png": base64.b64encode(data).decode("ascii")}

    # -- what sections and reactions use (``base.Host``, ``reactions.Reactive``) --------------

    @property
    def syncing(self) -> bool:
        """True while the panel writes its own controls."""
        return self._syncing

    @property
    def has_images(self) -> bool:
        """Whether an image is loaded."""
        return bool(self._images)

    def shown(self) -> Shown | None:
        """What is on screen, or None before the first image."""
        if self.result is None or not self._images:
            return None
        return Shown(self.engine, self.state, self.result, self.current(), self._names)

    def current(self) -> PanelImage:
        """The image shown."""
        return self._images[self.state.image]

    def offered(self) -> list[int]:
        """The top classes of the current image (the class list before any extra)."""
        return offered(self.current() if self._images else None)

    def methods(self, layer: str) -> list[str]:
        """The methods usable at ``layer``."""
        return methods_at(self.engine, layer)

    def pick_method(self, state: PanelState, method: str) -> PanelState:
        """``state`` with ``method``, checked against the layer's methods."""
        return st.pick_method(state, method, self.methods(state.layer), has_counterfactual(method))

    def pick_image(self, index: int | None, strict: bool = False) -> None:
        """Switch to image ``index``: its predictions (one cached forward) and top class."""
        if not self._images or index is None:
            return
        started, before = time.perf_counter(), self.engine.cache_info()
        try:
            item = self._images[index]
            if item.predictions is None:
                with self.working("running the model"):
                    item.predictions = predict_all(self.engine, item.prepared)
            top = item.predictions[0].index
        except Exception as error:
            self.failed(error, strict)
            return
        self._render(st.pick_image(self.state, index, top), strict, (started, before))

    def failed(self, error: Exception, strict: bool) -> bool:
        """Show ``error``; put the controls back to the state still shown; raise if strict."""
        self.lines.error.value = error_html(error)
        self._write_controls()
        if strict:
            raise error
        return False

    def working(self, what: str) -> AbstractContextManager[None]:
        """Show a busy line while the block runs."""
        return self.lines.working(what)

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Control changes made by the panel itself inside the block trigger no update."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    # -- state -> engine -> figure, sections, controls, status ---------------------------------

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
        image = self._images[new.image]
        try:
            with self.working("explaining"):
                result = self.result
                if result is None or new.explanation != self.state.explanation:
                    result = self.engine.explain(
                        image.prepared,
                        layer=new.layer,
                        target=new.target,
                        counterfactual=new.counterfactual,
                        method=new.method,
                    ).cpu()  # results stay on the model's device; the panel draws on the host
                ranges = None
                if new.scale == "shared":
                    classes = offered(image) + list(new.extra)
                    ranges = self._ranges.get(self.engine, new, image, classes)
                view = make_view(self.engine, new, result, image, self._names, ranges)
                self._shown = draw(self.figure, view, self.max_side, self._shown)
                shown = Shown(self.engine, new, result, image, self._names)
                for section in self.sections.values():
                    section.show(shown)
        except Exception as error:  # shown in the panel, as the issue asks
            self._shown = None  # the figure may be half updated: next time, update it all
            return self.failed(error, strict)
        self.state, self.result, self.view = new, result, view
        self._write_controls()
        self.lines.error.value = ""
        seconds = time.perf_counter() - started
        self.lines.status.value = status_html(self.engine, new, result, image, seconds, before)
        return True

    def _write_controls(self) -> None:
        """Write every control from ``state`` (changes made here trigger nothing)."""
        s, c = self.state, self.controls
        with self.quiet():
            if self._images:
                c.image.value = s.image
                item = self._images[s.image]
                if item.predictions is not None:
                    options = class_options(item.predictions, s.extra)
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
            c.counterfactual.disabled = not has_counterfactual(s.method)
            c.names.value = s.names
            c.counterfactual.value = s.counterfactual
            c.opacity.value = s.opacity
            c.colorscale.value = s.colorscale
            c.bars.value = s.bars
            c.scale.value = s.scale
