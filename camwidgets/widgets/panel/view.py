"""From what is shown to the figure's input: the ``PanelView`` of a result, its caption, and
the shared colour ranges (one per layer over the listed classes and both signs)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...engine import CamResult, GradCAM
from ...figures import PanelView
from ...figures.channels import default_channel
from ...figures.overlay import guided_picture
from ...figures.scales import magnitude, peak, positive_range
from ..controls import has_counterfactual, method_name
from ..state import PanelState
from .images import PanelImage

if TYPE_CHECKING:
    from ...naming import ChannelNames

Ranges = tuple[float, float, np.ndarray]


class SharedRanges:
    """Colour ranges for the shared scale, kept per (image, layer, method, classes)."""

    def __init__(self) -> None:
        self._kept: dict[tuple[Any, ...], Ranges] = {}

    def clear(self) -> None:
        """Forget every range (new images: the indices mean other pictures)."""
        self._kept.clear()

    def get(
        self, engine: GradCAM, state: PanelState, image: PanelImage, classes: Sequence[int]
    ) -> Ranges:
        """One colour range per layer: over ``classes``, both signs where defined.

        Returns the heat maps' largest value, the coarse maps' largest |value|, and per channel
        the largest |alpha_k| (times max |A^k| it bounds alpha_k A^k). Each class costs one
        backward the first time (then cached); the counterfactual costs nothing more.
        """
        key = (state.image, state.layer, state.method, tuple(classes))
        if key not in self._kept:
            signs = [False, True] if has_counterfactual(state.method) else [False]
            heat, coarse, alphas = 0.0, 0.0, None
            for target in classes:
                for sign in signs:
                    res = engine.explain(
                        image.prepared,
                        layer=state.layer,
                        target=target,
                        counterfactual=sign,
                        method=state.method,
                    ).cpu()  # one transfer per map on a GPU: the ranges are read on the host
                    heat = max(heat, peak(res.heatmap.numpy()))
                    coarse = max(coarse, magnitude(res.coarse.numpy()))
                    if res.weights is not None:
                        size = np.abs(res.weights.numpy())
                        alphas = size if alphas is None else np.maximum(alphas, size)
            channels = engine.layer_shapes[state.layer][0]
            self._kept[key] = (
                positive_range(heat),
                positive_range(coarse),
                alphas if alphas is not None else np.zeros(channels, np.float32),
            )
        return self._kept[key]


def make_view(
    engine: GradCAM,
    state: PanelState,
    result: CamResult,
    image: PanelImage,
    names: Mapping[str, ChannelNames],
    ranges: Ranges | None,
) -> PanelView:
    """The figure's input for ``result`` drawn as ``state`` says (``ranges``: the shared
    scale's, or None for each map's own)."""
    # Methods without channel weights (HiResCAM, LayerCAM) draw no bars.
    weights = (
        result.weights.numpy()
        if result.weights is not None
        else np.zeros(result.activations.shape[0], dtype=np.float32)
    )
    channel = state.channel
    if channel is not None and not 0 <= channel < weights.size:
        raise ValueError(f"channel {channel} is out of range: the layer has {weights.size}")
    shown = default_channel(weights) if channel is None else channel
    heat_max = coarse_max = contribution_max = None
    if ranges is not None:
        heat_max, coarse_max, alphas = ranges
        activation = result.activations[shown].numpy()
        contribution_max = float(alphas[shown]) * magnitude(activation)
    return PanelView(
        picture=image.png(),
        heatmap=result.heatmap.numpy(),
        coarse=result.coarse.numpy(),
        weights=weights,
        activations=result.activations.numpy(),
        channel=channel,
        top=state.bars,
        opacity=state.opacity,
        colorscale=state.colorscale,
        caption=caption(engine, result, image),
        counterfactual=result.counterfactual,
        heat_max=heat_max,
        coarse_max=coarse_max,
        contribution_max=contribution_max,
        hint=(
            "click a bar to see its channel"
            if result.weights is not None
            else f"{method_name(result.method)} has no channel weights"
        ),
        names=channel_names(state, names),
        guided=(guided_picture(result.guided.numpy()) if result.guided is not None else None),
    )


def channel_names(state: PanelState, names: Mapping[str, ChannelNames]) -> tuple[str, ...] | None:
    """One name per channel ("" for unnamed) when names for this layer are shown."""
    table = names.get(state.layer)
    if table is None or not state.names:
        return None
    return tuple(table.name(k) or "" for k in range(len(table)))


def caption(engine: GradCAM, result: CamResult, image: PanelImage) -> str:
    """The figure's title: the class explained, the prediction, layer, method, mode."""
    predictions = image.predictions or []
    e = html.escape
    mode = (
        "<b>COUNTERFACTUAL</b> · what speaks against " if result.counterfactual else "explaining "
    )
    top = (
        f" · predicted <b>{e(predictions[0].name)}</b> ({predictions[0].probability:.1%})"
        if predictions
        else ""
    )
    shape = engine.layer_shapes[result.layer]
    return (
        f"{mode}<b>{e(str(result.target_name))}</b> (class {result.target}, "
        f"p {result.probability:.1%}){top} · layer {e(result.layer)} "
        f"{shape[1]}×{shape[2]} · {e(method_name(result.method))}"
    )
