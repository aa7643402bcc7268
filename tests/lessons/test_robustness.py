"""The robustness lesson's figures: the peak test and the counts, checked on a fixed tiny set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camwidgets import GradCAM, zoo
from camwidgets.attacks import AttackResult
from camwidgets.lessons.robustness import Row, peaks_on, rows_for, to_markdown
from camwidgets.zoo.evaluate import reference_gradcam
from camwidgets.zoo.scenes import to_tensor


def _peak_near(heat: np.ndarray, mask: np.ndarray, tolerance: int) -> bool:
    """Independent peak test: the distance from the argmax to the nearest mask pixel."""
    if heat.max() <= 0:
        return False
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return False
    return bool(np.min(np.maximum(np.abs(ys - row), np.abs(xs - col))) <= tolerance)


def test_peaks_on_a_fixed_set() -> None:
    heat = np.zeros((4, 10, 10))
    masks = np.zeros((4, 10, 10), dtype=bool)
    masks[:, 2:4, 2:4] = True
    heat[0, 3, 3] = 1.0  # on the object
    heat[1, 6, 6] = 1.0  # 3 pixels off (Chebyshev): inside tolerance 3, outside 2
    heat[2, 9, 9] = 1.0  # far
    # heat[3] all zero: peaks nowhere
    assert peaks_on(heat, masks, tolerance=0).tolist() == [True, False, False, False]
    assert peaks_on(heat, masks, tolerance=2).tolist() == [True, False, False, False]
    assert peaks_on(heat, masks, tolerance=3).tolist() == [True, True, False, False]
    rng = np.random.default_rng(0)
    random_heat = rng.random((20, 16, 16))
    random_masks = rng.random((20, 16, 16)) > 0.95
    expected = [_peak_near(h, m, 2) for h, m in zip(random_heat, random_masks, strict=True)]
    assert peaks_on(random_heat, random_masks, tolerance=2).tolist() == expected


def test_peaks_on_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="one shape"):
        peaks_on(np.zeros((2, 4, 4)), np.zeros((2, 4, 5), dtype=bool))
    with pytest.raises(ValueError, match="tolerance"):
        peaks_on(np.zeros((1, 4, 4)), np.zeros((1, 4, 4), dtype=bool), tolerance=-1)


def test_rows_for_counts_match_an_independent_reference() -> None:
    z = zoo.load("shapes")
    engine = GradCAM(z.model, classes=z.classes, transform=z.transform)
    scenes = [zoo.make_scene(2, i) for i in range(5)]
    clean = [s.image.astype(np.float32) / 255 for s in scenes]
    # A fixed "attack": the same pictures with a fixed +-8/255 pattern; predictions made here.
    rng = np.random.default_rng(1)
    attacked = [
        np.clip(c + rng.choice([-8, 8], size=c.shape) / 255, 0, 1).astype(np.float32) for c in clean
    ]
    attacked = [np.round(a * 255).astype(np.float32) / 255 for a in attacked]
    x_clean = torch.stack([to_tensor(s.image) for s in scenes])
    x_att = torch.stack([to_tensor(np.round(a * 255).astype(np.uint8)) for a in attacked])
    with torch.no_grad():
        originals = z.model(x_clean).argmax(1)
        predicted = z.model(x_att).argmax(1)
    # Make two of the five count as flipped whatever the model did, by declaring a prediction.
    declared = predicted.clone()
    declared[0] = (originals[0] + 1) % 6
    declared[1] = (originals[1] + 2) % 6
    res = AttackResult(
        images=tuple(attacked),
        original_pictures=tuple(clean),
        originals=tuple(int(o) for o in originals),
        predictions=tuple(int(p) for p in declared),
        targets=(None,) * 5,
        classes=tuple(z.classes),
        method="pgd",
        eps=8 / 255,
        steps=1,
        step_size=8 / 255,
        batched=True,
    )
    masks = np.stack([s.masks[0] for s in scenes])
    (row,) = rows_for(engine, res, masks, ["layer3"], ["gradcam"], "shapes", tolerance=4)
    flipped = (declared != originals).numpy()
    ref_clean = reference_gradcam(z.model, x_clean, "layer3", originals).numpy()
    ref_orig = reference_gradcam(z.model, x_att, "layer3", originals).numpy()
    ref_new = reference_gradcam(z.model, x_att, "layer3", declared).numpy()

    def count(maps: np.ndarray) -> int:
        hits = [_peak_near(m, k, 4) for m, k in zip(maps, masks, strict=True)]
        return int(np.sum(np.array(hits) & flipped))

    assert row.n == 5 and row.flipped == int(flipped.sum()) >= 2
    assert (row.clean, row.original, row.new) == (count(ref_clean), count(ref_orig), count(ref_new))
    assert (row.model, row.attack, row.layer, row.method) == ("shapes", "pgd", "layer3", "gradcam")


def test_markdown_table() -> None:
    rows = [Row("shapes", "pgd", 8 / 255, "layer4", "gradcam", 60, 57, 55, 20, 31)]
    text = to_markdown(rows)
    assert text.splitlines()[0].startswith("| model | attack | eps |")
    assert "| shapes | pgd | 8/255 | layer4 | gradcam | 57/60 (95%) | 55/57 (96%) |" in text
    assert "20/57 (35%) | 31/57 (54%) |" in text
    assert rows[0].flip_rate == pytest.approx(0.95)
