"""The Explorer panel: each control changes the figure in place to what the engine computes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from camwidgets import Explorer
from camwidgets.engine import GradCAM
from camwidgets.widgets.figure_widget import FigureWidget
from camwidgets.widgets.panel import Panel
from tests.widgets.helpers import R, click, passes


def snapshot(fig: Any) -> list[int]:
    """Identities of the widget and its traces: in-place updates keep them."""
    return [id(fig), *map(id, fig.data)]


@pytest.fixture
def explorer(make_engine: Callable[..., GradCAM], images: list[np.ndarray]) -> Explorer:
    ex = Explorer(make_engine(), all_layer_gradients=True)
    ex.show(images[:2])
    return ex


def test_show_draws_the_top1_explanation(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    reference = make_engine().explain(images[0])
    panel = explorer.panel
    assert isinstance(panel.figure, FigureWidget) and len(panel.figure.data) == 6
    shows(panel.figure, reference, None, panel.controls.bars.value)
    assert explorer.result is not None and explorer.result.target == reference.target
    assert panel.controls.target.value == reference.target
    assert panel.controls.layer.value == "layer4"
    assert panel.error.value == ""


def test_every_control_updates_in_place_to_the_engine_result(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    panel, reference = explorer.panel, make_engine()
    c, fig = panel.controls, panel.figure
    before = snapshot(fig)
    second = c.target.options[1][1]
    steps: list[tuple[Any, Any, dict[str, Any]]] = [
        (c.counterfactual, True, {"counterfactual": True}),
        (c.layer, "layer2", {"layer": "layer2"}),
        (c.target, second, {"target": second}),
        (c.counterfactual, False, {"counterfactual": False}),
        (c.bars, 3, {}),
        (c.layer, "layer3", {"layer": "layer3"}),
    ]
    state: dict[str, Any] = {"layer": "layer4", "target": None, "counterfactual": False}
    for control, value, change in steps:
        control.value = value
        state.update(change)
        assert panel.error.value == ""
        shows(fig, reference.explain(images[0], **state), None, c.bars.value)
    c.opacity.value = 0.25
    c.colorscale.value = "Viridis"
    heat = fig.data[R.HEATMAP]
    assert heat.opacity == 0.25 and heat.colorscale[0][1] == "#440154"
    c.image.value = 1
    shows(fig, reference.explain(images[1], layer="layer3"), None, c.bars.value)
    assert c.target.value == reference.predict(images[1], k=1)[0].index  # type: ignore[union-attr]
    assert snapshot(fig) == before


def test_model_passes_are_what_the_cache_promises(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    engine = make_engine()
    ex = Explorer(engine, all_layer_gradients=True)
    with passes(engine, 1, 1):
        ex.show(images[0])
    c = ex.panel.controls
    with passes(engine, 0, 0):
        c.counterfactual.value = True
        c.counterfactual.value = False
    with passes(engine, 0, 0):  # the first backward already reached every dropdown layer
        c.layer.value = "layer1"
    with passes(engine, 0, 0):
        for layer in ("layer2", "layer4", "layer3", "layer1"):
            c.layer.value = layer
        c.counterfactual.value = True
    other = c.target.options[2][1]
    with passes(engine, 0, 1):  # a new class: one backward serves all layers and both signs
        c.target.value = other
    with passes(engine, 0, 0):
        c.layer.value = "layer4"
        c.counterfactual.value = False
        c.bars.value = 5
        c.opacity.value = 0.8
        click(ex.panel.figure, 1)
    with passes(engine, 0, 0):  # back to a class seen before
        c.target.value = c.target.options[0][1]
    with passes(engine, 0, 0):  # showing the same image again (a new array) reuses its forward
        ex.show(images[0].copy())


def test_clicking_a_bar_shows_that_channel(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    panel = explorer.panel
    reference = make_engine().explain(images[0])
    bars = panel.figure.data[R.BARS]
    channel = int(bars.customdata[3])
    with passes(explorer.engine, 0, 0):
        click(panel.figure, 3)
    shows(panel.figure, reference, channel, panel.controls.bars.value)
    assert panel.view.channel == channel == panel.state.channel
    assert f"A<sup>{channel}</sup>" in panel.figure.layout.annotations[2].text
    panel.controls.counterfactual.value = True  # same layer: the chosen channel stays
    shows(panel.figure, make_engine().explain(images[0], counterfactual=True), channel, 20)
    panel.controls.layer.value = "layer3"  # another layer: back to its strongest channel
    assert panel.view.channel is None and panel.state.channel is None


def test_search_explains_any_class(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    panel = explorer.panel
    c = panel.controls
    top = [value for _, value in c.target.options]
    rare = next(i for i in range(10) if i not in top)
    with passes(explorer.engine, 0, 1):
        c.search.value = f"CLASS {rare}"  # a name in any case, submitted with Enter
    assert c.target.value == rare and rare in [v for _, v in c.target.options]
    assert c.search.value == "" and panel.error.value == ""
    shows(panel.figure, make_engine().explain(images[0], target=rare), None, c.bars.value)
    with passes(explorer.engine, 0, 0):
        c.search.value = "clas 1"  # not a class: suggestions, nothing else changes
    assert c.target.value == rare == panel.state.target
    assert "did you mean" in panel.error.value and "&#x27;class 1&#x27; (1)" in panel.error.value
    top1 = top[0]
    with passes(explorer.engine, 0, 0):
        c.search.value = str(top1)  # an index
    assert c.target.value == top1 and panel.error.value == ""


def test_layer_list_shows_the_stages_first_and_every_layer_on_demand(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    engine = make_engine(layers=None)
    stages = ["layer1", "layer2", "layer3", "layer4"]  # the tiny ResNet's stages, by hand
    assert engine.layers != stages and set(stages) <= set(engine.layers)
    ex = Explorer(engine)
    ex.show(images[0])
    c = ex.panel.controls
    labels = dict((value, label) for label, value in c.layer.options)
    assert list(labels) == stages and c.layer.value == engine.default_layer == "layer4"
    assert labels["layer4"] == "layer4 (32×4×4)" and labels["layer1"] == "layer1 (8×32×32)"
    assert (
        c.all_layers.layout.display is None and str(len(engine.layers)) in c.all_layers.description
    )
    c.all_layers.value = True
    assert [v for _, v in c.layer.options] == engine.layers and ex.panel.state.all_layers
    inner = next(n for n in engine.layers if n.startswith("layer2."))
    c.layer.value = inner
    shows(ex.panel.figure, make_engine(layers=None).explain(images[0], layer=inner), None, 20)
    c.all_layers.value = False  # back to the stages; the layer shown stays listed
    names = [v for _, v in c.layer.options]
    assert names == [n for n in engine.layers if n in {*stages, inner}] and c.layer.value == inner
    c.layer.value = "layer3"
    assert [v for _, v in c.layer.options] == stages


def test_no_all_layers_switch_when_every_layer_is_a_stage(
    make_engine: Callable[..., GradCAM],
) -> None:
    panel = Panel(make_engine())  # layers restricted to layer1..layer4
    assert panel.controls.all_layers.layout.display == "none"


def test_status_line_says_what_is_shown_and_what_it_cost(explorer: Explorer) -> None:
    panel = explorer.panel
    result = explorer.result
    assert result is not None
    status = panel.status.value
    top = explorer.engine.predict(panel.current().prepared, k=1)[0]  # type: ignore[index]
    assert f"predicted <b>{top.name}</b> ({top.probability:.1%})" in status
    assert f"<b>{result.target_name}</b> (class {result.target}" in status
    assert f"score {result.score:.4g}" in status and "layer4 (32×4×4)" in status
    assert " ms, computed: 1 forward, 1 backward" in status
    panel.controls.counterfactual.value = True
    assert "counterfactual" in panel.status.value and " ms, cached" in panel.status.value


def test_errors_show_in_the_panel_and_it_keeps_working(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    panel = explorer.panel
    engine = explorer.engine
    explain = engine.explain
    maps = [R.HEATMAP, R.COARSE, R.ACTIVATION, R.CONTRIBUTION]
    shown = [np.asarray(panel.figure.data[r].z).copy() for r in maps]

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("the model <refused> this layer")

    engine.explain = broken  # type: ignore[method-assign]
    panel.controls.layer.value = "layer2"
    assert "ValueError: the model &lt;refused&gt; this layer" in panel.error.value
    assert all(
        np.array_equal(np.asarray(panel.figure.data[r].z), z)
        for r, z in zip(maps, shown, strict=True)
    )
    # The controls show what is drawn, not the choice that failed.
    assert panel.controls.layer.value == panel.state.layer == "layer4"
    engine.explain = explain  # type: ignore[method-assign]
    panel.controls.counterfactual.value = True
    assert panel.error.value == ""
    expected = make_engine().explain(images[0], layer="layer4", counterfactual=True)
    shows(panel.figure, expected, None, panel.controls.bars.value)


def test_show_raises_for_an_image_the_engine_cannot_take(explorer: Explorer) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        explorer.show("/no/such/picture.png")
    with pytest.raises(ValueError, match="empty"):
        explorer.show([])


def test_picker_appears_only_for_several_images(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    import torch

    ex = Explorer(make_engine())
    ex.show(images[0])
    assert ex.panel.controls.image.layout.display == "none"
    batch = torch.randn(3, 3, 64, 64)
    ex.show(batch)
    picker = ex.panel.controls.image
    assert picker.layout.display is None and [v for _, v in picker.options] == [0, 1, 2]
    picker.value = 2
    expected = make_engine().explain(batch[2])
    assert ex.result is not None and ex.result.target == expected.target


def test_the_panel_leaves_a_given_engine_as_configured(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    engine = make_engine()
    ex = Explorer(engine)
    ex.show(images[0])
    bare = make_engine()
    bare.explain(images[0])  # what the same first view does to an engine nobody configured
    assert engine.gradient_depth == bare.gradient_depth != engine.layers[0]
    # A given engine records its stages and the layers asked of it (nobody watched layer1):
    # since engine v3 a new stage costs this image no forward, this class one backward; the
    # panel does not widen it.
    with passes(engine, 0, 1):
        ex.panel.controls.layer.value = "layer1"
    own = Explorer(engine.model, transform=engine.transform, layers=["layer1", "layer4"])
    assert own.engine.gradient_depth is None
    own.show(images[0])  # the Explorer's own engine: one backward serves every layer
    assert own.engine.gradient_depth == "layer1"
    with passes(own.engine, 0, 0):
        own.panel.controls.layer.value = "layer1"
    with pytest.raises(TypeError, match="all_layer_gradients"):
        Explorer(engine, all_layer_gradients="yes")  # type: ignore[arg-type]


def test_target_is_settable_from_code_by_index_or_name(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    ex = Explorer(make_engine())
    with pytest.raises(RuntimeError, match=r"show\(image\) first"):
        ex.target = 3
    ex.show(images[0])
    top = [value for _, value in ex.panel.controls.target.options]
    assert len(top) == 5
    rare = [i for i in range(10) if i not in top]
    ex.target = rare[0]  # outside the top 5: no TraitError, the class joins the list
    assert ex.target == rare[0] == ex.panel.controls.target.value
    ex.target = f"Class {rare[1]}"
    assert ex.target == rare[1]
    assert [v for _, v in ex.panel.controls.target.options] == [*top, rare[0], rare[1]]
    shows(ex.panel.figure, make_engine().explain(images[0], target=rare[1]), None, 20)
    with pytest.raises(ValueError, match=r"did you mean 'class 4' \(4\)"):
        ex.target = "clas 4"
    with pytest.raises(ValueError, match="out of range"):
        ex.target = 10
    assert ex.target == rare[1]  # a bad class from code raises and changes nothing
    ex.target = np.int64(top[0])
    assert ex.target == top[0] and ex.panel.error.value == ""


def test_layer_method_and_counterfactual_settable_from_code(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    explorer.layer = "layer3"
    explorer.method = "gradcam++"
    explorer.counterfactual = True
    c = explorer.panel.controls
    assert (c.layer.value, c.method.value, c.counterfactual.value) == ("layer3", "gradcam++", True)
    expected = make_engine().explain(
        images[0], layer="layer3", method="gradcam++", counterfactual=True
    )
    shows(explorer.panel.figure, expected, None, 20)
    with pytest.raises(ValueError, match="layer 'fc' is not a spatial layer"):  # engine's words
        explorer.layer = "fc"
    with pytest.raises(ValueError, match="not available at layer 'layer3'"):
        explorer.method = "cam"
    with pytest.raises(TypeError, match="must be a bool"):
        explorer.counterfactual = 1  # type: ignore[assignment]
    explorer.method = "eigencam"
    assert not explorer.counterfactual
    with pytest.raises(ValueError, match="no counterfactual"):
        explorer.counterfactual = True
    assert explorer.layer == "layer3" and explorer.method == "eigencam"
