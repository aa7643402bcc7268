"""The faithfulness readout: deletion and insertion AUC of the map shown, next to random maps'
(measured on demand with the "faithfulness" button, kept per view)."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..controls import method_name
from .base import Host, Section, Shown, weak

STEPS = 40
"""Perturbation steps per curve for the button's measurement."""
RUNS = 3
"""Random maps the button measures the map against."""


class FaithfulnessSection(Section):
    """Deletion / insertion AUCs of the view against random maps, once measured.

    Measurements are kept per view (image, layer, class, method, sign), so switching back to
    a measured view shows its readout again; loading new images forgets them.
    """

    name = "faithfulness"

    def __init__(self) -> None:
        self.widget = w.HTML()
        self._measured: dict[tuple[Any, ...], str] = {}

    def show(self, shown: Shown) -> None:
        """The readout of the view shown, if it was measured (else nothing)."""
        self.widget.value = self._measured.get((*shown.state.explanation, STEPS, RUNS), "")

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
            The readout (also shown in the widget).
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
            self._measured[key] = faithfulness_html(found, base, method_name(state.method))
        self.widget.value = self._measured[key]
        return self._measured[key]


def faithfulness_html(found: Any, base: Any, method: str) -> str:
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
