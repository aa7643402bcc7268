"""Concept data from the scene generator: every scene with exact masks of what it shows.

The generator knows, per pixel, which shape covers it, the colour that shape was painted in, the
kind of background texture under it and whether it belongs to the corner mark. That makes a
labelled concept dataset for network dissection, offline:

* shapes: ``circle``, ``square``, ``triangle``, ``star``, ``cross``, ``ring`` (the object masks);
* colour families of the objects' fill colours: ``red``, ``orange``, ``yellow``, ``green``,
  ``cyan``, ``blue``, ``purple``, ``magenta``, ``white``, ``grey``, ``black``;
* background texture kinds: ``background lines`` (the faint lines), ``background blobs``
  (where a soft blob is strong) and ``plain background`` (the smooth colour field elsewhere);
* ``corner mark``: the small square of the shortcut data, drawn on part of the scenes in a
  colour chosen independently of the shape (so the concept is the mark, not a class), and the
  mark of each colour: ``red corner mark``, ``green corner mark``, ``blue corner mark``,
  ``yellow corner mark``, ``magenta corner mark``, ``cyan corner mark`` (the shortcut model's
  channels detect one colour of mark each).

Each item is ``(image, masks)``: an RGB uint8 (H, W, 3) picture and a dict of bool (H, W)
masks, one per concept present in it, the format :func:`camwidgets.naming.dissect` takes.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterator, Sequence
from typing import overload

import numpy as np

from camwidgets.zoo.scenes import (
    MARK_COLOURS,
    SHAPE_CLASSES,
    MarkMode,
    Scene,
    background_layers,
    make_scene,
    mark_box,
)

__all__ = [
    "COLOUR_FAMILIES",
    "CONCEPT_CATEGORIES",
    "MARK",
    "MARKS",
    "TEXTURES",
    "ConceptScenes",
    "colour_family",
    "concepts",
]

COLOUR_FAMILIES: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "magenta",
    "white",
    "grey",
    "black",
)
TEXTURES: tuple[str, ...] = ("background lines", "background blobs", "plain background")
MARK = "corner mark"

"""Every concept the zoo data can contain, with its category, in a fixed order."""

# Hue boundaries in degrees: (upper bound, family); red wraps around 360.
_HUES: tuple[tuple[float, str], ...] = (
    (15, "red"),
    (45, "orange"),
    (70, "yellow"),
    (165, "green"),
    (200, "cyan"),
    (255, "blue"),
    (290, "purple"),
    (340, "magenta"),
    (360, "red"),
)


def colour_family(rgb: Sequence[int]) -> str:
    """The colour family of an RGB colour (0-255 per channel).

    Dark colours (HSV value < 0.25) are ``black``; unsaturated ones (saturation < 0.25) are
    ``white`` (value > 0.8) or ``grey``; the rest are named by hue: red < 15 deg <= orange < 45
    <= yellow < 70 <= green < 165 <= cyan < 200 <= blue < 255 <= purple < 290 <= magenta < 340
    <= red.

    >>> colour_family((230, 25, 25)), colour_family((128, 128, 128)), colour_family((20, 10, 5))
    ('red', 'grey', 'black')
    """
    if len(rgb) != 3:
        raise ValueError(f"rgb needs three components, got {len(rgb)}")
    r, g, b = (float(v) / 255.0 for v in rgb)
    hue, saturation, value = colorsys.rgb_to_hsv(r, g, b)
    if value < 0.25:
        return "black"
    if saturation < 0.25:
        return "white" if value > 0.8 else "grey"
    degrees = hue * 360.0
    return next(family for bound, family in _HUES if degrees < bound)


MARKS: tuple[str, ...] = tuple(f"{colour_family(c)} corner mark" for c in MARK_COLOURS)
"""The mark of each colour, index-aligned with ``MARK_COLOURS`` (and the shape classes)."""

CONCEPT_CATEGORIES: dict[str, str] = {
    **{name: "shape" for name in SHAPE_CLASSES},
    **{name: "colour" for name in COLOUR_FAMILIES},
    **{name: "texture" for name in TEXTURES},
    MARK: "mark",
    **{name: "mark" for name in MARKS},
}
"""Every concept the zoo data can contain, with its category, in a fixed order."""


class ConceptScenes(Sequence[tuple[np.ndarray, dict[str, np.ndarray]]]):
    """``n`` generated scenes with concept masks; item ``i`` is always the same.

    Scene ``i`` has two objects with probability ``two_objects``; a one-object scene carries
    the corner mark with probability ``marks``, its colour drawn uniformly from the six mark
    colours, independently of the shape. These choices come from their own random stream, so
    the pictures are exactly :func:`camwidgets.zoo.make_scene`'s.

    Args:
        n: number of scenes.
        seed: collection seed; use one the models were neither trained nor measured on
            (the shipped models were trained on collection 0).
        size: image side in pixels.
        marks: probability that a one-object scene has a corner mark.
        two_objects: probability of a two-object scene.

    Attributes:
        concept_names: every concept the data can contain, in a fixed order.
        categories: concept -> category (shape, colour, texture, mark).
    """

    concept_names: tuple[str, ...] = tuple(CONCEPT_CATEGORIES)
    categories: dict[str, str] = CONCEPT_CATEGORIES

    def __init__(
        self, n: int, seed: int, *, size: int = 96, marks: float = 0.75, two_objects: float = 0.3
    ) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        for name, value in (("marks", marks), ("two_objects", two_objects)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        self.n = n
        self.seed = seed
        self.size = size
        self.marks = marks
        self.two_objects = two_objects

    def __len__(self) -> int:
        return self.n

    def _layout(self, index: int) -> tuple[int, MarkMode]:
        """Objects and mark mode of scene ``index``, from a stream of their own."""
        rng = np.random.default_rng([self.seed, index, 104729])
        n_objects = 2 if rng.random() < self.two_objects else 1
        with_mark = rng.random() < self.marks
        # "correct" 1 time in 6, else "swapped" (uniform over the other five): the mark's
        # colour is uniform over all six, whatever the shape.
        correct = rng.integers(len(SHAPE_CLASSES)) == 0
        if n_objects == 2 or not with_mark:
            return n_objects, "none"
        return 1, "correct" if correct else "swapped"

    def scene(self, index: int) -> Scene:
        """The full generated scene behind item ``index``."""
        index = self._index(index)
        n_objects, mark = self._layout(index)
        return make_scene(self.seed, index, n_objects=n_objects, size=self.size, mark=mark)

    def masks(self, index: int) -> dict[str, np.ndarray]:
        """Concept name -> bool (H, W) mask, for the concepts present in scene ``index``."""
        index = self._index(index)
        n_objects, _ = self._layout(index)
        scene = self.scene(index)
        return _concept_masks(scene, self.seed, index, n_objects, self.size)

    @overload
    def __getitem__(self, index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[np.ndarray, dict[str, np.ndarray]]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> (
        tuple[np.ndarray, dict[str, np.ndarray]]
        | Sequence[tuple[np.ndarray, dict[str, np.ndarray]]]
    ):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.n))]
        index = self._index(index)
        n_objects, _ = self._layout(index)
        scene = self.scene(index)
        return scene.image, _concept_masks(scene, self.seed, index, n_objects, self.size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
        return (self[i] for i in range(self.n))

    def __repr__(self) -> str:
        return (
            f"ConceptScenes(n={self.n}, seed={self.seed}, size={self.size}, marks={self.marks}, "
            f"two_objects={self.two_objects})"
        )

    def _index(self, index: int) -> int:
        """Validate an item index (negative ones count from the end)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        i = int(index) + (self.n if index < 0 else 0)
        if not 0 <= i < self.n:
            raise IndexError(f"index {index} out of range for {self.n} scenes")
        return i


def _concept_masks(
    scene: Scene, seed: int, index: int, n_objects: int, size: int
) -> dict[str, np.ndarray]:
    """Every concept present in the scene, as bool masks; painted order decides overlaps."""
    masks: dict[str, np.ndarray] = {}
    covered = np.zeros((size, size), dtype=bool)
    for mask, name, colour in zip(scene.masks, scene.class_names, scene.colours, strict=True):
        masks[name] = masks.get(name, np.zeros_like(mask)) | mask
        family = colour_family(colour)
        masks[family] = masks.get(family, np.zeros_like(mask)) | mask
        covered |= mask
    if scene.mark is not None:
        top, left, bottom, right = mark_box(size)
        mark = np.zeros((size, size), dtype=bool)
        mark[top:bottom, left:right] = True
        masks[MARK] = mark
        masks[MARKS[scene.mark]] = mark
        covered |= mark
    _, lines, blobs = background_layers(seed, index, n_objects=n_objects, size=size)
    background = ~covered
    for name, mask in (
        ("background lines", lines & background),
        ("background blobs", blobs & background),
        ("plain background", background & ~lines & ~blobs),
    ):
        if mask.any():
            masks[name] = mask
    # Keep the documented concept order, whatever order objects were painted in.
    return {name: masks[name] for name in CONCEPT_CATEGORIES if name in masks}


def concepts(
    n: int, seed: int = 0, *, size: int = 96, marks: float = 0.75, two_objects: float = 0.3
) -> ConceptScenes:
    """A concept dataset of ``n`` generated scenes, offline, for network dissection.

    Example:
        >>> from camwidgets import zoo
        >>> data = zoo.concepts(10, seed=21)
        >>> image, masks = data[0]
        >>> image.shape, sorted(masks)[:2]  # doctest: +SKIP
        ((96, 96, 3), ['background blobs', 'background lines'])

    Args:
        n: number of scenes.
        seed: collection seed (pick one distinct from your evaluation scenes).
        size: image side in pixels.
        marks: probability that a one-object scene carries a corner mark.
        two_objects: probability of a two-object scene.

    Returns:
        A :class:`ConceptScenes` sequence of ``(image, {concept: bool mask})``.
    """
    return ConceptScenes(n, seed, size=size, marks=marks, two_objects=two_objects)
