"""The "step by step" view: the Grad-CAM formula for the view shown, one stage per picture.

A^k for the strongest channels, the gradient dY_c/dA^k, alpha as bars, sum_k alpha_k A^k signed,
the ReLU and the resize onto the picture, each titled with its piece of the formula. The
numbers are the engine's own, from one call that also hands over the full gradient (a method
object that keeps what the engine gives it): no model pass beyond what the panel's view costs.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import torch

from ...engine import Method, MethodInputs, MethodOutput
from ...engine.methods import weighted_sum
from ...figures.lesson import StepsView, steps_figure, steps_parts, steps_update
from ...figures.part import Part
from ..figure_widget import FigureWidget
from .base import Host, Section, Shown, weak

CHANNELS = 4
"""How many of the strongest channels rows 1 and 2 show."""


class GradientsKept(Method):
    """Grad-CAM that also keeps the full gradient dY_c/dA it was given (for the teaching view).

    alpha_k = mean_ij dY_c/dA^k_ij;  coarse = sum_k alpha_k A^k  (exactly ``"gradcam"``).
    """

    name = "gradcam"
    needs_gradients = True
    needs_alpha = True

    def __init__(self) -> None:
        self.gradients: torch.Tensor | None = None

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.alpha is not None and inputs.gradients is not None
        self.gradients = inputs.gradients.detach().float().cpu()
        return MethodOutput(inputs.alpha, weighted_sum(inputs.alpha, inputs.activations))


def steps_view(shown: Shown, channels: int = CHANNELS) -> StepsView:
    """The Grad-CAM stages of the view shown (Grad-CAM whatever the panel's method)."""
    kept = GradientsKept()
    state, image = shown.state, shown.image
    result = shown.engine.explain(
        image.prepared,
        layer=state.layer,
        target=shown.result.target,
        counterfactual=state.counterfactual,
        method=kept,
    )
    assert kept.gradients is not None and result.weights is not None
    target = result.target
    assert isinstance(target, int)
    return StepsView(
        activations=result.activations.detach().cpu().numpy(),
        gradients=kept.gradients.reshape(result.activations.shape).numpy(),
        weights=result.weights.detach().cpu().numpy(),
        picture=image.prepared.display[0],
        heatmap=result.heatmap.detach().cpu().numpy(),
        class_name=shown.engine.classes[target],
        counterfactual=state.counterfactual,
        channels=channels,
    )


def _flat(gradients: Any) -> bool:
    """Whether every channel's gradient is the same at every cell (a pooled linear head)."""
    spread = gradients.max(axis=(1, 2)) - gradients.min(axis=(1, 2))
    scale = max(float(abs(gradients).max()), 1e-30)
    return bool((spread <= 1e-4 * scale).all())


class StepsSection(Section):
    """A toggle; when on, the formula's stages for the class and layer shown, updated with them.

    The figure is built whole on first use and updated in place afterwards (rebuilt only when
    a layer has fewer channels than the view shows).
    """

    name = "steps"

    def __init__(self) -> None:
        self.toggle = w.ToggleButton(
            value=False,
            description="step by step",
            tooltip="show each stage of the Grad-CAM formula for this class and layer",
            icon="list-ol",
            layout=w.Layout(width="150px"),
        )
        self.note = w.HTML()
        self.holder = w.Box(layout=w.Layout(width="100%", display="none"))
        self.widget = w.VBox([self.toggle, self.note, self.holder], layout=w.Layout(width="100%"))
        self.figure: FigureWidget | None = None
        self.view: StepsView | None = None
        self._parts: list[Part] | None = None
        self._channels = 0

    def wire(self, host: Host) -> None:
        """The toggle shows (or hides) the view for what is on screen."""
        self.toggle.observe(weak(host, self._on_toggle), names="value")

    def _on_toggle(self, host: Host, value: Any) -> None:
        shown = host.shown()
        if shown is not None:
            self.show(shown)
        elif not value:
            self.holder.layout.display = "none"

    def show(self, shown: Shown) -> None:
        """Draw the stages of the view shown while the toggle is on."""
        if not self.toggle.value:
            self.holder.layout.display = "none"
            self.note.value = ""
            return
        try:
            view = steps_view(shown)
            count = min(CHANNELS, view.weights.size)
            if self.figure is None or count != self._channels:
                # Built whole and shown as built: no update right after creation, which a
                # view still connecting may miss (notes/environment.md, Voila and Lab).
                self.figure = FigureWidget(steps_figure(view))
                self._parts, self._channels = steps_parts(view)[0], count
                self.holder.children = (self.figure,)
            else:
                self._parts = steps_update(self.figure, view, self._parts)
        except Exception as error:  # shown here; the main view stays as it is
            self.note.value = (
                f'<span style="color:#b00">step by step: {html.escape(str(error))}</span>'
            )
            self.holder.layout.display = "none"
            return
        self.view = view
        notes = []
        if shown.state.method != "gradcam":
            notes.append(
                f"the stages are Grad-CAM's; the panel shows {html.escape(shown.state.method)}"
            )
        if _flat(view.gradients):
            notes.append(
                "② is the same at every cell: this layer feeds a global average pool and a "
                "linear head, so ∂Y<sub>c</sub>/∂A<sup>k</sup> = W<sub>c,k</sub>/hw everywhere "
                "and α<sub>k</sub> is that constant (Grad-CAM equals CAM here)"
            )
        self.note.value = "<i>" + "; ".join(notes) + "</i>" if notes else ""
        self.holder.layout.display = None
