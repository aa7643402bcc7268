"""Explanations in words: which named channels carry a Grad-CAM map, said in one sentence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from camwidgets.engine import CamResult

from .names import ChannelNames

__all__ = ["ChannelEvidence", "Description", "contributions", "describe"]


@dataclass(frozen=True)
class ChannelEvidence:
    """One channel's part in a map.

    Attributes:
        channel: channel index k in the layer.
        name: its concept, or None when unnamed.
        iou: the IoU of its best concept (also when below the naming threshold).
        weight: alpha_k as used by the map (negated for a counterfactual).
        mass: the positive mass of A^k, sum_ij max(A^k_ij, 0), on the coarse grid.
        contribution: weight * mass.
        share: contribution / total positive contribution of all channels.
    """

    channel: int
    name: str | None
    iou: float
    weight: float
    mass: float
    contribution: float
    share: float

    @property
    def label(self) -> str:
        """``channel 12 (circle, IoU 0.15)`` or ``channel 12 (unnamed)``."""
        if self.name is None:
            return f"channel {self.channel} (unnamed)"
        return f"channel {self.channel} ({self.name}, IoU {self.iou:.2f})"


@dataclass(frozen=True)
class Description:
    """A Grad-CAM map said in words, with the parts the sentence is made of.

    Attributes:
        sentence: the explanation as one or two sentences.
        predicted: the model's top-1 class index.
        predicted_name: its name (``"class 3"`` when the class names are not known).
        predicted_probability: its softmax probability.
        target: the explained class index.
        target_name: its name.
        probability: the explained class's probability.
        counterfactual: whether the map is the counterfactual one (evidence against).
        layer: the layer the map is computed at.
        channels: the top channels, largest contribution first (only positive ones).
        share: the share of the total positive contribution these channels carry.
    """

    sentence: str
    predicted: int
    predicted_name: str
    predicted_probability: float
    target: int
    target_name: str
    probability: float
    counterfactual: bool
    layer: str
    channels: tuple[ChannelEvidence, ...]
    share: float

    def __str__(self) -> str:
        return self.sentence

    def names(self) -> list[str | None]:
        """The names of the top channels, in order (None for unnamed ones)."""
        return [c.name for c in self.channels]


def contributions(result: CamResult) -> torch.Tensor:
    """Per-channel contribution c_k = alpha_k * sum_ij max(A^k_ij, 0) of a single result (K,).

    ``alpha_k`` is ``result.weights`` (already negated for a counterfactual result), and the sum
    runs over the coarse h x w grid of the layer's activations. For a layer whose output is
    non-negative (after a ReLU) the positive mass is the whole mass, so sum_k c_k equals the sum
    of the signed coarse map sum_ij sum_k alpha_k A^k_ij.
    """
    weights = _weights(result)
    mass = result.activations.float().clamp_min(0).sum(dim=(-2, -1))
    return weights.double() * mass.double()


def describe(
    result: CamResult,
    names: ChannelNames | None,
    k: int = 3,
    classes: Sequence[str] | None = None,
) -> Description:
    """Say in words what a single map rests on: the top-k channels, with their names.

    Channel k contributes ``c_k = alpha_k * P_k`` to the map, where ``alpha_k`` is the map's
    channel weight (``result.weights``, negated for the counterfactual) and
    ``P_k = sum_ij max(A^k_ij, 0)`` is the positive mass of its activation map on the layer's
    coarse grid. Since the map is ReLU(sum_k alpha_k A^k), c_k is how much channel k adds to
    the map's total before the ReLU (exactly, when A >= 0). The k channels with the largest
    positive c_k are listed; their ``share`` is ``sum of their c_k / sum_j max(c_j, 0)``, the
    fraction of all positive evidence they carry.

    Example:
        >>> from camwidgets import GradCAM, zoo
        >>> from camwidgets.naming import describe, dissect
        >>> shapes = zoo.load("shapes")
        >>> engine = GradCAM(shapes.model, shapes.classes, shapes.transform)
        >>> names = dissect(engine, "layer4", zoo.concepts(200, seed=21), progress=False)
        >>> res = engine.explain(zoo.make_scene(31, 0).image)
        >>> print(describe(res, names))  # doctest: +SKIP
        The model predicts 'ring' (99.8%). The map for 'ring' at layer4 rests mostly
        on channel 87 (ring, IoU 0.12), channel 3 (ring, IoU 0.09) and channel 40 (unnamed),
        which carry 41% of its positive evidence.

    Args:
        result: one image's CamResult (index a batch result: ``describe(res[i], names)``).
        names: the layer's ChannelNames from :func:`dissect`; None describes unnamed channels.
        k: how many channels to list (at most the layer's channel count).
        classes: class names, to name a predicted class other than the explained one
            (``engine.classes``); without them it reads "class 3".

    Returns:
        A :class:`Description`; ``str()`` gives the sentence.

    Raises:
        TypeError: ``result`` is not a CamResult, or ``names`` not a ChannelNames.
        ValueError: a batch result, a method without channel weights, a table of another
            layer or another channel count, a bad ``k``.
    """
    if not isinstance(result, CamResult):
        raise TypeError(f"result must be a camwidgets CamResult, got {type(result).__name__}")
    if result.batched:
        raise ValueError(
            "describe takes one image's result; this one is a batch: describe each, e.g. "
            "[describe(r, names) for r in res] or describe(res[0], names)"
        )
    if names is not None and not isinstance(names, ChannelNames):
        raise TypeError(f"names must be a ChannelNames or None, got {type(names).__name__}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    result = result.cpu()  # a result computed on a GPU: one transfer, then host arithmetic
    contribution = contributions(result)
    channels = int(contribution.shape[0])
    if names is not None:
        if names.layer != result.layer:
            raise ValueError(
                f"the names are for layer {names.layer!r} but the result is at "
                f"{result.layer!r}; dissect {result.layer!r} or explain at {names.layer!r}"
            )
        if len(names) != channels:
            raise ValueError(
                f"the names cover {len(names)} channels but the layer has {channels}; they "
                "come from another model"
            )
    if classes is not None and len(classes) != result.logits.shape[-1]:
        raise ValueError(
            f"got {len(classes)} class names for {result.logits.shape[-1]} class scores"
        )

    weights = _weights(result)
    mass = result.activations.float().clamp_min(0).sum(dim=(-2, -1))
    positive = float(contribution.clamp_min(0).sum())
    order = torch.argsort(contribution, descending=True, stable=True)[: min(k, channels)]
    evidence = tuple(
        ChannelEvidence(
            channel=int(j),
            name=names.name(int(j)) if names is not None else None,
            iou=names.iou(int(j)) if names is not None else 0.0,
            weight=float(weights[j]),
            mass=float(mass[j]),
            contribution=float(contribution[j]),
            share=float(contribution[j]) / positive if positive > 0 else 0.0,
        )
        for j in order
        if float(contribution[j]) > 0
    )
    share = sum(e.share for e in evidence)

    probabilities = result.logits.double().softmax(dim=-1)
    predicted = int(result.logits.argmax())
    target = int(result.target)  # type: ignore[arg-type]
    target_name = str(result.target_name)
    if predicted == target:
        predicted_name = target_name
    elif classes is not None:
        predicted_name = str(classes[predicted])
    else:
        predicted_name = f"class {predicted}"
    description = Description(
        sentence="",
        predicted=predicted,
        predicted_name=predicted_name,
        predicted_probability=float(probabilities[predicted]),
        target=target,
        target_name=target_name,
        probability=float(result.probability),  # type: ignore[arg-type]
        counterfactual=result.counterfactual,
        layer=result.layer,
        channels=evidence,
        share=share,
    )
    return Description(**{**description.__dict__, "sentence": _sentence(description)})


def _weights(result: CamResult) -> torch.Tensor:
    """The result's channel weights, or a clear error for methods without them."""
    if result.weights is None:
        raise ValueError(
            f"method {result.method!r} has no channel weights, so channels cannot be ranked; "
            "describe a 'gradcam' (or 'cam') result"
        )
    return result.weights.float()


def _join(parts: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _sentence(d: Description) -> str:
    """The words: the prediction, then what the (counterfactual) map rests on."""
    predicted = f"The model predicts '{d.predicted_name}' ({d.predicted_probability:.1%})."
    if d.target == d.predicted:
        about = f"'{d.target_name}'"
    else:
        about = f"'{d.target_name}' ({d.probability:.1%})"
    channels = _join([c.label for c in d.channels])
    which = "it carries" if len(d.channels) == 1 else "they carry"
    if d.counterfactual:
        if not d.channels:
            return (
                f"{predicted} Nothing at {d.layer} speaks against {about}: no channel lowers "
                "its score."
            )
        return (
            f"{predicted} What speaks against {about} at {d.layer}, the regions whose removal "
            f"would raise its score, comes mostly from {channels}; {which} {d.share:.0%} of "
            "the evidence against it."
        )
    if not d.channels:
        return (
            f"{predicted} The map for {about} at {d.layer} is empty: no channel "
            "adds evidence for it."
        )
    return (
        f"{predicted} The map for {about} at {d.layer} rests mostly on {channels}; {which} "
        f"{d.share:.0%} of its positive evidence."
    )
