"""Compare: every model's result equals its own freshly built engine's, one forward per model per
image, and the figure shows those maps on one range, their difference and their weights."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

from camwidgets import Compare, GradCAM
from camwidgets.widgets import compare_state as cs
from tests.conftest import TinyNet, assert_unchanged, small_transform, snapshot, tiny_resnet
from tests.widgets.conftest import CLASSES, picture
from tests.widgets.helpers import grid_of


def own(model: nn.Module, image: np.ndarray, **kwargs: object) -> object:
    """The model's own explanation, from a new engine (its own cache) built here."""
    return GradCAM(model, classes=CLASSES, transform=small_transform()).explain(image, **kwargs)


def assert_same(result: object, expected: object) -> None:
    assert result.target == expected.target and result.layer == expected.layer  # type: ignore[attr-defined]
    assert result.method == expected.method  # type: ignore[attr-defined]
    assert result.counterfactual == expected.counterfactual  # type: ignore[attr-defined]
    for field in ("heatmap", "coarse", "activations"):
        torch.testing.assert_close(getattr(result, field), getattr(expected, field))
    torch.testing.assert_close(result.weights, expected.weights)  # type: ignore[attr-defined]


def pruned(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if isinstance(module, nn.Conv2d):
            prune.l1_unstructured(module, "weight", amount=0.4)
    return twin


def quantised(model: nn.Module) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8
        )


@pytest.mark.parametrize("kind", ["checkpoints", "pruned", "quantised"])
def test_results_equal_each_models_own_engine(kind: str) -> None:
    before = tiny_resnet(seed=1)
    after = {
        "checkpoints": lambda: tiny_resnet(seed=2),
        "pruned": lambda: pruned(before),
        "quantised": lambda: quantised(before),
    }[kind]()
    states = [snapshot(before), snapshot(after)]
    compare = Compare(
        {"before": before, "after": after}, classes=CLASSES, transform=small_transform()
    )
    image = picture(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note on quantised backward (see quantized.py)
        compare.show(image)
        top = int(own(before, image).target)  # type: ignore[attr-defined]
        assert compare.target == top and compare.layer == "layer4"
        for name, model in (("before", before), ("after", after)):
            assert_same(compare.results[name], own(model, image, target=top, layer="layer4"))
        compare.layer = "layer2"
        compare.target = 7
        compare.counterfactual = True
        for name, model in (("before", before), ("after", after)):
            want = own(model, image, target=7, layer="layer2", counterfactual=True)
            assert_same(compare.results[name], want)
    assert_unchanged(before, states[0])
    assert_unchanged(after, states[1])


def test_two_architectures_take_a_layer_each() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, 10),
    ).eval()
    resnet = tiny_resnet(seed=1)
    compare = Compare({"resnet": resnet, "tiny": net}, classes=CLASSES, transform=small_transform())
    image = picture(4)
    compare.show(image)
    assert compare.panel.common_layers() == []
    assert compare.layers == {"resnet": "layer4", "tiny": compare.engines["tiny"].default_layer}
    with pytest.raises(ValueError, match="not every model has a layer 'layer3'"):
        compare.layer = "layer3"
    compare.layer = {"resnet": "layer3", "tiny": "0"}
    assert compare.layer == {"resnet": "layer3", "tiny": "0"}
    target = compare.target
    assert_same(compare.results["resnet"], own(resnet, image, target=target, layer="layer3"))
    assert_same(compare.results["tiny"], own(net, image, target=target, layer="0"))
    # The per-model dropdowns are shown (the layer lists differ) and drive the same state.
    dropdown = compare.panel.model_layers[1]
    assert dropdown.layout.display is None and compare.panel.layer.layout.display == "none"
    dropdown.value = "2"
    assert compare.layers["tiny"] == "2"
    assert_same(compare.results["tiny"], own(net, image, target=target, layer="2"))
    # Different widths: each model's own top channels, labelled with its name.
    bars = [t for t in compare.panel.figure.data if t.name.startswith("bars:")]
    assert all(str(x).startswith("resnet #") for x in bars[0].x)
    assert all(str(x).startswith("tiny #") for x in bars[1].x)


def test_one_forward_per_model_per_image_and_switches_are_cached() -> None:
    models = {f"m{i}": tiny_resnet(seed=i) for i in range(3)}
    compare = Compare(models, classes=CLASSES, transform=small_transform())
    compare.show([picture(1), picture(2)])
    for engine in compare.engines.values():
        assert engine.cache_info().forwards == 1
    panel = compare.panel
    panel.counterfactual.value = True
    panel.layer.value = "layer1"
    panel.method.value = "gradcam++"
    for engine in compare.engines.values():
        assert engine.cache_info().forwards == 1
    panel.image.value = 1
    for engine in compare.engines.values():
        assert engine.cache_info().forwards == 2
    # The status line counts the new image's forward (its predictions) and its backward.
    assert panel.status.value.count("1 forward, 1 backward") == 3


def test_figure_shows_the_maps_on_one_range_their_difference_and_matched_bars() -> None:
    models = {"a": tiny_resnet(seed=1), "b": tiny_resnet(seed=2), "c": tiny_resnet(seed=3)}
    compare = Compare(models, classes=CLASSES, transform=small_transform())
    compare.show(picture(5))
    panel, fig = compare.panel, compare.panel.figure
    compare.pair = ("c", "a")
    assert panel.pair.value == (2, 0)
    traces = {t.name: t for t in fig.data}
    heat = {n: compare.results[n].heatmap.numpy() for n in compare.names}
    top = max(float(h.max()) for h in heat.values())
    for name in compare.names:
        trace = traces[f"heatmap:{name}"]
        rows, cols, shown = grid_of(trace)
        np.testing.assert_allclose(shown, heat[name][np.ix_(rows, cols)], rtol=1e-6)
        assert trace.zmax == pytest.approx(top) and trace.zmin == 0.0
    rows, cols, diff = grid_of(traces["difference"])
    want = (heat["c"] - heat["a"])[np.ix_(rows, cols)]
    np.testing.assert_allclose(diff, want, rtol=1e-5, atol=1e-7)
    assert traces["difference"].zmin == pytest.approx(-top)
    # Same widths: channels matched by index, the strongest by max |alpha| over the models.
    weights = np.stack([compare.results[n].weights.numpy() for n in compare.names])
    strongest = set(np.argsort(-np.abs(weights).max(0), kind="stable")[: panel.state.top])
    for index, name in enumerate(compare.names):
        bars = traces[f"bars:{name}"]
        channels = [int(str(x).lstrip("#")) for x in bars.x]
        assert set(channels) == strongest
        np.testing.assert_allclose(bars.y, weights[index, channels], rtol=1e-6)
    assert list(traces["bars:a"].x) == list(traces["bars:c"].x)
    assert fig.layout.barmode == "group"


def test_controls_errors_and_a_bad_construction() -> None:
    with pytest.raises(ValueError, match="two or more"):
        Compare({"only": tiny_resnet()})
    with pytest.raises(TypeError, match="mapping"):
        Compare([tiny_resnet(), tiny_resnet()])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"must be a torch\.nn\.Module"):
        Compare({"a": tiny_resnet(), "b": "resnet"})  # type: ignore[dict-item]
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="different numbers of classes"):
        Compare({"a": tiny_resnet(), "b": TinyNet(num_classes=5).eval()})
    compare = Compare({"a": tiny_resnet(seed=1), "b": tiny_resnet(seed=2)})
    with pytest.raises(RuntimeError, match="show"):
        compare.target = 1
    compare.show(picture(2))
    with pytest.raises(ValueError):
        compare.target = 99
    with pytest.raises(ValueError, match="unknown model"):
        compare.pair = ("a", "z")
    shown = compare.results
    with pytest.raises(ValueError, match="unknown method"):
        compare.method = "nope"
    assert compare.results == shown  # a failed change leaves the view as it was


def test_state_transitions() -> None:
    state = cs.CompareState(layers=("layer4", "features"), method="cam")
    with pytest.raises(ValueError, match="lack it"):
        cs.set_layer(state, "layer4", [["layer4"], ["features"]])
    moved = cs.set_model_layer(state, 1, "conv", ["features", "conv"], methods=["gradcam"])
    assert moved.layers == ("layer4", "conv") and moved.method == "gradcam"
    both = cs.set_layer(state, "x", [["x"], ["x", "y"]], methods=["cam", "gradcam"])
    assert both.layers == ("x", "x") and both.method == "cam"
    assert cs.pick_target(state, 9, [1, 2]).extra == (9,)
    assert cs.pick_image(cs.pick_target(state, 9, []), 1, 3).extra == ()
    off = cs.pick_method(replace_cf(state), "eigencam", ["eigencam"], counterfactual=False)
    assert off.counterfactual is False
    with pytest.raises(ValueError):
        cs.set_pair(state, (1, 1))
    with pytest.raises(ValueError):
        cs.set_counterfactual(state, True, supported=False)


def replace_cf(state: cs.CompareState) -> cs.CompareState:
    return cs.set_counterfactual(state, True)
