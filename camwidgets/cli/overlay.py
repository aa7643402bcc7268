"""A Grad-CAM map drawn over the original picture, and the saved card: that overlay at a
readable size, with a title and a colour bar in the map's own values."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

# Share of the colour at the map's maximum; the picture shows through everywhere.
OPACITY = 0.6
# What the model did not see (outside a centre crop) is darkened by this factor.
DIM = 0.45


def jet(values: np.ndarray) -> np.ndarray:
    """The classic "jet" colour map: values in [0, 1] -> RGB floats in [0, 1] (..., 3)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25])  # red, green, blue peak positions
    rgb: np.ndarray = np.clip(1.5 - np.abs(4.0 * (v - centres)), 0.0, 1.0)
    return rgb


def overlay(picture: np.ndarray, heat: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Blend ``heat`` into ``picture``, dim what the model did not see and frame what it did.

    Args:
        picture: (H, W, 3) uint8, the original picture.
        heat: (H, W) non-negative map on the picture's pixels (not normalised).
        inside: (H, W) bool, the pixels the model saw.

    Returns:
        (H, W, 3) uint8. Colour and opacity grow with ``heat / heat.max()`` (display scaling
        only); an all-zero map leaves the picture as it is.
    """
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.shape[:2] != heat.shape:
        raise ValueError(f"picture {picture.shape} and map {heat.shape} do not match")
    top = float(heat.max()) if heat.size else 0.0
    level = heat / top if top > 0 else np.zeros_like(heat)
    alpha = (OPACITY * level)[..., None]
    pixels = picture.astype(np.float32) / 255.0
    blended = pixels * (1.0 - alpha) + jet(level) * alpha
    blended = np.where(inside[..., None], blended, pixels * DIM)
    if not inside.all():
        _frame(blended, inside)
    return np.round(np.clip(blended, 0.0, 1.0) * 255.0).astype(np.uint8)


def _frame(rgb: np.ndarray, inside: np.ndarray) -> None:
    """Draw a white line just outside the seen region, so the crop's edge is visible."""
    grown = inside.copy()
    width = max(1, round(min(inside.shape) / 200))
    for _ in range(width):
        grown[1:, :] |= grown[:-1, :].copy()
        grown[:-1, :] |= grown[1:, :].copy()
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
    rgb[grown & ~inside] = 1.0


# -- the saved picture: the overlay at a readable size, a colour bar and a title -------------

MIN_SIDE = 384
"""A picture whose longer side is shorter is scaled up by a whole factor (96 px -> 384 px), so
the saved overlay, its title and its colour bar can be read."""

UNITS = {
    "gradcam": "class-score units",
    "gradcam++": "class-score units",
    "xgradcam": "class-score units",
    "hirescam": "class-score units",
    "layercam": "class-score units",
    "cam": "class-score units",
    "guided-gradcam": "class-score units",
    "scorecam": "probability units",
}
"""What a map's values measure, per method (maps are Σ weight · activation: with gradient
weights, as the class score moves per unit of activation; Score-CAM weights are probabilities)."""


@dataclass(frozen=True)
class Card:
    """Where the parts of a saved overlay lie, in pixels of the card.

    Attributes:
        scale: each picture pixel is a ``scale`` x ``scale`` block of the map area.
        map_box: (top, left, bottom, right) of the map area, end-exclusive.
        bar_box: (top, left, bottom, right) of the colour bar's strip, end-exclusive; its top
            row is the map's maximum, its bottom row zero.
        size: (height, width) of the card.
        font: text size in pixels.
    """

    scale: int
    map_box: tuple[int, int, int, int]
    bar_box: tuple[int, int, int, int]
    size: tuple[int, int]
    font: int


def card_layout(height: int, width: int) -> Card:
    """Where a ``height`` x ``width`` picture's overlay, title and colour bar go."""
    scale = max(1, math.ceil(MIN_SIDE / max(height, width)))
    h, w = height * scale, width * scale
    font = int(min(28, max(14, round(max(h, w) / 30))))
    pad = font // 2
    title = 2 * font + pad  # two lines: what is explained, and the colour's meaning
    bar_w = max(14, font)
    labels = 8 * font  # tick labels and the bar's title and unit
    top = title + pad
    map_box = (top, pad, top + h, pad + w)
    bar_top = top + 3 * font  # room for the bar's title and unit above it
    bar_box = (bar_top, pad + w + 2 * pad, top + h, pad + w + 2 * pad + bar_w)
    size = (top + h + pad, bar_box[3] + pad + labels)
    return Card(scale, map_box, bar_box, size, font)


def overlay_card(
    picture: np.ndarray,
    heat: np.ndarray,
    inside: np.ndarray,
    title: str,
    method: str = "gradcam",
) -> np.ndarray:
    """The overlay at a readable size, a title and a colour bar in the map's own values.

    Args:
        picture, heat, inside: as for :func:`overlay`.
        title: what is explained (class, layer, method), written above the map.
        method: the engine method name, for the colour bar's unit.

    Returns:
        (H', W', 3) uint8; see :func:`card_layout` for where the parts lie.
    """
    from PIL import Image, ImageDraw, ImageFont

    blended = overlay(picture, heat, inside)
    layout = card_layout(*heat.shape)
    s = layout.scale
    card = Image.new("RGB", (layout.size[1], layout.size[0]), "white")
    top, left, _, right = layout.map_box
    card.paste(Image.fromarray(np.repeat(np.repeat(blended, s, axis=0), s, axis=1)), (left, top))
    draw = ImageDraw.Draw(card)
    font = ImageFont.load_default(size=layout.font)
    small = ImageFont.load_default(size=max(12, round(layout.font * 0.8)))
    pad = layout.font // 2
    peak = float(heat[inside].max()) if inside.any() else 0.0
    draw.text((left, pad), _fit(draw, title, font, right - left), fill="black", font=font)
    note = "colour and opacity grow with the value (0: none)"
    draw.text((left, pad + layout.font + 2), _fit(draw, note, small, right - left), fill="#555",
              font=small)  # fmt: skip
    # The bar: the top row is the map's maximum, the bottom row zero, in jet as on the map.
    b_top, b_left, b_bottom, b_right = layout.bar_box
    rows = b_bottom - b_top
    levels = 1.0 - np.arange(rows) / max(rows - 1, 1)
    strip = np.round(jet(levels) * 255).astype(np.uint8)[:, None, :]
    card.paste(Image.fromarray(np.repeat(strip, b_right - b_left, axis=1)), (b_left, b_top))
    draw.rectangle((b_left - 1, b_top - 1, b_right, b_bottom), outline="#333")
    unit = UNITS.get(method, "map units")
    draw.text((b_left, b_top - 3 * layout.font), "map value", fill="black", font=small)
    draw.text((b_left, b_top - 2 * layout.font), unit, fill="#555", font=small)
    for fraction in (1.0, 0.5, 0.0):
        y = b_top + round((1.0 - fraction) * (rows - 1))
        draw.line((b_right, y, b_right + 4, y), fill="#333")
        label = f"{fraction * peak:.3g}" if peak > 0 else ("0" if fraction == 0 else "–")
        draw.text((b_right + 6, y), label, fill="black", font=small, anchor="lm")
    return np.asarray(card)


def _fit(draw: Any, text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
