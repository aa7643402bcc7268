"""The panel's input widgets, their labels and options; no behaviour (that is ``panel/``)."""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as w

from ..engine import GradCAM
from ..figures import COLORSCALES

MAX_BARS = 128


def readable_layers(engine: GradCAM) -> list[str]:
    """The model's stages or blocks (``engine.stages``), else every layer."""
    stages = getattr(engine, "stages", None)
    return list(stages) if stages else list(engine.layers)


def layer_options(
    engine: GradCAM, all_layers: bool, current: str | None = None
) -> list[tuple[str, str]]:
    """The layer list: the stages (plus ``current`` if it is not one), or every layer."""
    shown = set(engine.layers if all_layers else readable_layers(engine))
    if current is not None:
        shown.add(current)
    return [(layer_label(n, engine.layer_shapes[n]), n) for n in engine.layers if n in shown]


METHOD_NAMES = {
    "gradcam": "Grad-CAM",
    "cam": "CAM",
    "gradcam++": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "Eigen-CAM",
    "scorecam": "Score-CAM",
    "guided-gradcam": "Guided Grad-CAM",
}


def method_name(method: str) -> str:
    """How a method is written for people (``gradcam`` -> ``Grad-CAM``)."""
    return METHOD_NAMES.get(method, method)


def methods_at(engine: GradCAM, layer: str) -> list[str]:
    """The methods usable at ``layer`` (CAM only where a pooled linear head reads it)."""
    found = getattr(engine, "methods", None)
    return list(found(layer)) if callable(found) else ["gradcam"]


def has_counterfactual(method: str) -> bool:
    """Whether ``method`` has a counterfactual (class-agnostic ones such as Eigen-CAM do not)."""
    from ..engine.methods import get_method

    return bool(get_method(method).supports_counterfactual)


def method_options(engine: GradCAM, layer: str) -> list[tuple[str, str]]:
    """The method list for ``layer``: (label, name) pairs."""
    return [(method_name(m), m) for m in methods_at(engine, layer)]


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
    scale: w.ToggleButtons
    all_layers: w.Checkbox
    method: w.Dropdown
    names: w.Checkbox
    measure: w.Button

    def box(self) -> w.VBox:
        """The controls in two rows that wrap on narrow screens (nothing is cut off)."""
        wrap = w.Layout(flex_flow="row wrap", align_items="center", width="100%")
        first = w.HBox(
            [self.image, self.layer, self.all_layers, self.method, self.target, self.search],
            layout=wrap,
        )
        second = w.HBox(
            [
                self.counterfactual,
                self.scale,
                self.opacity,
                self.colorscale,
                self.bars,
                self.names,
                self.measure,
            ],
            layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%"),
        )
        return w.VBox([first, second], layout=w.Layout(width="100%"))


def build_controls(engine: GradCAM) -> Controls:
    """Controls for ``engine``'s layers and classes (no image yet: the class list is empty)."""
    channels = max(engine.layer_shapes[n][0] for n in engine.layers)
    label = {"description_width": "initial"}  # labels at their own width, never cut

    def wide() -> w.Layout:
        return w.Layout(width="270px", margin="2px 12px 2px 0")

    return Controls(
        image=w.Dropdown(
            description="image",
            style=label,
            layout=w.Layout(width="240px", display="none", margin="2px 12px 2px 0"),
        ),
        layer=w.Dropdown(
            options=layer_options(engine, False, engine.default_layer),
            value=engine.default_layer,
            description="layer",
            style=label,
            layout=wide(),
        ),
        target=w.Dropdown(description="class", style=label, layout=wide()),
        search=w.Combobox(
            options=[search_option(i, n) for i, n in enumerate(engine.classes)],
            placeholder="any class: name or index, Enter",
            ensure_option=False,
            # Submitted on Enter (or leaving the box), so "star" + Enter picks the class star.
            continuous_update=False,
            layout=w.Layout(width="260px", margin="2px 12px 2px 0"),
        ),
        counterfactual=w.ToggleButton(
            description="counterfactual",
            tooltip="explain -score: regions whose removal would raise the class score",
            icon="exchange",
            layout=w.Layout(width="auto", margin="2px 12px 2px 0"),
        ),
        opacity=w.FloatSlider(
            value=0.5,
            min=0.0,
            max=1.0,
            step=0.05,
            description="opacity",
            style=label,
            layout=w.Layout(width="240px"),
        ),
        colorscale=w.Dropdown(
            options=list(COLORSCALES),
            value="Jet",
            description="colours",
            style=label,
            layout=w.Layout(width="170px", margin="2px 12px 2px 0"),
        ),
        bars=w.IntSlider(
            value=min(20, channels),
            min=1,
            max=min(MAX_BARS, channels),
            description="bars",
            style=label,
            layout=w.Layout(width="240px"),
        ),
        all_layers=w.Checkbox(
            value=False,
            description=f"all {len(engine.layers)} layers",
            indent=False,
            tooltip="list every layer, not only the model's stages",
            layout=w.Layout(
                width="auto",
                margin="2px 12px 2px 0",
                # Nothing more to show when every layer is a stage.
                display=None if len(readable_layers(engine)) < len(engine.layers) else "none",
            ),
        ),
        method=w.Dropdown(
            options=method_options(engine, engine.default_layer),
            value="gradcam",
            description="method",
            style=label,
            layout=w.Layout(width="220px", margin="2px 12px 2px 0"),
        ),
        names=w.Checkbox(
            value=True,
            description="channel names",
            indent=False,
            tooltip="show what each channel detects (from camwidgets.dissect)",
            layout=w.Layout(width="auto", margin="2px 12px 2px 0", display="none"),
        ),
        measure=w.Button(
            description="faithfulness",
            icon="line-chart",
            tooltip=(
                "deletion / insertion AUC of this map against random maps "
                "(runs the model on perturbed images: takes a while)"
            ),
            layout=w.Layout(width="auto", margin="2px 12px 2px 0"),
        ),
        scale=w.ToggleButtons(
            options=[("own scale", "own"), ("shared scale", "shared")],
            value="own",
            tooltips=[
                "each map coloured by its own range",
                "one absolute range per layer over the listed classes and the counterfactual",
            ],
            style={"button_width": "auto"},
            layout=w.Layout(width="auto", margin="2px 12px 2px 0"),
        ),
    )
