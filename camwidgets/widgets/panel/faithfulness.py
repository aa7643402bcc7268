"""The faithfulness readout: the map's deletion and insertion curves against random maps' band,
and the verdict in words (measured on demand with the "faithfulness" button, kept per view).

The figure is built whole on the first measurement and wrapped in a FigureWidget (a figure
that gets its traces after creation shows empty axes in Voila); later measurements and view
switches update it in place, and it is hidden for views not measured yet.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import numpy as np

from ...figures.faithfulness import (
    CurveBand,
    FaithfulnessView,
    faithfulness_figure,
    faithfulness_words,
    update_faithfulness,
)
from ..controls import method_name
from ..figure_widget import FigureWidget
from .base import Host, Section, Shown, weak

STEPS = 40
"""Perturbation steps per curve for the button's measurement."""
RUNS = 3
"""Random maps the button measures the map against."""


class FaithfulnessSection(Section):
    """Deletion / insertion curves of the view against random maps, once measured.

    Measurements are kept per view (image, layer, class, method, sign), so switching back to
    a measured view shows its readout again; loading new images forgets them.

    Attributes:
        text: the verdict in words (empty until the view is measured).
        figure: the curves (None until the first measurement; hidden for unmeasured views).
        shown: the measurement on screen, or None.
    """

    name = "faithfulness"

    def __init__(self) -> None:
        self.text = w.HTML()
        self.figure: FigureWidget | None = None
        self.shown: FaithfulnessView | None = None
        self.widget = w.VBox([self.text], layout=w.Layout(width="100%", min_width="0"))
        self._measured: dict[tuple[Any, ...], FaithfulnessView] = {}

    def show(self, shown: Shown) -> None:
        """The readout of the view shown, if it was measured (else nothing)."""
        self._display(self._measured.get((*shown.state.explanation, STEPS, RUNS)))

    def forget(self) -> None:
        """New images: the measurements were of the old ones."""
        self._measured.clear()

    def wire(self, host: Host) -> None:
        """The "faithfulness" button measures the view shown."""
        host.controls.measure.on_click(weak(host, self._on_measure))

    def _on_measure(self, host: Host, button: Any) -> None:
        try:
            self.measure(host)
        except Exception as error:  # shown in the panel, as every error from a control
            host.failed(error, strict=False)

    def measure(self, host: Host, steps: int = STEPS, runs: int = RUNS) -> str:
        """Measure the view shown (random maps on the layer's grid, resized like a CAM).

        Returns:
            The verdict in words (also shown, with the curves).
        """
        shown = host.shown()
        if shown is None:
            raise RuntimeError("no image is shown yet: call explorer.show(image) first")
        from ... import metrics

        engine, state, result = shown.engine, shown.state, shown.result
        key = (*state.explanation, steps, runs)
        if key not in self._measured:
            prepared = shown.image.prepared
            grid = tuple(engine.layer_shapes[state.layer][1:])
            with host.working("measuring deletion and insertion"):
                found = metrics.faithfulness(engine, prepared, result, steps=steps, progress=False)
                base = metrics.random_baseline(
                    engine,
                    prepared,
                    result.target,
                    runs=runs,
                    grid=(int(grid[0]), int(grid[1])),
                    steps=steps,
                    progress=False,
                )
            assert isinstance(found, metrics.Faithfulness)
            self._measured[key] = FaithfulnessView(
                deletion=band(found.deletion, [c.deletion for c in base.curves]),
                insertion=band(found.insertion, [c.insertion for c in base.curves]),
                method=method_name(state.method),
                target=str(result.target_name),
            )
        self._display(self._measured[key])
        return str(self.text.value)

    def _display(self, view: FaithfulnessView | None) -> None:
        """Show ``view`` (text and curves), or nothing."""
        self.shown = view
        if view is None:
            self.text.value = ""
            self.widget.children = (self.text,)  # the figure stays, out of sight
            return
        self.text.value = faithfulness_words(view)
        if self.figure is None:
            self.figure = FigureWidget(faithfulness_figure(view))
        else:
            update_faithfulness(self.figure, view)
        self.widget.children = (self.text, self.figure)


def band(curve: Any, random: list[Any]) -> CurveBand:
    """A ``metrics.Curve`` and the random maps' curves of the same kind, as numpy."""
    return CurveBand(
        kind=curve.kind,
        fractions=curve.fractions.numpy(),
        scores=curve.scores.numpy(),
        random=np.stack([c.scores.numpy() for c in random]),
        auc=float(curve.auc),
        random_aucs=np.array([c.auc for c in random], dtype=np.float64),
    )
