"""Scene generator: determinism, masks that match the painted pixels, marks, dataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from camwidgets.zoo import SHAPE_CLASSES, ShapesDataset, make_scene, sample_scenes
from camwidgets.zoo.registry import scene_transform
from camwidgets.zoo.scenes import MARK_COLOURS, NOISE_STD, mark_box, shape_mask, to_tensor

# Noise is clipped at three standard deviations; rounding adds half a grey level.
NOISE_BOUND = 3 * NOISE_STD + 0.5


def _ring_outside(mask: np.ndarray) -> np.ndarray:
    """Pixels that touch the mask (8-neighbourhood) but are not in it."""
    padded = np.pad(mask, 1)
    grown = np.zeros_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= padded[1 + dy : 1 + dy + mask.shape[0], 1 + dx : 1 + dx + mask.shape[1]]
    return grown & ~mask


def test_classes() -> None:
    assert SHAPE_CLASSES == ("circle", "square", "triangle", "star", "cross", "ring")
    seen = {make_scene(0, i).labels[0] for i in range(60)}
    assert seen == set(range(len(SHAPE_CLASSES)))


@pytest.mark.parametrize("n_objects", [1, 2])
def test_deterministic_per_seed_and_index(n_objects: int) -> None:
    a = make_scene(3, 7, n_objects=n_objects)
    b = make_scene(3, 7, n_objects=n_objects)
    assert np.array_equal(a.image, b.image)
    assert a.labels == b.labels
    assert all(np.array_equal(m, n) for m, n in zip(a.masks, b.masks, strict=True))
    assert not np.array_equal(a.image, make_scene(3, 8, n_objects=n_objects).image)
    assert not np.array_equal(a.image, make_scene(4, 7, n_objects=n_objects).image)


@pytest.mark.parametrize("n_objects", [1, 2])
def test_masks_are_where_the_shape_colour_is(n_objects: int) -> None:
    for i in range(40):
        scene = make_scene(11, i, n_objects=n_objects)
        assert scene.image.dtype == np.uint8
        assert scene.image.shape == (96, 96, 3)
        assert len(scene.masks) == len(scene.labels) == len(scene.class_names) == n_objects
        for mask, colour in zip(scene.masks, scene.colours, strict=True):
            assert mask.dtype == bool and mask.shape == (96, 96)
            assert mask.sum() > 60
            diff = np.abs(scene.image.astype(float) - np.array(colour))
            # Every masked pixel is the fill colour plus bounded noise ...
            assert diff[mask].max() <= NOISE_BOUND
            # ... and the pixels hugging the mask from outside are not.
            outside = diff[_ring_outside(mask)].max(axis=1)
            assert np.mean(outside > NOISE_BOUND) > 0.9


def test_two_objects_differ_and_do_not_touch() -> None:
    for i in range(40):
        scene = make_scene(5, i, n_objects=2)
        assert scene.labels[0] != scene.labels[1]
        assert scene.class_names == tuple(SHAPE_CLASSES[c] for c in scene.labels)
        a, b = scene.masks
        assert not (_ring_outside(a) | a)[b].any()


def test_shape_geometry() -> None:
    def centre(name: str) -> bool:
        return bool(shape_mask(SHAPE_CLASSES.index(name), 48, 48, 30, 0.0, 96)[48, 48])

    assert centre("circle") and centre("square") and centre("star") and centre("cross")
    assert not centre("ring")  # the hole
    cross = shape_mask(SHAPE_CLASSES.index("cross"), 48, 48, 30, 0.0, 96)
    assert not cross[48 + 20, 48 + 20]  # between two arms
    square = shape_mask(SHAPE_CLASSES.index("square"), 48, 48, 30, 0.0, 96)
    assert abs(square.sum() - 2 * 30**2) < 0.1 * 2 * 30**2  # side r*sqrt(2), edges included


def test_marks() -> None:
    top, left, bottom, right = mark_box(96)
    assert (bottom - top, right - left) == (6, 6)
    for i in range(20):
        plain = make_scene(2, i)
        correct = make_scene(2, i, mark="correct")
        swapped = make_scene(2, i, mark="swapped")
        assert plain.mark is None
        assert correct.mark == correct.labels[0]
        assert swapped.mark is not None and swapped.mark != swapped.labels[0]
        outside = np.ones((96, 96), dtype=bool)
        outside[top:bottom, left:right] = False
        # The mark changes nothing but its own box.
        assert np.array_equal(plain.image[outside], correct.image[outside])
        assert np.array_equal(plain.image[outside], swapped.image[outside])
        for scene in (correct, swapped):
            assert scene.mark is not None
            patch = scene.image[top:bottom, left:right].astype(float)
            assert np.abs(patch - np.array(MARK_COLOURS[scene.mark])).max() <= NOISE_BOUND
            assert not scene.masks[0][top:bottom, left:right].any()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n_objects"):
        make_scene(0, 0, n_objects=3)
    with pytest.raises(ValueError, match="single-object"):
        make_scene(0, 0, n_objects=2, mark="correct")
    with pytest.raises(ValueError, match="distinct"):
        make_scene(0, 0, n_objects=2, labels=[1, 1])
    scene = make_scene(0, 0, n_objects=2, labels=[4, 5])
    assert scene.class_names == ("cross", "ring")


def test_dataset() -> None:
    ds = ShapesDataset(10, seed=9)
    assert len(ds) == 10
    x, y = ds[3]
    assert x.dtype == torch.float32 and x.shape == (3, 96, 96)
    assert isinstance(y, int) and 0 <= y < len(SHAPE_CLASSES)
    assert torch.equal(x, ds[3][0])
    assert y == ds.scene(3).labels[0] == make_scene(9, 3).labels[0]
    assert abs(float(x.mean())) < 1.5
    with pytest.raises(IndexError):
        ds[10]
    marked = ShapesDataset(4, seed=9, mark="correct")
    assert marked.scene(0).mark == marked.scene(0).labels[0]


def test_to_tensor_matches_the_zoo_transform() -> None:
    image = make_scene(1, 0).image
    expected = scene_transform()(Image.fromarray(image))
    assert torch.allclose(to_tensor(image), expected, atol=1e-6)


def test_sample_scenes() -> None:
    singles = sample_scenes(3, seed=4)
    pairs = sample_scenes(3, seed=4, two_objects=True)
    assert [len(s.masks) for s in singles] == [1, 1, 1]
    assert [len(s.masks) for s in pairs] == [2, 2, 2]
    assert np.array_equal(singles[1].image, make_scene(4, 1).image)
