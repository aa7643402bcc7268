"""dissect: against a from-scratch reference, on planted detectors, hygiene and bad input."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camwidgets import GradCAM
from camwidgets.naming import ChannelNames, dissect
from tests.conftest import assert_unchanged, small_transform, snapshot, tiny_net
from tests.naming.helpers import detector_engine, planted


def reference_dissection(
    engine: GradCAM, layer: str, items: list[tuple[Any, dict[str, np.ndarray]]], q: float
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Bau et al. written plainly: one image and one channel at a time, numpy quantiles."""
    acts = [engine.activations(image, layer)[0].numpy() for image, _ in items]
    channels = acts[0].shape[0]
    concepts = sorted({c for _, masks in items for c in masks})
    thresholds = np.zeros(channels)
    for k in range(channels):
        values = np.concatenate([a[k].ravel() for a in acts])
        m = min(max(round(q * values.size), 1), values.size - 1)
        # The (M - m)-th smallest value: numpy's inverted-CDF quantile at (M - m) / M.
        thresholds[k] = np.quantile(values, (values.size - m) / values.size, method="inverted_cdf")
    inter = np.zeros((channels, len(concepts)))
    union = np.zeros((channels, len(concepts)))
    for a, (_, masks) in zip(acts, items, strict=True):
        size = next(iter(masks.values())).shape
        for k in range(channels):
            up = F.interpolate(
                torch.from_numpy(a[k])[None, None], size=size, mode="bilinear", align_corners=False
            )[0, 0].numpy()
            fired = up > thresholds[k]
            for c, concept in enumerate(concepts):
                label = masks.get(concept, np.zeros(size, dtype=bool))
                inter[k, c] += np.sum(fired & label)
                union[k, c] += np.sum(fired | label)
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return concepts, thresholds, iou


def random_items(n: int, seed: int, size: tuple[int, int] = (64, 64)) -> list[Any]:
    """Random pictures with random blob masks of three concepts (some absent per image)."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
        masks = {}
        for name in ("a", "b", "c"):
            if rng.random() < 0.7:
                masks[name] = rng.random(size) < rng.uniform(0.05, 0.5)
        items.append((image, masks))
    return items


@pytest.fixture(scope="module")
def tiny() -> GradCAM:
    return GradCAM(tiny_net(), transform=small_transform())


@pytest.mark.parametrize("layer", ["conv1", "relu"])
def test_matches_reference(tiny: GradCAM, layer: str) -> None:
    layer = layer if layer in tiny.layers else tiny.layers[0]
    items = random_items(9, seed=1)
    # One image per batch, like the reference: a batched forward may round differently.
    names = dissect(tiny, layer, items, quantile=0.01, batch_size=1, progress=False)
    concepts, thresholds, iou = reference_dissection(tiny, layer, items, 0.01)
    assert list(names.concepts) == concepts
    np.testing.assert_allclose(names.thresholds, thresholds, rtol=0, atol=0)
    np.testing.assert_allclose(names.matrix, iou, rtol=1e-12, atol=0)
    assert names.images == 9 and names.layer == layer
    for k in range(len(names)):
        best = int(np.argmax(iou[k]))
        expected = concepts[best] if iou[k, best] >= 0.04 else None
        assert names.name(k) == expected


def test_masks_at_a_lower_resolution_like_broden(tiny: GradCAM) -> None:
    items = random_items(5, seed=2, size=(32, 32))
    layer = tiny.layers[-1]
    names = dissect(tiny, layer, items, quantile=0.02, batch_size=1, progress=False)
    _, thresholds, iou = reference_dissection(tiny, layer, items, 0.02)
    np.testing.assert_array_equal(names.thresholds, thresholds)
    np.testing.assert_allclose(names.matrix, iou, rtol=1e-12)


def test_exactly_the_top_quantile_is_above_threshold(tiny: GradCAM) -> None:
    items = random_items(6, seed=3)
    layer = tiny.layers[0]
    names = dissect(tiny, layer, items, quantile=0.005, progress=False)
    acts = torch.cat([tiny.activations(image, layer) for image, _ in items])
    per_channel = acts.permute(1, 0, 2, 3).reshape(acts.shape[1], -1)
    above = (per_channel > torch.tensor(names.thresholds).float()[:, None]).sum(1)
    expected = round(0.005 * per_channel.shape[1])
    ties = [k for k in range(len(names)) if per_channel[k].unique().numel() < per_channel.shape[1]]
    for k in range(len(names)):
        if k not in ties:
            assert int(above[k]) == expected


def test_batch_size_and_one_shot_iterators_give_the_same_table(tiny: GradCAM) -> None:
    items = random_items(7, seed=4)
    layer = tiny.layers[-1]
    a = dissect(tiny, layer, items, batch_size=1, progress=False)
    b = dissect(tiny, layer, iter(items), batch_size=5, progress=False)

    def generator() -> Iterator[Any]:
        yield from items

    c = dissect(tiny, layer, generator(), batch_size=32, progress=False)
    # Batched convolutions may round in the last bit; a pixel that sits on the threshold may
    # then flip, which moves an IoU by about one pixel over the union.
    for other in (b, c):
        np.testing.assert_allclose(a.thresholds, other.thresholds, rtol=1e-5)
        np.testing.assert_allclose(a.matrix, other.matrix, atol=1e-3)
    np.testing.assert_array_equal(b.matrix, c.matrix)  # same batches of 5 and 7: same numbers


def test_planted_detectors_get_their_names() -> None:
    engine = detector_engine()
    # The squares cover ~6% of the pixels: a top quantile of that order lets IoU approach 1.
    names = dissect(engine, "features.2", planted(30), quantile=0.04, progress=False)
    assert names.name(0) == "red square"
    assert names.name(1) == "blue square"
    # The green channel never fires: nothing lies above its threshold, so it stays unnamed.
    assert names.name(2) is None and names.fired_pixels[2] == 0
    row = names[0]
    assert row.runner_up in ("blue square", "background") and row.runner_up_iou < row.iou
    assert names.iou(0, "red square") > 0.2


def test_model_left_as_found_also_after_errors() -> None:
    engine = detector_engine()
    before = snapshot(engine.model)
    engine.model.train()  # dissect runs in eval mode but must restore the flags it found
    before = snapshot(engine.model)
    dissect(engine, "features.2", planted(6), progress=False)
    assert_unchanged(engine.model, before)
    bad = [*planted(3), ("not", "a pair", "at all")]
    with pytest.raises(TypeError, match="concept item 3"):
        dissect(engine, "features.2", bad, batch_size=2, progress=False)
    assert_unchanged(engine.model, before)


def _forwards(engine: GradCAM) -> int:
    return engine.cache_info().forwards


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layer": "nope"}, ValueError, "unknown layer 'nope'"),
        ({"layer": 3}, TypeError, "layer must be"),
        ({"quantile": 0.0}, ValueError, r"quantile must be in \(0, 1\)"),
        ({"quantile": 1.5}, ValueError, "quantile"),
        ({"quantile": float("nan")}, ValueError, "quantile"),
        ({"iou_threshold": -0.1}, ValueError, r"iou_threshold must be in \[0, 1\]"),
        ({"iou_threshold": "high"}, TypeError, "iou_threshold must be a number"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"progress": "yes"}, TypeError, "progress"),
        ({"concepts": "images/"}, TypeError, "iterable of"),
        ({"concepts": {"a": 1}}, TypeError, "iterable of"),
        ({"concepts": []}, ValueError, "empty"),
    ],
)
def test_bad_arguments_before_any_model_pass(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    engine = detector_engine()
    call: dict[str, Any] = {"layer": "features.2", "concepts": planted(2), "progress": False}
    call.update(kwargs)
    with pytest.raises(error, match=match):
        dissect(engine, **call)
    assert _forwards(engine) == 0


def _item(masks: Any, image: Any = None) -> Any:
    return (np.zeros((64, 64, 3), np.uint8) if image is None else image, masks)


@pytest.mark.parametrize(
    ("item", "error", "match"),
    [
        ((np.zeros((64, 64, 3), np.uint8),), TypeError, r"an \(image, \{concept"),
        (_item([np.ones((64, 64), bool)]), TypeError, "masks must be a dict"),
        (_item({"": np.ones((64, 64), bool)}), TypeError, "non-empty str"),
        (_item({3: np.ones((64, 64), bool)}), TypeError, "non-empty str"),
        (_item({"a": np.ones((64, 64), np.uint8)}), TypeError, "dtype uint8.*must be bool"),
        (_item({"a": [[True]]}), TypeError, "is a list"),
        (_item({"a": np.ones((64, 64, 1), bool)}), ValueError, r"shape \(64, 64, 1\)"),
        (
            _item({"a": np.ones((64, 64), bool), "b": np.ones((32, 32), bool)}),
            ValueError,
            "all masks of one image must share one size",
        ),
        (_item({"a": np.ones((64, 32), bool)}), ValueError, "same aspect ratio"),
        (_item({"a": np.ones((64, 64), bool)}, image=None), None, None),
    ],
)
def test_bad_items_say_which_and_why(item: Any, error: type[Exception] | None, match: str) -> None:
    engine = detector_engine()
    if error is None:  # the control: a valid item goes through
        dissect(engine, "features.2", [item, item], progress=False)
        return
    with pytest.raises(error, match=match):
        dissect(engine, "features.2", [_item({"a": np.ones((64, 64), bool)}), item], progress=False)
    assert _forwards(engine) == 0


def test_torch_masks_and_mask_free_images_are_accepted() -> None:
    engine = detector_engine()
    items = planted(4)
    converted = [(img, {k: torch.from_numpy(v) for k, v in m.items()}) for img, m in items]
    converted.append((items[0][0], {}))  # an image without concepts still counts in |M_k|
    names = dissect(engine, "features.2", converted, progress=False)
    plain = dissect(engine, "features.2", [*items, (items[0][0], {})], progress=False)
    np.testing.assert_array_equal(names.matrix, plain.matrix)
    assert names.images == 5


def test_declared_concept_order_and_categories_are_kept() -> None:
    class Declared(list[Any]):
        concept_names = ("blue square", "red square", "never seen", "background")
        categories: ClassVar[dict[str, str]] = {"blue square": "object", "red square": "object"}

    engine = detector_engine()
    names = dissect(engine, "features.2", Declared(planted(6)), progress=False)
    assert names.concepts == ("blue square", "red square", "never seen", "background")
    assert names.category("red square") == "object" and names.category("background") is None
    assert np.all(names.matrix[:, 2] == 0)
    assert isinstance(names, ChannelNames)


def test_progress_bar_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    dissect(detector_engine(), "features.2", planted(3), progress=True)
    captured = capsys.readouterr()
    assert "dissect features.2" in captured.err and "3/3" in captured.err
    assert captured.out == ""
