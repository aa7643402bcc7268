"""The panel's reactions: which control change becomes which state transition.

``wire`` connects every control to a function of (panel, new value); each one turns the value
into a transition of ``camwidgets.widgets.state`` and hands it to ``panel.change``, which asks
the engine, draws and writes the controls back. Callbacks hold the panel weakly (``weak``).
A new control adds a row to ``REACTIONS`` (or wires itself from its section's ``wire``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ...figures import TraceRole
from ...figures.panel import relayout_panel
from .. import state as st
from ..classes import resolve_class
from ..controls import has_counterfactual
from ..state import PanelState
from .base import Host, weak


class Reactive(Host, Protocol):
    """What the reactions need of the panel beyond ``Host``."""

    def pick_image(self, index: int | None, strict: bool = False) -> None:
        """Switch to image ``index``."""
        ...

    def offered(self) -> list[int]:
        """The top classes of the image shown."""
        ...

    def methods(self, layer: str) -> list[str]:
        """The methods usable at ``layer``."""
        ...

    def pick_method(self, state: PanelState, method: str) -> PanelState:
        """``state`` with ``method`` (the layer's methods and its counterfactual checked)."""
        ...

    @property
    def has_images(self) -> bool:
        """Whether an image is loaded."""
        ...


Reaction = Callable[[Reactive, Any], Any]

REACTIONS: dict[str, Reaction] = {
    "image": lambda p, v: p.pick_image(v),
    "layer": lambda p, v: p.change(lambda s: st.pick_layer(s, v, p.methods(v))),
    "method": lambda p, v: p.change(lambda s: p.pick_method(s, v)),
    "names": lambda p, v: p.change(lambda s: st.show_names(s, v)),
    "target": lambda p, v: p.change(lambda s: st.pick_target(s, v, p.offered())),
    "counterfactual": lambda p, v: p.change(
        lambda s: st.set_counterfactual(s, v, has_counterfactual(s.method))
    ),
    "opacity": lambda p, v: p.change(lambda s: st.set_style(s, opacity=v)),
    "colorscale": lambda p, v: p.change(lambda s: st.set_style(s, colorscale=v)),
    "bars": lambda p, v: p.change(lambda s: st.set_style(s, bars=v)),
    "scale": lambda p, v: p.change(lambda s: st.set_scale(s, v)),
    "all_layers": lambda p, v: p.change(lambda s: st.show_all_layers(s, v)),
}
"""Control name (an attribute of ``Controls``) -> what a new value does."""


def wire(panel: Reactive) -> None:
    """Connect the controls, the bar chart's clicks and the figure's width to the panel."""
    for name, reaction in REACTIONS.items():
        getattr(panel.controls, name).observe(weak(panel, reaction), names="value")
    panel.controls.search.observe(weak(panel, on_search), names="value")
    panel.figure.data[TraceRole.BARS].on_click(weak(panel, on_bar_click))
    panel.figure.observe(weak(panel, on_width), names="view_width")


def on_search(panel: Reactive, value: str) -> None:
    """A class typed in the search box (Enter): explain it, then empty the box."""
    if not value.strip() or not panel.has_images:
        return
    try:
        index = resolve_class(value, panel.engine.classes)
    except (ValueError, TypeError) as error:
        panel.failed(error, strict=False)
        return
    if panel.change(lambda s: st.pick_target(s, index, panel.offered())):
        with panel.quiet():
            panel.controls.search.value = ""


def on_bar_click(panel: Reactive, trace: Any, points: Any, state: Any) -> None:
    """A click on a channel's bar shows that channel on its own."""
    if points.point_inds:
        channel = int(trace.customdata[points.point_inds[0]])
        panel.change(lambda s: st.pick_channel(s, channel))


def on_width(panel: Reactive, width: int) -> None:
    """The front end drew the figure ``width`` px wide: lay it out for that width."""
    if width and width >= 100:
        relayout_panel(panel.figure, width)
