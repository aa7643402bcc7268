"""The panel's faithfulness readout: the map's deletion and insertion curves against the random
maps' band, each recomputed here from ``camwidgets.metrics`` on a separate engine."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from camwidgets import Explorer, metrics
from camwidgets.engine import GradCAM
from camwidgets.figures.faithfulness import FaithRole as F
from camwidgets.widgets.panel.faithfulness import FaithfulnessSection

STEPS, RUNS = 40, 3


@pytest.fixture
def explorer(make_engine: Callable[..., GradCAM], images: list[np.ndarray]) -> Explorer:
    ex = Explorer(make_engine(), all_layer_gradients=True)
    ex.show(images[0])
    return ex


def expected_curves(
    engine: GradCAM, image: np.ndarray, layer: str, counterfactual: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float, list[float]]]:
    """Per kind: fractions, the map's scores, the random maps' scores (R, S+1), AUCs."""
    result = engine.explain(image, layer=layer, counterfactual=counterfactual)
    size = engine.prepare(image).size
    grid = tuple(int(v) for v in engine.layer_shapes[layer][1:])
    out = {}
    for kind, run in (("deletion", metrics.deletion), ("insertion", metrics.insertion)):
        curve = run(engine, image, result.heatmap, result.target, steps=STEPS, progress=False)
        assert isinstance(curve, metrics.Curve)
        randoms = []
        for seed in range(RUNS):
            noise = metrics.random_map(size, grid=grid, seed=seed)  # type: ignore[arg-type]
            one = run(engine, image, noise, result.target, steps=STEPS, progress=False)
            assert isinstance(one, metrics.Curve)
            randoms.append(one)
        out[kind] = (
            curve.fractions.numpy(),
            curve.scores.numpy(),
            np.stack([c.scores.numpy() for c in randoms]),
            curve.auc,
            [c.auc for c in randoms],
        )
    return out


def section(explorer: Explorer) -> FaithfulnessSection:
    found = explorer.panel.sections["faithfulness"]
    assert isinstance(found, FaithfulnessSection)
    return found


def assert_draws(fig: object, expected: dict[str, tuple[np.ndarray, ...]]) -> None:
    data = fig.data  # type: ignore[attr-defined]
    for kind, first in (("deletion", F.DELETION_LOW), ("insertion", F.INSERTION_LOW)):
        fractions, scores, random, _, _ = expected[kind]
        low, high, mean, drawn = (data[first + k] for k in range(4))
        for trace in (low, high, mean, drawn):
            np.testing.assert_allclose(trace.x, fractions)
        np.testing.assert_allclose(drawn.y, scores, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(low.y, random.min(axis=0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(high.y, random.max(axis=0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(mean.y, random.mean(axis=0), rtol=1e-5, atol=1e-7)
        assert high.fill == "tonexty" and low.line.width == 0  # the band between them


def test_readout_draws_the_curves_against_the_random_band(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    panel, readout = explorer.panel, section(explorer)
    assert panel.faithfulness.value == "" and readout.figure is None  # nothing until asked
    before = explorer.engine.cache_info().backwards
    panel.controls.measure.click()  # perturbed images only go forward (engine.scores)
    assert explorer.engine.cache_info().backwards == before
    assert panel.error.value == ""
    expected = expected_curves(make_engine(), images[0], "layer4")
    fig = readout.figure
    assert fig is not None and readout.widget.children == (readout.text, fig)
    assert_draws(fig, expected)
    text = panel.faithfulness.value
    for kind, which in (("deletion", "lower is better"), ("insertion", "higher is better")):
        _, _, _, auc, randoms = expected[kind]
        assert f"<b>{kind}</b> ({which}): this map <b>{auc:.3f}</b>" in text
        assert f"random maps {np.mean(randoms):.3f} (range {min(randoms):.3f}" in text
        # The verdict follows the numbers: better / worse than every random map, or within.
        lower = kind == "deletion"
        better = auc < min(randoms) if lower else auc > max(randoms)
        worse = auc > max(randoms) if lower else auc < min(randoms)
        if better:
            assert ("faster than removing" if lower else "back faster than") in text
        elif worse:
            assert "<b>more slowly</b>" in text
        else:
            assert f"no clearer than {'removing' if lower else 'restoring'} random" in text
    assert "against 3 random maps" in text

    panel.controls.counterfactual.value = True  # another map: its readout is not this one
    assert panel.faithfulness.value == "" and readout.widget.children == (readout.text,)
    panel.controls.counterfactual.value = False  # back: the measured readout comes back
    assert panel.faithfulness.value == text and readout.widget.children == (readout.text, fig)
    assert_draws(fig, expected)


def test_another_view_updates_the_same_figure_in_place(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    panel, readout = explorer.panel, section(explorer)
    panel.measure()
    fig = readout.figure
    traces = [id(t) for t in fig.data]  # type: ignore[union-attr]
    panel.controls.layer.value = "layer3"
    panel.measure()
    assert readout.figure is fig and [id(t) for t in fig.data] == traces  # type: ignore[union-attr]
    assert_draws(fig, expected_curves(make_engine(), images[0], "layer3"))
    assert "AUC" in fig.layout.annotations[0].text  # type: ignore[union-attr]


def test_measuring_before_an_image_is_refused(make_engine: Callable[..., GradCAM]) -> None:
    with pytest.raises(RuntimeError, match="no image is shown yet"):
        Explorer(make_engine()).panel.measure()
