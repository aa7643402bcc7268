"""Failure modes in the audit: which images are mistakes, and where both classes' maps lie."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from camwidgets import zoo
from camwidgets.audit import Audit, ScenesSource, audit
from camwidgets.audit.mistakes import Mistake, group, place_of, relation
from camwidgets.zoo.evaluate import reference_gradcam
from camwidgets.zoo.scenes import SHAPE_CLASSES, mark_box, to_tensor


def _nearest(heat: np.ndarray, places: dict[str, np.ndarray], reach: float) -> str:
    """Independent place: distance from the peak to every pixel of every place."""
    if heat.max() <= 0:
        return "nowhere"
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    best, where = np.inf, "background"
    for name, mask in places.items():
        ys, xs = np.where(mask)
        distances = np.maximum(np.abs(ys - row), np.abs(xs - col))
        if distances.size and distances.min() <= reach and distances.min() < best:
            best, where = distances.min(), name
    return where


def test_place_of_a_fixed_set() -> None:
    heat = np.zeros((20, 20))
    heat[10, 10] = 1.0
    square = np.zeros((20, 20), dtype=bool)
    square[12:15, 12:15] = True  # 2 px away
    mark = np.zeros((20, 20), dtype=bool)
    mark[0:3, 0:3] = True  # 8 px away
    places = {"square": square, "mark:star": mark}
    assert place_of(heat, places, 1) == "background"
    assert place_of(heat, places, 2) == "square"
    assert place_of(heat, places, 9) == "square"  # the nearest wins
    assert place_of(np.zeros((20, 20)), places, 9) == "nowhere"
    rng = np.random.default_rng(2)
    for _ in range(20):
        h = rng.random((16, 16))
        ps = {f"p{i}": rng.random((16, 16)) > 0.97 for i in range(3)}
        assert place_of(h, ps, 3) == _nearest(h, ps, 3)


def test_relations_and_patterns() -> None:
    assert relation("star", "star", "square") == "own object"
    assert relation("square", "star", "square") == "other class's object"
    assert relation("mark:star", "star", "square") == "own mark"
    assert relation(None, "star", "square") == "unknown"
    other_shape = Mistake("1", label="square", predicted="star", label_place="square",
                          pred_place="star")  # fmt: skip
    marked = Mistake("2", label="square", predicted="star", label_place="background",
                     pred_place="mark:star")  # fmt: skip
    again = Mistake("3", label="circle", predicted="ring", label_place="circle", pred_place="ring")
    assert other_shape.pattern.startswith("predicted another object in the picture: the ")
    assert "map sits on that object; the true class's map sits on the labelled object" in (
        other_shape.pattern
    )
    assert marked.pattern.startswith("predicted the mark's class: the predicted class's map sits")
    groups = group([marked, other_shape, again])
    assert [g.count for g in groups] == [2, 1]
    assert groups[0].ids == ("1", "3")
    assert groups[0].pairs == (("circle", "ring", 1), ("square", "star", 1))


def _check_against_reference(result: Audit, source: ScenesSource, model: torch.nn.Module) -> int:
    """Mistakes and their places, recomputed with the zoo's own reference Grad-CAM."""
    items = [source.load(i) for i in range(len(source))]
    x = torch.stack([to_tensor(item.image) for item in items])
    with torch.no_grad():
        top1 = model(x).argmax(1).tolist()
    expected = [item.id for item, p in zip(items, top1, strict=True) if p != item.label]
    found = {m.id: m for m in result.mistakes()}
    assert sorted(found, key=int) == expected
    wrong = [int(i) for i in expected]
    if not wrong:
        return 0
    preds = torch.tensor([top1[i] for i in wrong])
    labels = torch.tensor([int(items[i].label) for i in wrong])  # type: ignore[arg-type]
    pred_maps = reference_gradcam(model, x[wrong], "layer4", preds).numpy()
    true_maps = reference_gradcam(model, x[wrong], "layer4", labels).numpy()
    reach = 2 * 96 / 12  # two layer4 cells (12x12 grid at 96 px)
    for j, i in enumerate(wrong):
        places = items[i].places
        assert places is not None
        m = found[str(i)]
        assert m.predicted == SHAPE_CLASSES[top1[i]]
        assert m.label == SHAPE_CLASSES[int(labels[j])]
        assert m.pred_place == _nearest(pred_maps[j], places, reach)
        assert m.label_place == _nearest(true_maps[j], places, reach)
    return len(wrong)


@pytest.mark.slow
def test_two_shape_scenes_predicting_the_other_shape(tmp_path: Path) -> None:
    source = ScenesSource(24, seed=3, objects=2, label="largest")
    result = audit(source, "zoo:shapes", tmp_path / "a", progress=False)
    model = zoo.load("shapes").model
    count = _check_against_reference(result, source, model)
    assert count > 0  # two-shape scenes labelled by their larger shape give real mistakes
    patterns = result.mistake_patterns()
    assert sum(p.count for p in patterns) == count
    other = [m for m in result.mistakes() if m.pred_place == m.predicted]
    for m in other:
        assert m.pattern.startswith("predicted another object in the picture")


@pytest.mark.slow
def test_shortcut_model_with_swapped_marks_looks_at_the_mark(tmp_path: Path) -> None:
    source = ScenesSource(16, seed=2, mark="swapped")
    result = audit(source, "zoo:shortcut", tmp_path / "b", progress=False)
    count = _check_against_reference(result, source, zoo.load("shortcut").model)
    assert count > 0
    for m in result.mistakes():
        if m.pred_place is not None and m.pred_place.startswith("mark:"):
            assert m.pattern.startswith(
                "predicted the mark's class" if m.pred_place == f"mark:{m.predicted}" else "pre"
            )


def test_scenes_carry_their_places() -> None:
    item = ScenesSource(3, seed=1, mark="correct").load(1)
    assert item.places is not None
    (shape,) = [k for k in item.places if not k.startswith("mark:")]
    assert shape == SHAPE_CLASSES[int(item.label)]  # type: ignore[arg-type]
    top, left, bottom, right = mark_box(96)
    mark = item.places[f"mark:{shape}"]
    assert mark.sum() == (bottom - top) * (right - left) and mark[top, left]
    two = ScenesSource(3, seed=1, objects=2, label="largest").load(0)
    assert two.places is not None and len(two.places) == 2
    sizes = {k: int(v.sum()) for k, v in two.places.items()}
    assert SHAPE_CLASSES[int(two.label)] == max(sizes, key=sizes.__getitem__)  # type: ignore[arg-type]
    assert ScenesSource(3, seed=1, objects=2).load(0).label is None
    with pytest.raises(ValueError, match="label must be"):
        ScenesSource(3, label="biggest")
    assert ScenesSource.parse("zoo:scenes:5:objects=2:label=first").label == "first"
