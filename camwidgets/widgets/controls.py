"""The panel's input widgets and their labels; no behaviour (that is ``panel.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as w

from ..engine import GradCAM
from ..figures import COLORSCALES

MAX_BARS = 128


def layer_label(name: str, shape: tuple[int, int, int]) -> str:
    """``"layer4 (512×7×7)"``: a layer and the shape of its output."""
    return f"{name} ({shape[0]}×{shape[1]}×{shape[2]})"


def class_label(index: int, name: str, probability: float) -> str:
    """``"3: cat (41.2%)"``: a class with the model's probability for it."""
    return f"{index}: {name} ({probability:.1%})"


def search_option(index: int, name: str) -> str:
    """The class search box's entry for a class: ``"3: cat"`` (typing either part finds it)."""
    return f"{index}: {name}"


@dataclass(frozen=True)
class Controls:
    """Every input of the panel."""

    image: w.Dropdown
    layer: w.Dropdown
    target: w.Dropdown
    search: w.Combobox
    counterfactual: w.ToggleButton
    opacity: w.FloatSlider
    colorscale: w.Dropdown
    bars: w.IntSlider

    def box(self) -> w.VBox:
        """The controls laid out in two rows."""
        first = w.HBox([self.image, self.layer, self.target, self.search])
        second = w.HBox([self.counterfactual, self.opacity, self.colorscale, self.bars])
        return w.VBox([first, second])


def build_controls(engine: GradCAM) -> Controls:
    """Controls for ``engine``'s layers and classes (no image yet: the class list is empty)."""
    wide = w.Layout(width="300px")
    channels = max(engine.layer_shapes[n][0] for n in engine.layers)
    return Controls(
        image=w.Dropdown(description="image", layout=w.Layout(width="220px", display="none")),
        layer=w.Dropdown(
            options=[(layer_label(n, engine.layer_shapes[n]), n) for n in engine.layers],
            value=engine.default_layer,
            description="layer",
            layout=wide,
        ),
        target=w.Dropdown(description="class", layout=wide),
        search=w.Combobox(
            options=[search_option(i, n) for i, n in enumerate(engine.classes)],
            placeholder="any class: name or index, Enter",
            ensure_option=False,
            # Submitted on Enter (or leaving the box), so "star" + Enter picks the class star.
            continuous_update=False,
            layout=w.Layout(width="220px"),
        ),
        counterfactual=w.ToggleButton(
            description="counterfactual",
            tooltip="negate α: regions whose removal would raise the class score",
            icon="exchange",
        ),
        opacity=w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity"),
        colorscale=w.Dropdown(options=list(COLORSCALES), value="Jet", description="colours"),
        bars=w.IntSlider(
            value=min(20, channels), min=1, max=min(MAX_BARS, channels), description="bars"
        ),
    )
