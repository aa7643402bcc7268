"""The shortcut model reads the corner mark, not the shape."""

from __future__ import annotations

from camwidgets.zoo import ZooModel
from camwidgets.zoo.evaluate import shortcut_report

HELD_OUT_SEED = 2024


def test_shortcut_collapses_with_swapped_marks(shortcut: ZooModel) -> None:
    report = shortcut_report(shortcut.model, HELD_OUT_SEED, 100)
    assert report["accuracy_correct"] >= 0.97
    assert report["accuracy_swapped"] <= 0.1
    # Grad-CAM peaks at the mark (within two layer4 cells) and puts most of its mass there,
    # although that corner region is only 16% of the picture.
    assert report["peak_on_mark"] >= 0.9
    assert report["mass_on_mark"] >= 0.4
