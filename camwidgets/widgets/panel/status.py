"""The panel's text lines: the busy line while the engine works, the error line, and the
status line (what is predicted and explained, and what the last update cost)."""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager

import ipywidgets as w

from ...engine import CacheInfo, CamResult, GradCAM
from ..controls import layer_label, method_name
from ..state import PanelState
from .images import PanelImage

FIRST_STATUS = "No image yet: call <code>explorer.show(image)</code>."


class Lines:
    """The busy, error and status lines (three HTML widgets)."""

    def __init__(self) -> None:
        self.busy = w.HTML(layout=w.Layout(min_height="22px"))
        self.error = w.HTML()
        self.status = w.HTML(FIRST_STATUS)

    @contextmanager
    def working(self, what: str) -> Iterator[None]:
        """Show a busy line while the engine works (the front end gets it before the work)."""
        self.busy.value = busy_html(what)
        try:
            yield
        finally:
            self.busy.value = ""


def busy_html(what: str) -> str:
    """A spinner and ``what`` is being done."""
    return (
        f'<span style="color:#555"><i class="fa fa-spinner fa-spin"></i> '
        f"{html.escape(what)}…</span>"
    )


def error_html(error: Exception) -> str:
    """A readable one-line error for the panel."""
    message = html.escape(f"{type(error).__name__}: {error}")
    return f'<span style="color:#b00020">⚠ {message}</span>'


def status_html(
    engine: GradCAM,
    state: PanelState,
    result: CamResult,
    image: PanelImage,
    seconds: float,
    before: CacheInfo,
) -> str:
    """Predicted class, the class explained, its score, the layer, and what the update cost
    (the engine's forwards and backwards since ``before``)."""
    predictions = image.predictions
    assert predictions is not None
    top = predictions[0]
    after = engine.cache_info()
    forwards, backwards = after.forwards - before.forwards, after.backwards - before.backwards
    cost = (
        "cached"
        if forwards == backwards == 0
        else f"computed: {forwards} forward, {backwards} backward"
    )
    mode = " · <b>counterfactual</b>" if result.counterfactual else ""
    mode += f" · {method_name(result.method)}"
    mode += " · shared scale" if state.scale == "shared" else ""
    e = html.escape
    return (
        f"predicted <b>{e(top.name)}</b> ({top.probability:.1%}) · explaining "
        f"<b>{e(str(result.target_name))}</b> (class {result.target}, "
        f"score {result.score:.4g}, p {result.probability:.1%}){mode} · layer "
        f"<code>{e(layer_label(result.layer, engine.layer_shapes[result.layer]))}</code>"
        f" · {seconds * 1000:.0f} ms, {cost}"
    )
