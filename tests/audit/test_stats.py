"""Map statistics against brute-force references written here, pixel by pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from camwidgets.audit.results import upsample
from camwidgets.audit.stats import (
    boxes_mask,
    grid_regions,
    peaks,
    pointing_hits,
    region_shares,
    regions_from,
    resize_mask,
    scale_boxes,
    shares_inside,
)


@pytest.fixture
def maps() -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.maximum(rng.normal(size=(5, 24, 20)), 0).astype(np.float32)
    out[3] = 0.0  # an empty map
    return out


def test_grid_shares_match_a_pixel_loop(maps: np.ndarray) -> None:
    n, height, width = maps.shape
    shares = region_shares(maps, grid_regions(4, 5))
    expected = np.zeros((n, 20))
    for i in range(n):
        total = maps[i].sum(dtype=np.float64)
        for y in range(height):
            for x in range(width):
                cell = (y * 4 // height) * 5 + (x * 5 // width)
                expected[i, cell] += maps[i, y, x] / total if total > 0 else 0.0
    np.testing.assert_allclose(shares, expected, atol=1e-6)
    np.testing.assert_allclose(shares[[0, 1, 2, 4]].sum(axis=1), 1.0, atol=1e-6)
    assert (shares[3] == 0).all()


def test_named_boxes_may_overlap(maps: np.ndarray) -> None:
    regions = regions_from({"top half": (0, 0, 0.5, 1), "centre": (0.25, 0.25, 0.75, 0.75)})
    shares = region_shares(maps, regions)
    m = maps[0].astype(np.float64)
    assert shares[0, 0] == pytest.approx(m[:12].sum() / m.sum(), abs=1e-6)
    assert shares[0, 1] == pytest.approx(m[6:18, 5:15].sum() / m.sum(), abs=1e-6)


def test_peaks_and_mask_shares(maps: np.ndarray) -> None:
    rows, cols = peaks(maps)
    for i in range(len(maps)):
        if maps[i].max() > 0:
            assert maps[i, rows[i], cols[i]] == maps[i].max()
    masks = np.zeros(maps.shape, dtype=bool)
    masks[:, 2:9, 4:13] = True
    inside = shares_inside(maps, masks)
    for i in range(len(maps)):
        total = float(maps[i].sum(dtype=np.float64))
        want = float(maps[i, 2:9, 4:13].sum(dtype=np.float64)) / total if total else 0.0
        assert inside[i] == pytest.approx(want, abs=1e-6)


def test_pointing_hits_with_tolerance_match_brute_force() -> None:
    rng = np.random.default_rng(1)
    masks = np.zeros((40, 16, 16), dtype=bool)
    for m in masks:
        y, x = rng.integers(0, 12, size=2)
        m[y : y + 3, x : x + 4] = True
    rows, cols = rng.integers(0, 16, size=40), rng.integers(0, 16, size=40)
    for tolerance in (0.0, 1.5, 4.0):
        hits = pointing_hits(rows, cols, masks, tolerance)
        for i in range(40):
            ys, xs = np.nonzero(masks[i])
            near = np.sqrt((ys - rows[i]) ** 2 + (xs - cols[i]) ** 2).min() <= tolerance
            assert hits[i] == near


def test_upsample_matches_torch_bilinear() -> None:
    grid = np.random.default_rng(2).random((12, 9))
    expected = F.interpolate(
        torch.from_numpy(grid)[None, None], size=(96, 50), mode="bilinear", align_corners=False
    )[0, 0].numpy()
    np.testing.assert_allclose(upsample(grid, 96, 50), expected, atol=1e-12)


def test_masks_and_boxes_scale_to_the_map() -> None:
    mask = np.zeros((4, 6), dtype=bool)
    mask[1, 2] = mask[3, 5] = True
    np.testing.assert_array_equal(resize_mask(mask, 8, 12), np.kron(mask, np.ones((2, 2))) > 0)
    boxes = scale_boxes(np.array([[1, 2, 3, 5]]), (4, 6), (8, 12))
    np.testing.assert_allclose(boxes, [[2, 4, 6, 10]])
    expected = np.zeros((8, 12), dtype=bool)
    expected[2:6, 4:10] = True
    np.testing.assert_array_equal(boxes_mask(boxes, 8, 12), expected)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (0, ValueError),
        ({"a": (0.5, 0, 0.2, 1)}, ValueError),
        ({"a": (0, 0, 2, 1)}, ValueError),
        ({}, ValueError),
        ("4", TypeError),
    ],
)
def test_bad_regions_are_refused(spec: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        regions_from(spec)  # type: ignore[arg-type]
