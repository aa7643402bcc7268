"""The panel view as a static PNG, drawn with numpy and PIL: no browser, no Kaleido.

Used for ``Explorer.save_png`` and for the picture that sits beside the widget in the panel's
mime bundle (so converted notebooks, previews and GitHub show the panel). It draws the same
``PanelView`` as the interactive figure, with the same colour ranges and words: the caption
(class, prediction, layer, method, counterfactual), the heat map over the picture, the coarse
map, channel k's A^k and alpha_k A^k, each with a colour bar, and the weight bars.
"""

from __future__ import annotations

import html
import io
import re
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from plotly.colors import get_colorscale, hex_to_rgb, unlabel_rgb

from .panel import COUNTERFACTUAL_PAPER, NORMAL_PAPER, WARNING_COLOR, PanelView
from .part import COUNTERFACTUAL_COLOR, NORMAL_COLOR
from .scales import magnitude, positive_range
from .weights import NEGATIVE, POSITIVE, top_channels

WIDTH = 1480
SIDE = 260  # each map's side in pixels
FontT = ImageFont.FreeTypeFont | ImageFont.ImageFont


# Fonts with Greek letters (α, Σ) and ×: the system's DejaVu Sans, or the copy matplotlib
# ships; otherwise PIL's own font, which lacks them, and the words are spelled out instead.
_FONT_FILES = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
_SPELLED = str.maketrans({"α": "alpha ", "Σ": "sum ", "×": "x", "·": "-", "…": "..."})


@lru_cache(maxsize=1)
def _font_file() -> str | None:
    """A TrueType font with Greek letters, if this machine has one."""
    import importlib.util
    from pathlib import Path

    candidates = list(_FONT_FILES)
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        candidates.append(str(Path(spec.origin).parent / "mpl-data/fonts/ttf/DejaVuSans.ttf"))
    for candidate in candidates:
        try:
            ImageFont.truetype(candidate, 12)
        except OSError:
            continue
        return candidate
    return None


@lru_cache(maxsize=8)
def _font(size: int) -> FontT:
    found = _font_file()
    if found is not None:
        return ImageFont.truetype(found, size)
    try:
        return ImageFont.load_default(size=size)  # a scalable font (Pillow >= 10.1)
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _t(text: str) -> str:
    """``text`` as the font can write it."""
    return text if _font_file() is not None else text.translate(_SPELLED)


@lru_cache(maxsize=16)
def colormap(name: str) -> np.ndarray:
    """A (256, 3) uint8 lookup table for a plotly colour-scale name (``_r`` reverses)."""
    stops = get_colorscale(name)
    positions = np.array([float(p) for p, _ in stops])
    colors = np.array([_rgb(c) for _, c in stops], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, positions, colors[:, i]) for i in range(3)], axis=1)
    return np.clip(np.round(table), 0, 255).astype(np.uint8)


def _rgb(color: str) -> tuple[float, float, float]:
    if color.startswith("#"):
        r, g, b = hex_to_rgb(color)
        return float(r), float(g), float(b)
    r, g, b = unlabel_rgb(color)[:3]
    return float(r), float(g), float(b)


def colorize(values: np.ndarray, low: float, high: float, name: str) -> np.ndarray:
    """Values mapped through the colour scale over [low, high] (clipped), as (h, w, 3) uint8."""
    span = high - low if high > low else 1.0
    index = np.clip((values.astype(np.float64) - low) / span, 0.0, 1.0)
    lut = colormap(name)
    return lut[np.round(index * 255).astype(np.int64)]


def plain(text: str) -> str:
    """Plotly's HTML subset as plain text: ``α<sub>k</sub>`` -> ``α_k``, ``<br>`` -> newline."""
    text = re.sub(r"<br\s*/?>", "\n", text)
    text = re.sub(r"<sub>(.*?)</sub>", r"_\1", text)
    text = re.sub(r"<sup>(.*?)</sup>", r"^\1", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def _picture(view: PanelView) -> np.ndarray:
    """The picture as (H, W, 3) uint8 (decoding a PNG data URI if that is what the view has)."""
    if isinstance(view.picture, np.ndarray):
        return view.picture
    import base64

    data = base64.b64decode(view.picture.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _fit(rgb: np.ndarray, side: int, smooth: bool) -> Image.Image:
    """An RGB array scaled to fit a ``side`` square (aspect kept)."""
    image = Image.fromarray(rgb)
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST)


def render_png(view: PanelView) -> bytes:
    """The view as PNG bytes (about 1400 x 800 pixels)."""
    return _encode(render(view))


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def render(view: PanelView) -> Image.Image:
    """The view as a PIL image."""
    paper = COUNTERFACTUAL_PAPER if view.counterfactual else NORMAL_PAPER
    ink = COUNTERFACTUAL_COLOR if view.counterfactual else NORMAL_COLOR
    header = 64
    map_top = header + 52
    bars_top = map_top + SIDE + 64
    height = bars_top + 300
    canvas = Image.new("RGB", (WIDTH, height), paper)
    draw = ImageDraw.Draw(canvas)
    caption = plain(view.caption) or "Grad-CAM"
    draw.multiline_text((WIDTH // 2, 14), _t(caption), fill=ink, font=_font(17), anchor="ma")

    channel = view.shown_channel
    shared = "shared" if view.shared else ""
    gap = (WIDTH - 40 - 4 * (SIDE + 84)) // 3
    lefts = [20 + i * (SIDE + 84 + gap) for i in range(4)]

    # 1. heat map over the picture.
    picture = _picture(view)
    top = positive_range(view.heat_max if view.heat_max is not None else float(view.heatmap.max()))
    heat = colorize(view.heatmap, 0.0, top, view.colorscale)
    blend = picture.astype(np.float64) * (1 - view.opacity) + heat * view.opacity
    overlay = blend.round().astype(np.uint8) if picture.shape == heat.shape else heat
    mode = "counterfactual " if view.counterfactual else ""
    title = f"{mode}heat map · ReLU, {view.heatmap.shape[0]}×{view.heatmap.shape[1]}"
    if view.guided is not None:
        overlay = view.guided
        title = f"{mode}Guided Grad-CAM · guided backprop × heat map"
    _map(canvas, lefts[0], map_top, _fit(overlay, SIDE, True), title, ink)
    _colorbar(canvas, lefts[0] + SIDE + 6, map_top, 0.0, top, view.colorscale, _bar("heat", shared))
    note = view.heat_note
    if note is not None:
        draw.text(
            (lefts[0] + SIDE // 2, map_top + SIDE + 8),
            _t(note),
            fill=WARNING_COLOR,
            font=_font(12),
            anchor="ma",
        )

    # 2. the coarse map; 3. A^k; 4. alpha_k A^k.
    span = positive_range(view.coarse_max or magnitude(view.coarse))
    coarse = colorize(view.coarse, -span, span, "RdBu_r")
    h, w = view.coarse.shape
    _map(canvas, lefts[1], map_top, _fit(coarse, SIDE, False), f"coarse Σ α_k A^k · {h}×{w}", ink)
    if max(h, w) <= 10:
        _cell_values(canvas, lefts[1], map_top, view.coarse)
    _colorbar(canvas, lefts[1] + SIDE + 6, map_top, -span, span, "RdBu_r", _bar("Σ α·A", shared))
    activation = view.activations[channel]
    low, high = float(activation.min()), float(activation.max())
    name = view.names[channel] if view.names else ""
    label = f"activation A^{channel}" + (f" · {name}" if name else "")
    _map(
        canvas,
        lefts[2],
        map_top,
        _fit(colorize(activation, low, high, "Viridis"), SIDE, False),
        label,
        ink,
    )
    _colorbar(canvas, lefts[2] + SIDE + 6, map_top, low, high, "Viridis", "A")
    alpha = float(view.weights[channel])
    contribution = alpha * activation
    span = positive_range(view.contribution_max or magnitude(contribution))
    _map(
        canvas,
        lefts[3],
        map_top,
        _fit(colorize(contribution, -span, span, "RdBu_r"), SIDE, False),
        f"contribution α_{channel} A^{channel} · α = {alpha:.3g}",
        ink,
    )
    _colorbar(canvas, lefts[3] + SIDE + 6, map_top, -span, span, "RdBu_r", _bar("α·A", shared))

    # 5. the weight bars.
    _bars(canvas, bars_top, view, channel, ink)
    return canvas


def _bar(title: str, shared: str) -> str:
    return f"{title} · {shared}" if shared else title


def _map(
    canvas: Image.Image, left: int, top: int, image: Image.Image, title: str, ink: str
) -> None:
    """A map centred in its square with its title above."""
    draw = ImageDraw.Draw(canvas)
    x = left + (SIDE - image.width) // 2
    y = top + (SIDE - image.height) // 2
    canvas.paste(image, (x, y))
    draw.rectangle((x - 1, y - 1, x + image.width, y + image.height), outline="#999999")
    draw.multiline_text(
        (left + SIDE // 2, top - 10), _t(title), fill=ink, font=_font(14), anchor="md"
    )


def _cell_values(canvas: Image.Image, left: int, top: int, coarse: np.ndarray) -> None:
    """The coarse map's values written on its cells (small grids only, as in the widget)."""
    draw = ImageDraw.Draw(canvas)
    h, w = coarse.shape
    cell = SIDE / max(h, w)
    x0 = left + (SIDE - cell * w) / 2
    y0 = top + (SIDE - cell * h) / 2
    span = magnitude(coarse) or 1.0
    for r in range(h):
        for c in range(w):
            value = float(coarse[r, c])
            ink = "white" if abs(value) > 0.6 * span else "#222222"
            center = (x0 + (c + 0.5) * cell, y0 + (r + 0.5) * cell)
            draw.text(center, f"{value:.2g}", fill=ink, font=_font(11), anchor="mm")


def _colorbar(
    canvas: Image.Image, left: int, top: int, low: float, high: float, name: str, title: str
) -> None:
    """A vertical colour bar with three tick labels and its title beside it."""
    draw = ImageDraw.Draw(canvas)
    ramp = np.linspace(high, low, SIDE)[:, None] * np.ones((1, 12))
    canvas.paste(Image.fromarray(colorize(ramp, low, high, name)), (left, top))
    for value, y in ((high, top), ((low + high) / 2, top + SIDE // 2), (low, top + SIDE - 1)):
        draw.line((left + 12, y, left + 15, y), fill="#444444")
        draw.text((left + 18, y), _t(f"{value:.3g}"), fill="#222222", font=_font(11), anchor="lm")
    label = Image.new("RGBA", (SIDE, 16), (0, 0, 0, 0))
    ImageDraw.Draw(label).text(
        (SIDE // 2, 8), _t(title), fill="#222222", font=_font(12), anchor="mm"
    )
    rotated = label.rotate(-90, expand=True)
    canvas.paste(rotated, (left + 62, top), rotated)


def _bars(canvas: Image.Image, top: int, view: PanelView, selected: int, ink: str) -> None:
    """The top channels' weights as bars, the selected one outlined, a zero line."""
    draw = ImageDraw.Draw(canvas)
    channels = top_channels(view.weights, view.top)
    values = view.weights[channels].astype(np.float64)
    title = f"channel weights α · top {channels.size} of {view.weights.size} by |α|"
    draw.text((WIDTH // 2, top), _t(title), fill=ink, font=_font(14), anchor="ma")
    left, right, y0, y1 = 80, WIDTH - 30, top + 30, top + 250
    low, high = min(0.0, float(values.min())), max(0.0, float(values.max()))
    span = high - low or 1.0

    def y(value: float) -> float:
        return y1 - (value - low) / span * (y1 - y0)

    step = (right - left) / channels.size
    for index, (channel, value) in enumerate(zip(channels, values, strict=True)):
        x0 = left + index * step + step * 0.15
        x1 = left + (index + 1) * step - step * 0.15
        color = POSITIVE if value >= 0 else NEGATIVE
        box = (x0, min(y(value), y(0.0)), x1, max(y(value), y(0.0)))
        outline = "black" if channel == selected else None
        draw.rectangle(box, fill=color, outline=outline, width=2 if outline else 0)
        every = max(1, int(np.ceil(channels.size * 34 / (right - left))))
        if index % every == 0:
            label = f"#{channel}"
            draw.text(((x0 + x1) / 2, y1 + 6), label, fill="#222222", font=_font(11), anchor="ma")
    draw.line((left, y(0.0), right, y(0.0)), fill="#999999")
    for value in (low, high):
        draw.text((left - 6, y(value)), f"{value:.3g}", fill="#222222", font=_font(11), anchor="rm")
    draw.text((left - 50, (y0 + y1) / 2), _t("α_k"), fill="#222222", font=_font(12), anchor="mm")
