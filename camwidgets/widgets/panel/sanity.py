"""The randomisation sanity check of the view, on demand: a button under the chart runs
``camwidgets.metrics.randomisation`` for the method shown (and Guided Backprop, the method that
famously fails it) and draws the curves. Kept per view; new images forget them."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from ..controls import method_name
from ..figure_widget import FigureWidget
from .base import Host, Section, Shown, weak

REFERENCE = "guided-backprop"
"""Drawn beside the method shown: it barely changes, so the contrast reads at a glance."""


class SanitySection(Section):
    """A "sanity check" button and, once run, the curves and a verdict per method.

    Each click builds a new figure whole and wraps it (a figure updated after its first
    draw may not show in Voila); the previous one is closed.
    """

    name = "sanity"

    def __init__(self) -> None:
        self.button = w.Button(
            description="sanity check",
            icon="random",
            tooltip=(
                "randomise the model from the head down (on a copy) and see whether the map "
                "changes (Adebayo et al. 2018)"
            ),
            layout=w.Layout(width="auto"),
        )
        self.readout = w.HTML()
        self.plot = w.Box(layout=w.Layout(width="100%"))
        self.widget = w.VBox([w.HBox([self.button, self.readout]), self.plot])
        self._done: dict[tuple[Any, ...], tuple[Any, str]] = {}
        self._key: tuple[Any, ...] | None = None

    def show(self, shown: Shown) -> None:
        """The curves of the view shown if it was checked, else nothing."""
        key = _key(shown)
        if key == self._key:
            return
        self._key = key
        done = self._done.get(key)
        self._draw(None if done is None else done[0], "" if done is None else done[1])

    def forget(self) -> None:
        """New images: the checks were of the old ones."""
        self._done.clear()
        self._key = None
        self._draw(None, "")

    def wire(self, host: Host) -> None:
        """The button checks the view shown."""
        self.button.on_click(weak(host, self._on_click))

    def _on_click(self, host: Host, button: Any) -> None:
        try:
            self.check(host)
        except Exception as error:  # shown in the panel, as every error from a control
            host.failed(error, strict=False)

    def check(self, host: Host) -> str:
        """Run the check for the view shown (kept per view) and draw it.

        Returns:
            The verdict line.
        """
        shown = host.shown()
        if shown is None:
            raise RuntimeError("no image is shown yet: call explorer.show(image) first")
        key = _key(shown)
        if key not in self._done:
            from ... import metrics
            from ...figures.sanity import sanity_figure

            state, result = shown.state, shown.result
            methods = [state.method] + ([REFERENCE] if state.method != REFERENCE else [])
            with host.working("randomising the model, head first (on a copy)"):
                checks = metrics.randomisation(
                    shown.engine,
                    shown.image.prepared,
                    target=result.target,
                    method=methods,
                    layer=state.layer,
                    progress=False,
                )
            curves = {
                _label(m): {"spearman": c.spearman, "ssim": c.ssim} for m, c in checks.items()
            }
            first = next(iter(checks.values()))
            figure = sanity_figure(
                first.steps,
                curves,
                title=(
                    f"randomisation check · class {html.escape(str(result.target_name))} · "
                    f"layer {html.escape(state.layer)}"
                ),
            )
            verdicts = " · ".join(
                f"{html.escape(_label(m))}: mean Spearman <b>{c.mean_spearman:.2f}</b> "
                + ("(passes: the map depends on the weights)" if c.passed() else "(<b>fails</b>)")
                for m, c in checks.items()
            )
            if state.counterfactual:
                verdicts += " · checked without the counterfactual"
            self._done[key] = (figure, verdicts)
        self._key = key
        figure, verdicts = self._done[key]
        self._draw(figure, verdicts)
        return verdicts

    def _draw(self, figure: Any, verdicts: str) -> None:
        for old in self.plot.children:
            old.close()
        self.plot.children = () if figure is None else (FigureWidget(figure),)
        self.readout.value = verdicts


def _key(shown: Shown) -> tuple[Any, ...]:
    state = shown.state
    return (state.image, state.layer, shown.result.target, state.method)


def _label(method: str) -> str:
    return "Guided Backprop" if method == REFERENCE else method_name(method)
