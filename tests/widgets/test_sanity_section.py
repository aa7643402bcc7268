"""The Explorer's "sanity check" button: it draws the randomisation curves of the view shown
(and Guided Backprop's), keeps them per view, forgets them with new images, and leaves the
model as found."""

from __future__ import annotations

import numpy as np

from camwidgets import Explorer, metrics
from tests.conftest import assert_unchanged, small_transform, snapshot
from tests.widgets.conftest import CLASSES, picture


def test_button_draws_the_check_of_the_view_shown(model: object) -> None:
    before = snapshot(model)  # type: ignore[arg-type]
    explorer = Explorer(model, classes=CLASSES, transform=small_transform())  # type: ignore[arg-type]
    explorer.show([picture(1), picture(2)])
    section = explorer.panel.sections["sanity"]
    assert section.plot.children == ()  # on demand only
    section.button.click()
    assert "Grad-CAM: mean Spearman" in section.readout.value
    assert "Guided Backprop: mean Spearman" in section.readout.value
    (figure,) = section.plot.children
    want = metrics.randomisation(
        explorer.engine,
        explorer.panel.shown().image.prepared,  # type: ignore[union-attr]
        target=explorer.target,
        method=["gradcam", "guided-backprop"],
        layer=explorer.layer,
        progress=False,
    )
    lines = {t.name: t for t in figure.data}
    np.testing.assert_allclose(lines["Grad-CAM · Spearman"].y, want["gradcam"].spearman)
    np.testing.assert_allclose(lines["Guided Backprop · SSIM"].y, want["guided-backprop"].ssim)
    assert len(lines["Grad-CAM · Spearman"].x) == len(want["gradcam"].steps)
    # Kept per view: clicking again computes nothing.
    forwards = explorer.engine.cache_info().forwards
    section.button.click()
    assert explorer.engine.cache_info().forwards == forwards
    # Another class: no curves until asked; back again: the kept ones.
    other = next(i for i in range(len(CLASSES)) if i != explorer.target)
    first = explorer.target
    explorer.target = other
    assert section.plot.children == () and section.readout.value == ""
    explorer.target = first
    assert len(section.plot.children) == 1
    # New images forget them.
    explorer.show(picture(3))
    assert section.plot.children == ()
    assert_unchanged(model, before)  # type: ignore[arg-type]
