"""What a section of the panel is, and what it may ask of the panel.

The panel (``core.Panel``) implements ``Host``; sections, reactions and layout import only this
module, never the panel class, so the package has no import circle and a new section needs no
edit of the panel.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import ipywidgets as w

from ...engine import CamResult, GradCAM
from ..controls import Controls
from ..state import PanelState
from .images import PanelImage

if TYPE_CHECKING:
    from ...naming import ChannelNames
    from ..figure_widget import FigureWidget


@dataclass(frozen=True)
class Shown:
    """What the panel shows after a successful draw: what every section renders from.

    Attributes:
        engine: the panel's engine.
        state: the state drawn.
        result: the engine's result for it.
        image: the image shown (prepared tensor, predictions, label).
        names: channel-name tables by layer (empty when none are loaded).
    """

    engine: GradCAM
    state: PanelState
    result: CamResult
    image: PanelImage
    names: Mapping[str, ChannelNames]


class Host(Protocol):
    """What sections and reactions may use of the panel."""

    engine: GradCAM
    controls: Controls
    figure: FigureWidget
    state: PanelState

    @property
    def syncing(self) -> bool:
        """True while the panel writes its own controls (their changes must trigger nothing)."""
        ...

    def shown(self) -> Shown | None:
        """What is on screen, or None before the first image."""
        ...

    def change(self, transition: Callable[[PanelState], PanelState], strict: bool = False) -> bool:
        """Move to ``transition(state)`` and draw it."""
        ...

    def failed(self, error: Exception, strict: bool) -> bool:
        """Show ``error`` in the panel (raise it too if ``strict``)."""
        ...

    def working(self, what: str) -> AbstractContextManager[None]:
        """A busy line while the block runs."""
        ...

    def quiet(self) -> AbstractContextManager[None]:
        """Control changes made inside the block trigger no update."""
        ...


class Section:
    """One named part of the panel under the chart (the map in words, faithfulness, ...).

    A new view is a subclass in its own module, passed to ``Panel(sections=...)`` or appended
    to ``default_sections``: set ``name`` and ``widget``, and override what it needs.

    * ``show(shown)``: after every successful draw, update ``widget`` from what is shown.
    * ``forget()``: new images were loaded; drop whatever was kept for the old ones.
    * ``wire(host)``: connect the section's own controls; callbacks must hold the host
      weakly (use ``weak``), so that a widget that outlives the panel never keeps it alive.
    """

    name: ClassVar[str] = ""
    widget: w.Widget

    def show(self, shown: Shown) -> None:
        """Update the widget for what is shown (default: nothing)."""

    def forget(self) -> None:
        """Drop what was kept for the images shown before (default: nothing)."""

    def wire(self, host: Host) -> None:
        """Connect the section's own controls (default: none)."""


def weak(host: Host, method: Callable[..., Any]) -> Callable[..., None]:
    """A callback calling ``method(host, ...)`` while the host lives, doing nothing after.

    A traitlets change (one dict argument) is passed on as its new value; a plotly click
    (trace, points, state) or a button click as it is. Nothing happens while the host writes
    its own controls.
    """
    ref = weakref.ref(host)

    def call(*args: Any) -> None:
        target = ref()
        if target is None or target.syncing:
            return
        if len(args) == 1 and isinstance(args[0], dict) and "new" in args[0]:
            method(target, args[0]["new"])
        else:
            method(target, *args)

    return call
