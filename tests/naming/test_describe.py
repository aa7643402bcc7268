"""describe: channels ranked by alpha_k times the positive mass of A^k, and the words."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from camwidgets import GradCAM
from camwidgets.naming import ChannelNames, Description, contributions, describe
from tests.conftest import resnet18, small_transform

LAYER = "layer4"


@pytest.fixture(scope="module")
def engine() -> GradCAM:
    return GradCAM(
        resnet18(num_classes=4), classes=["cat", "dog", "fox", "owl"], transform=small_transform()
    )


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(3))


def names_for(
    channels: int, named: dict[int, tuple[str, float]], layer: str = LAYER
) -> ChannelNames:
    """A table where channel k is named as given (IoU as given) and the rest stay unnamed."""
    concepts = sorted({name for name, _ in named.values()}) or ["thing"]
    iou = np.full((channels, len(concepts)), 0.01)
    for k, (name, value) in named.items():
        iou[k, concepts.index(name)] = value
    return ChannelNames(layer, concepts, iou, np.zeros(channels), 0.005, 0.04)


def reference_ranking(result: object) -> tuple[np.ndarray, np.ndarray]:
    """c_k = alpha_k * sum_ij max(A^k_ij, 0), computed here in numpy; channels by c_k."""
    alpha = result.weights.numpy().astype(np.float64)  # type: ignore[attr-defined]
    acts = result.activations.numpy().astype(np.float64)  # type: ignore[attr-defined]
    c = alpha * np.maximum(acts, 0).sum(axis=(1, 2))
    return c, np.argsort(-c, kind="stable")


def test_top_channels_and_share(engine: GradCAM, image: torch.Tensor) -> None:
    res = engine.explain(image, LAYER)
    c, order = reference_ranking(res)
    np.testing.assert_allclose(contributions(res).numpy(), c, rtol=1e-6)
    top = [int(k) for k in order[:3]]
    table = names_for(512, {top[0]: ("fur", 0.12), top[2]: ("ear", 0.05)})
    said = describe(res, table, k=3)
    assert isinstance(said, Description)
    assert [e.channel for e in said.channels] == top
    assert said.names() == ["fur", None, "ear"]
    assert [round(e.iou, 2) for e in said.channels] == [0.12, 0.01, 0.05]
    positive = c[c > 0].sum()
    np.testing.assert_allclose([e.share for e in said.channels], c[top] / positive, rtol=1e-6)
    np.testing.assert_allclose(said.share, c[top].sum() / positive, rtol=1e-6)
    for e in said.channels:
        np.testing.assert_allclose(e.contribution, e.weight * e.mass, rtol=1e-6)
    # For a ReLU'd layer the contributions add up to the coarse map's total.
    np.testing.assert_allclose(c.sum(), float(res.coarse.double().sum()), rtol=1e-4)
    predicted = int(res.logits.argmax())
    assert said.predicted == predicted == said.target and said.layer == LAYER
    assert said.sentence == str(said)
    assert said.sentence.startswith(f"The model predicts '{engine.classes[predicted]}' (")
    assert f"channel {top[0]} (fur, IoU 0.12), channel {top[1]} (unnamed) and " in said.sentence
    assert f"channel {top[2]} (ear, IoU 0.05)" in said.sentence
    assert f"{said.share:.0%} of its positive evidence" in said.sentence


def test_counterfactual_has_its_own_channels_and_words(
    engine: GradCAM, image: torch.Tensor
) -> None:
    res = engine.explain(image, LAYER, counterfactual=True)
    c, order = reference_ranking(res)  # res.weights is already -alpha
    normal, _ = reference_ranking(engine.explain(image, LAYER))
    np.testing.assert_allclose(c, -normal, rtol=1e-6)
    said = describe(res, names_for(512, {int(order[0]): ("snow", 0.3)}), k=2)
    assert [e.channel for e in said.channels] == [int(k) for k in order[:2]]
    assert said.counterfactual
    assert "speaks against" in said.sentence and "evidence against it" in said.sentence
    assert f"channel {int(order[0])} (snow, IoU 0.30)" in said.sentence
    assert "positive evidence" not in said.sentence


def test_explaining_another_class_names_both(engine: GradCAM, image: torch.Tensor) -> None:
    res = engine.explain(image, LAYER)
    other = next(i for i in range(4) if i != res.target)
    res = engine.explain(image, LAYER, target=other)
    predicted = int(res.logits.argmax())
    plain = describe(res, None)
    assert plain.predicted_name == f"class {predicted}"
    named = describe(res, None, classes=engine.classes)
    assert named.predicted_name == engine.classes[predicted]
    assert named.target_name == engine.classes[other]
    p = torch.softmax(res.logits.double(), 0)
    assert named.predicted_probability == pytest.approx(float(p[predicted]))
    assert named.sentence.startswith(f"The model predicts '{engine.classes[predicted]}'")
    assert f"'{engine.classes[other]}' ({float(p[other]):.1%})" in named.sentence
    assert all(e.name is None for e in named.channels)


def test_no_positive_evidence(engine: GradCAM, image: torch.Tensor) -> None:
    res = engine.explain(image, LAYER)
    empty = dataclasses.replace(res, weights=-res.weights.abs() - 1)  # type: ignore[union-attr]
    said = describe(empty, None)
    assert said.channels == () and said.share == 0
    assert "is empty: no channel adds evidence" in said.sentence
    against = dataclasses.replace(empty, counterfactual=True)
    assert "Nothing at layer4 speaks against" in describe(against, None).sentence


def test_fewer_positive_channels_than_k(engine: GradCAM, image: torch.Tensor) -> None:
    res = engine.explain(image, LAYER)
    weights = torch.full_like(res.weights, -1.0)  # type: ignore[arg-type]
    weights[7] = 2.0
    acts = res.activations.clone()
    acts[7] = 1.0  # a channel with mass, so its contribution is positive
    said = describe(dataclasses.replace(res, weights=weights, activations=acts), None, k=3)
    assert [e.channel for e in said.channels] == [7] and said.share == pytest.approx(1.0)
    assert "it carries 100%" in said.sentence


def test_bad_input(engine: GradCAM, image: torch.Tensor) -> None:
    batch = engine.explain(torch.stack([image, image.flip(-1)]), LAYER)
    table = names_for(512, {})
    with pytest.raises(ValueError, match=r"this one is a batch.*describe\(res\[0\], names\)"):
        describe(batch, table)
    assert describe(batch[1], table).target == batch.target[1]  # type: ignore[index]
    res = engine.explain(image, LAYER)
    with pytest.raises(ValueError, match="names are for layer 'layer3'"):
        describe(res, names_for(512, {}, layer="layer3"))
    with pytest.raises(ValueError, match="names cover 64 channels but the layer has 512"):
        describe(res, names_for(64, {}))
    with pytest.raises(ValueError, match="k must be a positive int"):
        describe(res, table, k=0)
    with pytest.raises(TypeError, match="CamResult"):
        describe("map", table)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ChannelNames or None"):
        describe(res, {"0": "fur"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="3 class names for 4"):
        describe(res, table, classes=["a", "b", "c"])
    no_weights = dataclasses.replace(res, weights=None, method="mean-activation")
    with pytest.raises(ValueError, match="'mean-activation' has no channel weights"):
        describe(no_weights, table)
