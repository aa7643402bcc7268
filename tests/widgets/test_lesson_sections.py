"""The panel's "step by step" and "attack" views: every plotted value checked against a
from-scratch Grad-CAM (tests/engine/reference.py) and an independent model pass."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from camwidgets.engine import GradCAM
from camwidgets.widgets.panel import Panel
from camwidgets.widgets.panel.attack import AttackSection
from camwidgets.widgets.panel.steps import StepsSection
from tests.conftest import MEAN, STD, assert_unchanged, snapshot
from tests.engine.reference import layer_output_and_gradient, reference_gradcam


def _at(trace: Any, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A heat-map trace's z and the expected values at its own (x, y) positions."""
    x = np.asarray(trace.x).astype(int)
    y = np.asarray(trace.y).astype(int)
    return np.asarray(trace.z, dtype=np.float64), values[y, x]


def _close(trace: Any, values: np.ndarray) -> None:
    got, want = _at(trace, values)
    scale = max(float(np.abs(want).max()), 1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * scale)


def test_step_by_step_shows_the_formula_of_the_view(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], model: torch.nn.Module
) -> None:
    panel = Panel(make_engine())
    panel.load(images[:1])
    panel.controls.layer.value = "layer3"
    steps = panel.sections["steps"]
    assert isinstance(steps, StepsSection)
    assert steps.holder.layout.display == "none" and steps.figure is None
    steps.toggle.value = True
    fig = steps.figure
    assert fig is not None and steps.holder.layout.display is None
    target = panel.state.target
    assert target is not None
    x = panel.current().prepared.tensor
    for sign in (1.0, -1.0):
        heat, coarse, alpha, acts = (
            t.numpy() for t in reference_gradcam(model, x, "layer3", target, sign)
        )
        _, grads = layer_output_and_gradient(model, x, "layer3", [target], sign)
        grad = grads[0].numpy()
        chosen = np.lexsort((np.arange(alpha.size), -alpha))[:4]
        titles = [a.text for a in fig.layout.annotations]
        for i, k in enumerate(chosen):
            assert titles[i] == f"① A<sup>{k}</sup>"
            assert titles[4 + i].startswith(
                f"② {'−' if sign < 0 else ''}∂Y<sub>c</sub>/∂A<sup>{k}</sup>"
            )
            _close(fig.data[i], acts[k])
            _close(fig.data[4 + i], grad[k])
        bars = fig.data[8]
        strongest = np.argsort(-np.abs(alpha))[:12]
        assert set(np.asarray(bars.customdata).tolist()) == set(strongest.tolist())
        np.testing.assert_allclose(
            np.asarray(bars.y), alpha[np.asarray(bars.customdata)], rtol=1e-4, atol=1e-9
        )
        _close(fig.data[9], coarse)
        _close(fig.data[10], np.maximum(coarse, 0))
        _close(fig.data[12], heat)
        assert titles[8].startswith("③ α<sub>k</sub>") and titles[11].startswith("⑥ resized")
        panel.controls.counterfactual.value = True  # the second round: the counterfactual
    assert fig is steps.figure  # updated in place, not rebuilt
    assert "same at every cell" not in steps.note.value  # layer3's gradients vary
    panel.controls.layer.value = "layer4"  # feeds the pooled linear head: flat gradients
    _, grads4 = layer_output_and_gradient(model, x, "layer4", [target], -1.0)
    g = grads4[0].numpy()
    assert np.allclose(g, g.mean(axis=(1, 2), keepdims=True), atol=1e-6 * np.abs(g).max())
    assert "same at every cell" in steps.note.value
    steps.toggle.value = False
    assert steps.holder.layout.display == "none"


def _normalised(picture: np.ndarray) -> torch.Tensor:
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((torch.from_numpy(picture).permute(2, 0, 1) - mean) / std)[None]


def test_attack_view_shows_both_pictures_and_both_maps(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], model: torch.nn.Module
) -> None:
    panel = Panel(make_engine())
    panel.load(images[:2])
    section = panel.sections["attack"]
    assert isinstance(section, AttackSection)
    before = snapshot(model)
    section.toggle.value = True
    assert_unchanged(model, before)
    res, fig = section.result, section.figure
    assert res is not None and fig is not None
    clean = panel.current().prepared.tensor
    attacked = _normalised(res.images[0])
    assert np.abs(res.images[0] - res.original_pictures[0]).max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        original, new = int(model(clean).argmax(1)), int(model(attacked).argmax(1))
    assert (res.originals[0], res.predictions[0]) == (original, new)
    assert res.success == (new != original)
    layer = panel.state.layer
    for row, x in enumerate((clean, attacked)):
        for col, c in enumerate((original, new)):
            heat = reference_gradcam(model, x, layer, c)[0].numpy()
            _close(fig.data[6 * row + 2 * (col + 1) + 1], heat)
    titles = [a.text for a in fig.layout.annotations]
    names = panel.engine.classes
    assert names[original] in titles[0] and names[new] in titles[3]
    section.budget.value = 2
    res2 = section.result
    assert res2 is not None and res2.eps == 2 / 255
    assert np.abs(res2.images[0] - res2.original_pictures[0]).max() <= 2 / 255 + 1e-6
    assert fig is section.figure  # updated in place
    panel.controls.image.value = 1  # the other image: attacked on its own
    assert section.result is not None and section.result is not res2
    section.toggle.value = False
    assert section.holder.layout.display == "none"


def test_attack_view_says_why_it_cannot_attack(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    from torchvision import transforms

    # No Normalize: the pixel space of the prepared tensor is unknown; the section says so.
    panel = Panel(
        make_engine(transform=transforms.Compose([transforms.Resize(64), transforms.ToTensor()]))
    )
    panel.load(images[:1])
    section = panel.sections["attack"]
    assert isinstance(section, AttackSection)
    section.toggle.value = True
    assert "Normalize" in section.note.value and section.holder.layout.display == "none"
    assert panel.error.value == ""  # the main view is unaffected
