"""Teaching figures: the Grad-CAM formula step by step, and an attack beside the original.

Plotly and numpy only. Each builder returns the parts and their boxes; ``*_figure`` lays them
out whole (wrap it in a FigureWidget once) and ``*_update`` changes a figure built from parts of
the same shape in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import plotly.graph_objects as go
from plotly.basedatatypes import BaseFigure

from .grid import grid_part
from .overlay import overlay_part
from .part import Box, Part, apply, place
from .scales import magnitude, positive_range
from .weights import weights_part

__all__ = [
    "AttackView",
    "StepsView",
    "attack_figure",
    "attack_parts",
    "steps_figure",
    "steps_parts",
    "strongest_channels",
]

_DY_DA = "∂Y<sub>c</sub>/∂A<sup>k</sup>"
MARGIN = {"l": 20, "r": 20, "t": 40, "b": 20}


def strongest_channels(weights: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` channels with the largest alpha (the ones that add most), largest first."""
    if weights.ndim != 1:
        raise ValueError(f"weights must be (K,), got shape {weights.shape}")
    count = max(1, min(count, weights.size))
    order = np.lexsort((np.arange(weights.size), -weights))  # ties: lower index first
    return order[:count]


@dataclass(frozen=True)
class StepsView:
    """What the step-by-step figure shows, for one class at one layer.

    Attributes:
        activations: A, (K, h, w).
        gradients: dY_c/dA (times -1 for the counterfactual), (K, h, w).
        weights: alpha (its sign as the gradients'), (K,).
        picture: the model-input picture, (H, W, 3) uint8.
        heatmap: ReLU(sum alpha A) resized, (H, W).
        class_name: the class explained; counterfactual: whether -Y_c is explained.
        channels: how many of the strongest channels rows 1 and 2 show.
    """

    activations: np.ndarray
    gradients: np.ndarray
    weights: np.ndarray
    picture: np.ndarray
    heatmap: np.ndarray
    class_name: str
    counterfactual: bool = False
    channels: int = 4


def _bare(part: Part) -> Part:
    """A part without its colour bar and tick labels (small multiples; hover keeps values)."""
    return replace(
        part,
        colorbar=None,
        xaxis={**part.xaxis, "showticklabels": False},
        yaxis={**part.yaxis, "showticklabels": False},
    )


def steps_parts(view: StepsView) -> tuple[list[Part], list[Box]]:
    """The six stages, in order, with the boxes they sit in (three rows of four columns)."""
    acts, grads, alpha = view.activations, view.gradients, view.weights
    if acts.ndim != 3 or grads.shape != acts.shape or alpha.shape != acts.shape[:1]:
        raise ValueError(
            f"activations {acts.shape}, gradients {grads.shape} and weights {alpha.shape} must "
            "be (K, h, w), (K, h, w) and (K,)"
        )
    sign = "−" if view.counterfactual else ""
    chosen = strongest_channels(alpha, view.channels)
    parts: list[Part] = []
    for k in chosen:
        parts.append(_bare(grid_part(acts[k], f"① A<sup>{k}</sup>", "A", "Viridis")))
    span = positive_range(magnitude(grads[chosen]))
    for k in chosen:
        title = f"② {sign}∂Y<sub>c</sub>/∂A<sup>{k}</sup> · α={alpha[k]:.2g}"
        parts.append(_bare(grid_part(grads[k], title, "∂Y/∂A", "RdBu_r", zmin=-span, zmax=span)))
    bars = weights_part(alpha, count=min(12, alpha.size))
    parts.append(
        replace(
            bars,
            title=f"③ α<sub>k</sub> = {sign}mean<sub>ij</sub> {_DY_DA}<sub>ij</sub>",
        )
    )
    coarse = np.tensordot(alpha, acts, axes=1)
    limit = positive_range(magnitude(coarse))
    parts.append(
        _bare(
            grid_part(
                coarse, "④ Σ<sub>k</sub> α<sub>k</sub>A<sup>k</sup> (signed)", "Σ α·A", "RdBu_r",
                zmin=-limit, zmax=limit,
            )
        )
    )  # fmt: skip
    relu = np.maximum(coarse, 0.0)
    parts.append(
        _bare(
            grid_part(
                relu, "⑤ ReLU(Σ<sub>k</sub> α<sub>k</sub>A<sup>k</sup>)", "ReLU", "Jet",
                zmin=0.0, zmax=positive_range(float(relu.max(initial=0.0))),
            )
        )
    )  # fmt: skip
    height, width = view.heatmap.shape
    parts.append(
        _bare(
            overlay_part(
                view.picture, view.heatmap, max_side=72,
                title=f"⑥ resized onto the picture ({height}×{width})",
            )
        )
    )  # fmt: skip
    count = len(chosen)
    boxes = [_cell(0, i, count) for i in range(count)] + [_cell(1, i, count) for i in range(count)]
    boxes += [_cell(2, i, 4) for i in range(4)]
    return parts, boxes


def _cell(row: int, col: int, cols: int, rows: int = 3) -> Box:
    """The box of a cell in a rows x cols grid (row 0 at the top), with gaps for titles."""
    gap_x, gap_y = 0.04, 0.09
    width = (1 - gap_x * (cols - 1)) / cols
    height = (1 - gap_y * rows) / rows
    x0 = col * (width + gap_x)
    y1 = 1 - row * (height + gap_y) - gap_y / 2
    return Box(x0, x0 + width, y1 - height, y1)


def steps_title(view: StepsView) -> str:
    """The figure's title: which class, counterfactual or not."""
    what = f"−Y<sub>c</sub> (counterfactual), c = {view.class_name}" if view.counterfactual else (
        f"Y<sub>c</sub>, c = {view.class_name}"
    )  # fmt: skip
    return f"Grad-CAM step by step for {what}"


def steps_figure(view: StepsView) -> go.Figure:
    """The whole step-by-step figure (build once, wrap in a FigureWidget)."""
    parts, boxes = steps_parts(view)
    title = {"text": steps_title(view), "x": 0.5, "font": {"size": 14}}
    return place(parts, boxes, height=720, margin={**MARGIN, "t": 70}, title=title)


def steps_update(fig: BaseFigure, view: StepsView, shown: Sequence[Part] | None) -> list[Part]:
    """Show ``view`` in a figure made by ``steps_figure`` (same channel count); -> the parts."""
    parts, _ = steps_parts(view)
    apply(fig, parts, shown, layout={"title.text": steps_title(view)})
    return parts


@dataclass(frozen=True)
class AttackView:
    """The original and the attacked picture with both classes' maps on each.

    Attributes:
        original, attacked: model-input pictures, (H, W, 3) uint8.
        maps: ((original class on original, new class on original),
            (original class on attacked, new class on attacked)), each (H, W).
        original_name, new_name: the two classes; original_p, new_p: their probabilities on
            their own picture.
        attack: what attack, e.g. "PGD, eps 8/255, 10 steps".
    """

    original: np.ndarray
    attacked: np.ndarray
    maps: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
    original_name: str
    new_name: str
    original_p: float
    new_p: float
    attack: str


def attack_parts(view: AttackView) -> tuple[list[Part], list[Box]]:
    """Two rows (original, attacked) of three panels (picture, map of each class)."""
    top = positive_range(max(float(m.max(initial=0.0)) for row in view.maps for m in row))
    flipped = view.new_name != view.original_name
    said = "predicted <b>{}</b> ({:.0%})"
    pictures = (
        (view.original, "original · " + said.format(view.original_name, view.original_p)),
        (view.attacked, "attacked · " + said.format(view.new_name, view.new_p)),
    )
    names = (view.original_name, view.new_name if flipped else f"{view.new_name} (not flipped)")
    parts: list[Part] = []
    for (picture, title), maps, where in zip(
        pictures, view.maps, ("original", "attacked"), strict=True
    ):
        blank = np.zeros(picture.shape[:2], dtype=np.float32)
        parts.append(_bare(overlay_part(picture, blank, opacity=0.0, max_side=2, title=title)))
        for heat, name in zip(maps, names, strict=True):
            parts.append(
                _bare(overlay_part(picture, heat, max_side=48, zmax=top,
                                   title=f"map of {name} on the {where}"))
            )  # fmt: skip
    boxes = [_cell(r, c, 3, rows=2) for r in range(2) for c in range(3)]
    return parts, boxes


def attack_title(view: AttackView) -> str:
    """The figure's title: the attack and what it did."""
    done = "flipped" if view.new_name != view.original_name else "did not flip"
    return (
        f"{view.attack}: {view.original_name} → {view.new_name} ({done}); maps share one colour "
        "range"
    )


def attack_figure(view: AttackView) -> go.Figure:
    """The whole attack figure (build once, wrap in a FigureWidget)."""
    parts, boxes = attack_parts(view)
    title = {"text": attack_title(view), "x": 0.5, "font": {"size": 14}}
    return place(parts, boxes, height=620, margin={**MARGIN, "t": 70}, title=title)


def attack_update(fig: BaseFigure, view: AttackView, shown: Sequence[Part] | None) -> list[Part]:
    """Show ``view`` in a figure made by ``attack_figure``; -> the parts shown."""
    parts, _ = attack_parts(view)
    apply(fig, parts, shown, layout={"title.text": attack_title(view)})
    return parts
