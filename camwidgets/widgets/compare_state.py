"""The compare panel's state: one immutable ``CompareState`` and the pure functions that change
it (tested without widgets, as ``state.py`` is for the Explorer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class CompareState:
    """Everything the compare panel shows, as values.

    Attributes:
        layers: the layer explained in each model (one name per model, in order).
        image: index of the picked image.
        target: the class explained in every model (None before an image is loaded).
        method: the method, the same for every model.
        counterfactual: whether every model's weights are negated.
        pair: the difference map shows ``model[pair[0]] - model[pair[1]]``.
        opacity: of the heat maps over the picture.
        top: how many channels the bars show.
        extra: classes chosen beyond the top predictions, kept in the class list.
    """

    layers: tuple[str, ...]
    image: int = 0
    target: int | None = None
    method: str = "gradcam"
    counterfactual: bool = False
    pair: tuple[int, int] = (1, 0)
    opacity: float = 0.5
    top: int = 12
    extra: tuple[int, ...] = ()

    def explanation(self, model: int) -> tuple[int, str, int | None, str, bool]:
        """What model ``model``'s engine is asked: (image, layer, target, method, sign)."""
        return (self.image, self.layers[model], self.target, self.method, self.counterfactual)


def pick_image(state: CompareState, index: int, top: int) -> CompareState:
    """Another image: explain its top class ``top`` (of the first model); extras start afresh."""
    if index < 0:
        raise ValueError(f"image index must be non-negative, got {index}")
    return replace(state, image=index, target=top, extra=())


def _method_at(state: CompareState, methods: Sequence[str]) -> str:
    """The current method if every model has it at the new layers, else the first that all do."""
    if state.method in methods:
        return state.method
    if not methods:
        raise ValueError("no method is defined at all of these layers")
    return methods[0]


def set_layer(
    state: CompareState,
    layer: str,
    available: Sequence[Sequence[str]],
    methods: Sequence[str] | None = None,
) -> CompareState:
    """The layer ``layer`` in every model (each must have a layer of that name).

    Args:
        available: each model's layer names, in model order.
        methods: the methods every model has at ``layer`` (the current one falls back to the
            first of them when it is not among them).
    """
    missing = [i for i, names in enumerate(available) if layer not in names]
    if missing:
        raise ValueError(
            f"not every model has a layer {layer!r} (models {missing} lack it); pick each "
            "model's layer on its own (compare.layer = {name: layer, ...})"
        )
    new = replace(state, layers=tuple(layer for _ in state.layers))
    return replace(new, method=_method_at(new, methods)) if methods is not None else new


def set_model_layer(
    state: CompareState,
    model: int,
    layer: str,
    available: Sequence[str],
    methods: Sequence[str] | None = None,
) -> CompareState:
    """Model ``model``'s layer alone (two architectures: a layer per model)."""
    if not 0 <= model < len(state.layers):
        raise ValueError(f"model index {model} is out of range (0..{len(state.layers) - 1})")
    if layer not in available:
        raise ValueError(f"model {model} has no layer {layer!r}")
    layers = list(state.layers)
    layers[model] = layer
    new = replace(state, layers=tuple(layers))
    return replace(new, method=_method_at(new, methods)) if methods is not None else new


def pick_target(state: CompareState, target: int, offered: Sequence[int]) -> CompareState:
    """Explain class ``target`` in every model; one beyond the top classes joins the list."""
    if target < 0:
        raise ValueError(f"class index must be non-negative, got {target}")
    extra = state.extra
    if target not in offered and target not in extra:
        extra = (*extra, target)
    return replace(state, target=target, extra=extra)


def pick_method(
    state: CompareState, method: str, methods: Sequence[str], counterfactual: bool = True
) -> CompareState:
    """Another method, one that every model has at its layer (``methods``).

    Args:
        counterfactual: whether ``method`` has a counterfactual (if not, it is switched off).
    """
    if method not in methods:
        raise ValueError(
            f"method {method!r} is not available at every model's layer; "
            f"available: {', '.join(methods)}"
        )
    return replace(state, method=method, counterfactual=state.counterfactual and counterfactual)


def set_counterfactual(state: CompareState, on: bool, supported: bool = True) -> CompareState:
    """The counterfactual on or off, for every model."""
    if on and not supported:
        raise ValueError(f"method {state.method!r} has no counterfactual")
    return replace(state, counterfactual=bool(on))


def set_pair(state: CompareState, pair: tuple[int, int]) -> CompareState:
    """Which difference is drawn: ``model[a] - model[b]``."""
    a, b = pair
    count = len(state.layers)
    if not (0 <= a < count and 0 <= b < count) or a == b:
        raise ValueError(f"pair must be two different model indices below {count}, got {pair}")
    return replace(state, pair=(int(a), int(b)))


def set_style(
    state: CompareState, opacity: float | None = None, top: int | None = None
) -> CompareState:
    """How the view is drawn (nothing the engines compute)."""
    if opacity is not None and not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if top is not None and top < 1:
        raise ValueError(f"the bars must show at least 1 channel, got {top}")
    return replace(
        state,
        opacity=state.opacity if opacity is None else float(opacity),
        top=state.top if top is None else int(top),
    )
