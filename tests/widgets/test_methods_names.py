"""The method selector, Guided Grad-CAM, the faithfulness readout and channel names."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from camwidgets import Explorer
from camwidgets.engine import GradCAM
from camwidgets.naming import ChannelNames, describe
from tests.widgets.helpers import R, click, passes


@pytest.fixture
def explorer(make_engine: Callable[..., GradCAM], images: list[np.ndarray]) -> Explorer:
    ex = Explorer(make_engine(), all_layer_gradients=True)
    ex.show(images[0])
    return ex


def methods(ex: Explorer) -> list[str]:
    return [value for _, value in ex.panel.controls.method.options]


def test_method_selector_offers_what_the_layer_allows(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], shows: Any
) -> None:
    c, fig = explorer.panel.controls, explorer.panel.figure
    reference = make_engine()
    assert methods(explorer) == reference.methods("layer4") and "cam" in methods(explorer)
    with passes(explorer.engine, 0, (0, 1)):  # the forward is cached; at most a backward
        c.method.value = "gradcam++"
    shows(fig, reference.explain(images[0], method="gradcam++"), None, 20)
    assert "Grad-CAM++" in fig.layout.title.text and "Grad-CAM++" in explorer.panel.status.value
    c.method.value = "cam"
    shows(fig, reference.explain(images[0], method="cam"), None, 20)
    c.layer.value = "layer2"  # CAM exists only where the pooled head reads: back to Grad-CAM
    assert explorer.panel.state.method == "gradcam" == c.method.value
    assert "cam" not in methods(explorer) and methods(explorer) == reference.methods("layer2")
    shows(fig, reference.explain(images[0], layer="layer2"), None, 20)


def test_methods_without_counterfactual_or_weights(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray], grid: Any
) -> None:
    c, fig = explorer.panel.controls, explorer.panel.figure
    c.counterfactual.value = True
    c.method.value = "eigencam"  # class-agnostic: the counterfactual goes off and is disabled
    assert not explorer.panel.state.counterfactual and c.counterfactual.disabled
    expected = make_engine().explain(images[0], method="eigencam")
    np.testing.assert_allclose(grid(fig.data[R.COARSE])[2], expected.coarse.numpy(), rtol=1e-5)
    c.method.value = "hirescam"
    assert not c.counterfactual.disabled
    assert "HiResCAM has no channel weights" in fig.layout.annotations[4].text
    assert not np.asarray(fig.data[R.BARS].y).any()


def test_guided_gradcam_shows_the_guided_picture(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    fig = explorer.panel.figure
    explorer.panel.controls.method.value = "guided-gradcam"
    guided = make_engine().explain(images[0], method="guided-gradcam").guided
    assert guided is not None
    # Independently: the usual rendering, centred, unit sd, 0.5 + 0.1 g, clipped.
    g = guided.numpy().astype(np.float64)
    g = np.clip(0.5 + 0.1 * (g - g.mean()) / g.std(), 0, 1).transpose(1, 2, 0)
    source = fig.data[R.PICTURE].source
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    assert np.abs(drawn.astype(int) - np.round(g * 255).astype(int)).max() <= 1
    assert "Guided Grad-CAM" in fig.layout.annotations[0].text
    assert fig.data[R.HEATMAP].opacity == 0.0
    explorer.panel.controls.method.value = "gradcam"
    assert fig.data[R.HEATMAP].opacity == 0.5 and fig.data[R.PICTURE].source != source


def names_for(engine: GradCAM, layer: str) -> ChannelNames:
    """A hand-made dissection table: every third channel named, IoU above the threshold."""
    channels = engine.layer_shapes[layer][0]
    iou = np.zeros((channels, 2))
    iou[::3, 0] = 0.2
    iou[1::3, 1] = 0.1
    return ChannelNames(layer, ["circle", "red"], iou, np.ones(channels), 0.005, 0.04)


def test_channel_names_in_hover_titles_and_words(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    engine = make_engine()
    table = names_for(engine, "layer4")
    ex = Explorer(engine, names=table)
    ex.show(images[0])
    panel, fig = ex.panel, ex.panel.figure
    bars = fig.data[R.BARS]
    for channel, text in zip(bars.customdata, bars.hovertext, strict=True):
        name = table.name(int(channel))
        assert (f"<i>{name}</i>" in text) if name else text == ""
    click(fig, 0)
    shown = int(bars.customdata[0])
    if table.name(shown):
        assert f"<i>{table.name(shown)}</i>" in fig.layout.annotations[2].text
    result = ex.result
    assert result is not None
    sentence = describe(result, table, k=3, classes=engine.classes).sentence
    assert html.escape(sentence) in panel.words.value and panel.words.layout.display is None
    panel.controls.names.value = False
    assert panel.words.layout.display == "none" and not any(fig.data[R.BARS].hovertext)
    panel.controls.names.value = True
    panel.controls.layer.value = "layer3"  # no names for this layer
    assert panel.words.layout.display == "none" and not any(fig.data[R.BARS].hovertext)
    with pytest.raises(ValueError, match="channels"):
        ex.names = ChannelNames("layer3", ["a"], np.zeros((5, 1)), np.ones(5), 0.005, 0.04)
    with pytest.raises(TypeError, match="ChannelNames"):
        ex.names = {"layer4": table}
    ex.names = None
    assert panel.controls.names.layout.display == "none"


def test_new_images_do_not_inherit_measurements_or_ranges(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    panel = explorer.panel
    panel.measure()  # the readout the panel shows for a view
    panel.controls.scale.value = "shared"
    explorer.show(images[1])  # image index 0 again, but another picture
    panel.controls.target.value = explorer.engine.predict(images[0], k=1)[0].index  # type: ignore[union-attr]
    assert panel.faithfulness.value == ""
    reference = make_engine()
    listed = [value for _, value in panel.controls.target.options]
    heat = max(
        float(reference.explain(images[1], target=t, counterfactual=cf).heatmap.max())
        for t in listed
        for cf in (False, True)
    )
    assert panel.figure.data[R.HEATMAP].zmax == pytest.approx(heat, rel=1e-5)
