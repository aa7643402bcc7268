"""The compare view as a PNG drawn with numpy and PIL (no browser): what notebooks converted
to HTML, previews and viewers without widgets show beside the live panel."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .compare import DIFF_COLORSCALE, CompareView
from .static import colorize, plain

SIDE = 300
GAP = 16
TITLE = 40


def _picture(picture: np.ndarray | str) -> np.ndarray:
    """(H, W, 3) uint8 pixels from an array or a PNG data URI."""
    if isinstance(picture, np.ndarray):
        return picture
    import base64

    data = base64.b64decode(picture.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def render_compare_png(view: CompareView) -> bytes:
    """Each model's map over the picture on the shared range, then the signed difference."""
    picture = _picture(view.picture).astype(np.float64)
    zmax = view.zmax
    tiles: list[tuple[str, np.ndarray]] = []
    for name, heat in zip(view.names, view.heatmaps, strict=True):
        coloured = colorize(heat, 0.0, zmax, view.colorscale).astype(np.float64)
        mixed = (1 - view.opacity) * picture + view.opacity * coloured
        tiles.append((name, mixed))
    a, b = view.pair
    diff = colorize(view.difference, -zmax, zmax, DIFF_COLORSCALE).astype(np.float64)
    tiles.append((f"{view.names[a]} - {view.names[b]}", 0.25 * picture + 0.75 * diff))
    width = len(tiles) * (SIDE + GAP) + GAP
    canvas = Image.new("RGB", (width, SIDE + TITLE + GAP), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    caption = plain(view.caption).replace("\u2212", "-")
    draw.text((GAP, 4), caption[:160], fill="black", font=font)
    for index, (label, rgb) in enumerate(tiles):
        left = GAP + index * (SIDE + GAP)
        tile = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
        tile = tile.resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        canvas.paste(tile, (left, TITLE))
        draw.text((left, TITLE - 18), label, fill="black", font=font)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
