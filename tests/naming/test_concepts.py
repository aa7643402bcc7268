"""zoo.concepts: masks that agree with the painted pixels, marks independent of shapes."""

from __future__ import annotations

import colorsys
from collections import Counter

import numpy as np
import pytest

from camwidgets import zoo
from camwidgets.zoo.concepts import (
    COLOUR_FAMILIES,
    CONCEPT_CATEGORIES,
    MARK,
    MARKS,
    TEXTURES,
    colour_family,
)
from camwidgets.zoo.scenes import (
    MARK_COLOURS,
    NOISE_STD,
    SHAPE_CLASSES,
    background_layers,
    make_scene,
    mark_box,
)

NOISE_BOUND = 3 * NOISE_STD + 0.5


def test_vocabulary() -> None:
    assert list(CONCEPT_CATEGORIES)[:6] == list(SHAPE_CLASSES)
    assert Counter(CONCEPT_CATEGORIES.values()) == {
        "shape": 6,
        "colour": len(COLOUR_FAMILIES),
        "texture": 3,
        "mark": 7,
    }
    assert MARKS == (
        "red corner mark",
        "green corner mark",
        "blue corner mark",
        "yellow corner mark",
        "magenta corner mark",
        "cyan corner mark",
    )
    assert zoo.concepts(1, seed=0).concept_names == tuple(CONCEPT_CATEGORIES)


@pytest.mark.parametrize(
    ("rgb", "family"),
    [
        ((250, 10, 10), "red"),
        ((250, 10, 60), "red"),  # hue 348
        ((250, 140, 10), "orange"),
        ((240, 240, 20), "yellow"),
        ((20, 200, 40), "green"),
        ((20, 210, 220), "cyan"),
        ((30, 60, 235), "blue"),
        ((150, 30, 230), "purple"),
        ((225, 30, 225), "magenta"),
        ((250, 250, 245), "white"),
        ((120, 125, 118), "grey"),
        ((30, 10, 40), "black"),
    ],
)
def test_colour_family(rgb: tuple[int, int, int], family: str) -> None:
    assert colour_family(rgb) == family


def test_colour_family_follows_its_documented_bins() -> None:
    rng = np.random.default_rng(0)
    for rgb in rng.integers(0, 256, size=(300, 3)):
        h, s, v = colorsys.rgb_to_hsv(*(rgb / 255))
        family = colour_family(tuple(int(c) for c in rgb))
        if v < 0.25:
            assert family == "black"
        elif s < 0.25:
            assert family == ("white" if v > 0.8 else "grey")
        else:
            bins = [15, 45, 70, 165, 200, 255, 290, 340, 360]
            names = ["red", "orange", "yellow", "green", "cyan", "blue", "purple", "magenta", "red"]
            assert family == names[next(i for i, b in enumerate(bins) if h * 360 < b)]


def test_items_are_the_generators_scenes_with_exact_masks() -> None:
    data = zoo.concepts(60, seed=21)
    assert len(data) == 60
    box = np.zeros((96, 96), dtype=bool)
    top, left, bottom, right = mark_box(96)
    box[top:bottom, left:right] = True
    seen_marks = 0
    for i in range(60):
        image, masks = data[i]
        scene = data.scene(i)
        n_objects = len(scene.labels)
        mode = (
            "none"
            if scene.mark is None
            else ("correct" if scene.mark == scene.labels[0] else "swapped")
        )
        again = make_scene(21, i, n_objects=n_objects, mark=mode)
        assert np.array_equal(image, again.image)
        assert all(m.dtype == bool and m.shape == (96, 96) for m in masks.values())
        assert set(masks) <= set(CONCEPT_CATEGORIES)
        objects = np.zeros((96, 96), dtype=bool)
        for mask, name, colour in zip(scene.masks, scene.class_names, scene.colours, strict=True):
            assert np.array_equal(masks[name], mask)
            assert np.all(masks[colour_family(colour)][mask])
            # The pixels of a shape are its fill colour, give or take the noise.
            assert np.abs(image[mask].astype(float) - colour).max() <= NOISE_BOUND
            objects |= mask
        if scene.mark is None:
            assert MARK not in masks and not any(m in masks for m in MARKS)
        else:
            seen_marks += 1
            assert np.array_equal(masks[MARK], box)
            assert np.array_equal(masks[MARKS[scene.mark]], box)
            assert np.abs(image[box].astype(float) - MARK_COLOURS[scene.mark]).max() <= NOISE_BOUND
            objects |= box
        # Texture concepts cover exactly the background, lines and blobs may overlap.
        texture = np.zeros((96, 96), dtype=bool)
        for name in TEXTURES:
            if name in masks:
                assert not np.any(masks[name] & objects)
                texture |= masks[name]
        assert np.array_equal(texture, ~objects)
        _, lines, blobs = background_layers(21, i, n_objects=n_objects)
        assert np.array_equal(masks.get("background lines", np.zeros_like(lines)), lines & ~objects)
        assert np.array_equal(masks.get("background blobs", np.zeros_like(blobs)), blobs & ~objects)
    assert 10 < seen_marks < 50


def test_background_layers_replay_the_scene_background() -> None:
    for i in range(15):
        for n_objects in (1, 2):
            scene = make_scene(8, i, n_objects=n_objects)
            texture, lines, blobs = background_layers(8, i, n_objects=n_objects)
            outside = ~np.any(np.stack(scene.masks), axis=0)
            diff = np.abs(scene.image.astype(float) - np.clip(texture, 0, 255))[outside]
            assert diff.max() <= NOISE_BOUND
            assert lines.any() and blobs.any()
            # Another scene's background does not fit this one.
            other, _, _ = background_layers(8, i + 1, n_objects=n_objects)
            assert np.abs(scene.image.astype(float) - np.clip(other, 0, 255))[outside].max() > 30


def test_forced_labels_replay_too() -> None:
    scene = make_scene(3, 4, labels=[2])
    texture, _, _ = background_layers(3, 4, labels=[2])
    outside = ~scene.masks[0]
    assert (
        np.abs(scene.image.astype(float) - np.clip(texture, 0, 255))[outside].max() <= NOISE_BOUND
    )


def test_marks_are_independent_of_the_shape() -> None:
    data = zoo.concepts(900, seed=5, marks=1.0, two_objects=0.0)
    pairs = [(s.labels[0], s.mark) for s in (data.scene(i) for i in range(900))]
    assert all(mark is not None for _, mark in pairs)
    same = sum(label == mark for label, mark in pairs) / len(pairs)
    assert abs(same - 1 / 6) < 0.05  # a class-coloured mark only by chance
    colours = Counter(mark for _, mark in pairs)
    assert set(colours) == set(range(6)) and min(colours.values()) > 100


def test_rates_and_determinism() -> None:
    data = zoo.concepts(400, seed=9, marks=0.5, two_objects=0.25)
    scenes = [data.scene(i) for i in range(400)]
    two = sum(len(s.labels) == 2 for s in scenes) / 400
    marked = sum(s.mark is not None for s in scenes) / sum(len(s.labels) == 1 for s in scenes)
    assert abs(two - 0.25) < 0.07 and abs(marked - 0.5) < 0.08
    again = zoo.concepts(400, seed=9, marks=0.5, two_objects=0.25)
    image, masks = again[17]
    assert np.array_equal(image, data[17][0]) and masks.keys() == data[17][1].keys()
    assert not np.array_equal(image, zoo.concepts(400, seed=10)[17][0])
    assert len(data[3:6]) == 3 and np.array_equal(data[-1][0], data[399][0])
    assert len(list(zoo.concepts(4, seed=1))) == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": -1}, "n must be"),
        ({"seed": -2}, "seed must be"),
        ({"marks": 1.5}, "marks must be a probability"),
        ({"two_objects": -0.1}, "two_objects"),
    ],
)
def test_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    args: dict[str, float] = {"n": 3, "seed": 0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        zoo.concepts(**args)  # type: ignore[arg-type]


def test_bad_index() -> None:
    data = zoo.concepts(3, seed=0)
    with pytest.raises(IndexError, match="index 3 out of range"):
        data[3]
    with pytest.raises(TypeError, match="index must be an int"):
        data["0"]  # type: ignore[call-overload]
