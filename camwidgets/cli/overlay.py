"""A Grad-CAM map drawn over the original picture, at the picture's own resolution."""

from __future__ import annotations

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
