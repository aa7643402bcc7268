"""The panel's state in one place: an immutable ``PanelState`` and the pure functions that
change it.

Every control of the panel reads from and writes to one ``PanelState``; the figure is rendered
from it and the controls are written from it. Transitions are small functions of (state, input)
that return a new state, so their rules (e.g. "another layer shows that layer's strongest
channel") are written once and tested without widgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

SCALES = ("own", "shared")
"""``own``: each map coloured by its own range; ``shared``: one absolute range per layer, over
the classes offered and both signs (the counterfactual), so maps can be compared."""


@dataclass(frozen=True)
class PanelState:
    """Everything the panel shows, as values (no widgets, no tensors).

    Attributes:
        image: index of the picked image among those given to ``show``.
        layer: the explained layer.
        target: the explained class (None before an image is loaded).
        method: the explanation method (an engine method name).
        counterfactual: whether the weights are negated.
        channel: the channel shown on its own; None: the one with the largest weight.
        scale: one of ``SCALES``.
        opacity: of the heat map over the picture, 0..1.
        colorscale: of the heat map.
        bars: how many channel weights the bar chart shows.
        extra: classes chosen outside the top predictions, kept in the class list.
        all_layers: the layer list offers every layer, not only the model's stages.
        names: show channel names (when the panel has names loaded).
    """

    layer: str
    image: int = 0
    target: int | None = None
    method: str = "gradcam"
    counterfactual: bool = False
    channel: int | None = None
    scale: str = "own"
    opacity: float = 0.5
    colorscale: str = "Jet"
    bars: int = 20
    extra: tuple[int, ...] = ()
    all_layers: bool = False
    names: bool = True

    @property
    def explanation(self) -> tuple[int, str, int | None, str, bool]:
        """What the engine is asked for: (image, layer, target, method, counterfactual)."""
        return (self.image, self.layer, self.target, self.method, self.counterfactual)


def pick_image(state: PanelState, index: int, top: int) -> PanelState:
    """Another image: explain its top class ``top``; chosen classes and channel start afresh."""
    if index < 0:
        raise ValueError(f"image index must be non-negative, got {index}")
    return replace(state, image=index, target=top, channel=None, extra=())


def pick_layer(state: PanelState, layer: str, methods: Sequence[str] | None = None) -> PanelState:
    """Another layer. Channel indices mean nothing across layers: show the new one's strongest.

    Args:
        methods: the methods defined at ``layer``; if the current one is not among them the
            panel falls back to the first (e.g. CAM exists only where a pooled head reads).
    """
    if layer == state.layer:
        return state
    method = state.method
    if methods is not None and method not in methods:
        if not methods:
            raise ValueError(f"no method is defined at layer {layer!r}")
        method = methods[0]
    return replace(state, layer=layer, channel=None, method=method)


def pick_target(state: PanelState, target: int, offered: Sequence[int]) -> PanelState:
    """Explain class ``target``; one outside the ``offered`` top classes joins the class list."""
    if target < 0:
        raise ValueError(f"class index must be non-negative, got {target}")
    extra = state.extra
    if target not in offered and target not in extra:
        extra = (*extra, target)
    return replace(state, target=target, extra=extra)


def pick_method(
    state: PanelState, method: str, methods: Sequence[str], counterfactual: bool = True
) -> PanelState:
    """Another explanation method, one of ``methods`` (those defined at the current layer).

    Args:
        counterfactual: whether ``method`` has a counterfactual; if not, it is switched off
            (Eigen-CAM and Score-CAM do not depend on the class's gradient sign).
    """
    if method not in methods:
        raise ValueError(
            f"method {method!r} is not available at layer {state.layer!r}; "
            f"available: {', '.join(methods)}"
        )
    return replace(state, method=method, counterfactual=state.counterfactual and counterfactual)


def set_counterfactual(state: PanelState, on: bool, supported: bool = True) -> PanelState:
    """The counterfactual on or off (same layer: the shown channel stays).

    Args:
        supported: whether the current method has a counterfactual.
    """
    if on and not supported:
        raise ValueError(f"method {state.method!r} has no counterfactual")
    return replace(state, counterfactual=bool(on))


def pick_channel(state: PanelState, channel: int | None) -> PanelState:
    """Show channel ``channel`` on its own (None: the strongest)."""
    if channel is not None and channel < 0:
        raise ValueError(f"channel must be non-negative, got {channel}")
    return replace(state, channel=channel)


def set_scale(state: PanelState, scale: str) -> PanelState:
    """Colour maps by their own range or by one shared range (see ``SCALES``)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return replace(state, scale=scale)


def set_style(
    state: PanelState,
    opacity: float | None = None,
    colorscale: str | None = None,
    bars: int | None = None,
) -> PanelState:
    """Change how the view is drawn (nothing the engine computes)."""
    if opacity is not None and not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if bars is not None and bars < 1:
        raise ValueError(f"bars must be at least 1, got {bars}")
    return replace(
        state,
        opacity=state.opacity if opacity is None else float(opacity),
        colorscale=state.colorscale if colorscale is None else colorscale,
        bars=state.bars if bars is None else int(bars),
    )


def show_all_layers(state: PanelState, on: bool) -> PanelState:
    """Offer every layer in the layer list, or only the model's stages (the current layer
    stays listed either way)."""
    return replace(state, all_layers=bool(on))


def show_names(state: PanelState, on: bool) -> PanelState:
    """Show or hide channel names (when names are loaded)."""
    return replace(state, names=bool(on))
