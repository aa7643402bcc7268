"""Seeded synthetic scenes: coloured shapes on textured backgrounds, with exact masks.

Every scene is a pure function of ``(seed, index, n_objects)``, so datasets need no storage and
a test can regenerate exactly the pictures a model was trained or measured on. The corner mark
(for the shortcut model) is drawn from a separate random stream, so the same scene can be had
with the correct mark, a swapped mark or no mark at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

__all__ = [
    "MARK_COLOURS",
    "MEAN",
    "SHAPE_CLASSES",
    "STD",
    "MarkMode",
    "Scene",
    "ShapesDataset",
    "background_layers",
    "make_scene",
    "mark_box",
    "shape_mask",
    "to_tensor",
]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")

# One saturated colour per class for the shortcut mark; index-aligned with SHAPE_CLASSES.
MARK_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 25),
    (25, 200, 40),
    (30, 60, 235),
    (245, 220, 20),
    (225, 30, 225),
    (20, 215, 225),
)

# Per-channel statistics of the generated images (measured on 500 scenes: mean 0.50, std 0.20),
# rounded, so normalised inputs are roughly zero-mean and unit-variance.
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.2, 0.2, 0.2)

MarkMode = Literal["none", "correct", "swapped"]

NOISE_STD = 6.0
"""Standard deviation of the per-pixel noise, in 0-255 units; clipped at three of them."""

_MIN_CONTRAST = 100.0  # Euclidean RGB distance between a shape and the background under it.


@dataclass(frozen=True, eq=False)
class Scene:
    """One generated picture and its ground truth.

    Attributes:
        image: RGB, uint8, (H, W, 3).
        masks: one boolean (H, W) mask per object: the pixels painted in its colour.
        labels: class index per object, aligned with ``masks``.
        class_names: class name per object.
        colours: the RGB fill colour of each object (before noise).
        mark: class index of the corner mark drawn, or ``None`` when there is none.
    """

    image: np.ndarray
    masks: tuple[np.ndarray, ...]
    labels: tuple[int, ...]
    class_names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    mark: int | None = None


def mark_box(size: int = 96) -> tuple[int, int, int, int]:
    """Pixel box ``(top, left, bottom, right)`` (end-exclusive) of the top-left corner mark."""
    side = max(2, round(size / 16))
    offset = max(1, round(size / 32))
    return offset, offset, offset + side, offset + side


def _polygon(label: int, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape with circumradius about ``r``, rotated by ``angle``."""
    name = SHAPE_CLASSES[label]
    if name in ("square", "triangle", "star"):
        # Unit-circumradius vertices; the star alternates outer and inner points.
        count, first, radii = {
            "square": (4, math.pi / 4, (1.0,)),
            "triangle": (3, -math.pi / 2, (1.0,)),
            "star": (10, -math.pi / 2, (1.0, 0.42)),
        }[name]
        pts = [
            (radii[k % len(radii)] * math.cos(a), radii[k % len(radii)] * math.sin(a))
            for k, a in ((k, first + 2 * math.pi * k / count) for k in range(count))
        ]
    elif name == "cross":
        w = 0.32
        pts = [(w, 1), (w, w), (1, w), (1, -w), (w, -w), (w, -1),
               (-w, -1), (-w, -w), (-1, -w), (-1, w), (-w, w), (-w, 1)]  # fmt: skip
    else:
        raise ValueError(f"{name!r} is not a polygon")
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in pts]


def shape_mask(label: int, cx: float, cy: float, r: float, angle: float, size: int) -> np.ndarray:
    """Boolean (size, size) mask of one shape.

    Args:
        label: index into ``SHAPE_CLASSES``.
        cx: centre column, in pixels.
        cy: centre row, in pixels.
        r: circumradius in pixels (every shape stays within about ``1.05 * r`` of the centre).
        angle: rotation in radians (ignored by the round shapes).
        size: side of the square canvas.
    """
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    name = SHAPE_CLASSES[label]
    if name in ("circle", "ring"):
        outer = 0.85 * r if name == "circle" else 0.95 * r
        draw.ellipse((cx - outer, cy - outer, cx + outer, cy + outer), fill=255)
        if name == "ring":
            inner = 0.5 * r
            draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    else:
        draw.polygon(_polygon(label, cx, cy, r, angle), fill=255)
    # No anti-aliasing on purpose: a pixel is either the shape's colour or background, so the
    # mask is exact ground truth.
    return np.asarray(canvas) > 0


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Float (size, size, 3) texture: a smooth colour field plus faint lines and blobs."""
    return _background_layers(rng, size)[0]


def _background_layers(
    rng: np.random.Generator, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The background texture, and where its lines are and where its blobs stand out.

    Returns ``(texture, lines, blobs)``: the float (size, size, 3) texture of ``_background``
    (same random draws, same numbers), a bool mask of the pixels any faint line was drawn on,
    and a bool mask of the pixels where some blob's bump exceeds half its peak (within about
    1.18 sigma of its centre).
    """
    # A random base colour varied smoothly by up to +-50 per channel: clearly textured, yet
    # calmer than the shapes, which must stand out from it.
    cells = int(rng.integers(2, 5))
    base = rng.uniform(60, 195, size=3)
    grid = np.clip(base + rng.uniform(-50, 50, size=(cells, cells, 3)), 0, 255).astype(np.uint8)
    smooth = Image.fromarray(grid, "RGB").resize((size, size), Image.Resampling.BICUBIC)
    bg = np.asarray(smooth, dtype=np.float64).copy()

    lines = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(lines)
    line_mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0, x1, y1 = rng.uniform(-0.2 * size, 1.2 * size, size=4)
        draw.line((x0, y0, x1, y1), fill=255, width=int(rng.integers(1, 3)))
        # Each line gets its own faint tint; accumulate line by line.
        hit = np.asarray(lines) > 0
        bg[hit] += rng.uniform(-25, 25, size=3)
        line_mask |= hit
        draw.rectangle((0, 0, size, size), fill=0)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    blob_mask = np.zeros((size, size), dtype=bool)
    for _ in range(int(rng.integers(2, 5))):
        bx, by = rng.uniform(0, size, size=2)
        sigma = rng.uniform(0.04, 0.12) * size
        amp = rng.uniform(-25, 25, size=3)
        bump = np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * sigma**2))
        bg += bump[..., None] * amp
        blob_mask |= bump > 0.5
    return bg, line_mask, blob_mask


def background_layers(
    seed: int,
    index: int = 0,
    *,
    n_objects: int = 1,
    size: int = 96,
    labels: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The background of ``make_scene(seed, index, ...)`` before shapes, mark and noise.

    Replays the first draws of the scene's random stream, so it needs the same ``seed``,
    ``index``, ``n_objects``, ``size`` and ``labels`` as the :func:`make_scene` call (the mark
    does not matter: it has its own stream).

    Returns:
        ``(texture, lines, blobs)``: the float (size, size, 3) texture, a bool mask of the pixels
        the faint lines were drawn on, and a bool mask of where the soft blobs are strong (each
        blob's bump above half its peak). Shapes and the mark are painted over them later.
    """
    rng = np.random.default_rng([seed, index, n_objects])
    if labels is None:
        rng.choice(len(SHAPE_CLASSES), size=n_objects, replace=False)
    return _background_layers(rng, size)


def _place(
    rng: np.random.Generator,
    radii: Sequence[float],
    size: int,
    avoid: tuple[int, int, int, int],
) -> list[tuple[float, float]]:
    """Centres for disks of the given radii: inside the canvas, apart, clear of ``avoid``."""
    top, left, bottom, right = avoid
    gap = 0.05 * size
    for _ in range(200):
        centres: list[tuple[float, float]] = []
        for r in radii:
            reach = 1.08 * r + 1
            cx, cy = rng.uniform(reach, size - reach, size=2)
            # Distance from the centre to the nearest point of the mark box.
            dx = max(left - cx, 0.0, cx - right)
            dy = max(top - cy, 0.0, cy - bottom)
            if math.hypot(dx, dy) < reach + 2:
                break
            if any(math.hypot(cx - ox, cy - oy) < reach + 1.08 * orr + 1 + gap
                   for (ox, oy), orr in zip(centres, radii, strict=False)):  # fmt: skip
                break
            centres.append((float(cx), float(cy)))
        if len(centres) == len(radii):
            return centres
    raise RuntimeError(f"could not place shapes of radii {list(radii)} in a {size}px scene")


def _colour(rng: np.random.Generator, under: np.ndarray) -> tuple[int, int, int]:
    """A random fill colour that stands out from the mean background colour ``under``."""
    for _ in range(100):
        colour = rng.integers(0, 256, size=3)
        if np.linalg.norm(colour - under) >= _MIN_CONTRAST:
            return int(colour[0]), int(colour[1]), int(colour[2])
    far = np.where(under < 128, 255, 0)  # the opposite corner of the RGB cube is always far
    return int(far[0]), int(far[1]), int(far[2])


def make_scene(
    seed: int,
    index: int = 0,
    *,
    n_objects: int = 1,
    size: int = 96,
    mark: MarkMode = "none",
    labels: Sequence[int] | None = None,
) -> Scene:
    """Generate one scene, deterministically from ``(seed, index, n_objects)``.

    Args:
        seed: seed of the whole collection (non-negative).
        index: which scene of the collection (non-negative).
        n_objects: 1 or 2; two objects always have different classes and never touch.
        size: side of the square image, in pixels.
        mark: draw the class-specific corner mark of the (single) object's class ("correct"),
            of another class ("swapped"), or none. The scene itself does not change with it.
        labels: force the classes instead of drawing them at random.

    Returns:
        The scene, with one mask per object.
    """
    if n_objects not in (1, 2):
        raise ValueError(f"n_objects must be 1 or 2, got {n_objects}")
    if mark not in ("none", "correct", "swapped"):
        raise ValueError(f"mark must be 'none', 'correct' or 'swapped', got {mark!r}")
    if mark != "none" and n_objects != 1:
        raise ValueError("corner marks are only defined for single-object scenes")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    n_classes = len(SHAPE_CLASSES)
    rng = np.random.default_rng([seed, index, n_objects])

    if labels is None:
        chosen = [int(c) for c in rng.choice(n_classes, size=n_objects, replace=False)]
    else:
        chosen = [int(c) for c in labels]
        if len(chosen) != n_objects or len(set(chosen)) != n_objects:
            raise ValueError(f"need {n_objects} distinct labels, got {list(labels)}")
        if not all(0 <= c < n_classes for c in chosen):
            raise ValueError(f"labels must be in 0..{n_classes - 1}, got {list(labels)}")

    bg = _background(rng, size)
    lo, hi = (0.15, 0.31) if n_objects == 1 else (0.11, 0.2)
    radii = [float(rng.uniform(lo, hi) * size) for _ in chosen]
    angles = [float(rng.uniform(0, 2 * math.pi)) for _ in chosen]
    box = mark_box(size)
    centres = _place(rng, radii, size, box)

    image = bg.copy()
    masks: list[np.ndarray] = []
    colours: list[tuple[int, int, int]] = []
    for label, r, angle, (cx, cy) in zip(chosen, radii, angles, centres, strict=True):
        mask = shape_mask(label, cx, cy, r, angle, size)
        colour = _colour(rng, bg[mask].mean(axis=0))
        image[mask] = colour
        masks.append(mask)
        colours.append(colour)

    noise = np.clip(rng.normal(0.0, NOISE_STD, size=image.shape), -3 * NOISE_STD, 3 * NOISE_STD)
    mark_label: int | None = None
    if mark != "none":
        # A separate stream keeps the scene identical whichever mark is drawn.
        mark_rng = np.random.default_rng([seed, index, n_objects, 1])
        offset = int(mark_rng.integers(1, n_classes))
        mark_label = chosen[0] if mark == "correct" else (chosen[0] + offset) % n_classes
        top, left, bottom, right = box
        image[top:bottom, left:right] = MARK_COLOURS[mark_label]
    pixels = np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)
    return Scene(
        image=pixels,
        masks=tuple(masks),
        labels=tuple(chosen),
        class_names=tuple(SHAPE_CLASSES[c] for c in chosen),
        colours=tuple(colours),
        mark=mark_label,
    )


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> normalised float32 (3, H, W); same numbers as the zoo's transform."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
    mean = torch.tensor(MEAN).view(3, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1)
    return (x - mean) / std


class ShapesDataset(Dataset[tuple[torch.Tensor, int]]):
    """Single-object scenes, generated on the fly: item ``i`` is always the same picture.

    Args:
        n: number of scenes.
        seed: seed of the collection; use different seeds for training and held-out data.
        size: side of the images, in pixels.
        mark: corner-mark mode, see :func:`make_scene`.
    """

    def __init__(self, n: int, seed: int, *, size: int = 96, mark: MarkMode = "none") -> None:
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        self.n = n
        self.seed = seed
        self.size = size
        self.mark: MarkMode = mark

    def __len__(self) -> int:
        return self.n

    def scene(self, index: int) -> Scene:
        """The full scene (image, mask, label) behind item ``index``."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} scenes")
        return make_scene(self.seed, index, size=self.size, mark=self.mark)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        scene = self.scene(index)
        return to_tensor(scene.image), scene.labels[0]
