"""Similarity targets on an embedding model (a ResNet with a D-dimensional head), target
objects' identity (hash by content), and concept encoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from camwidgets import GradCAM
from camwidgets.targets import Box, Detection, Region, Similarity
from tests.conftest import assert_unchanged, hook_state, snapshot
from tests.targets.reference import assert_close_map, reference_cam

D = 16


@pytest.fixture(scope="module")
def embedder() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=D).eval()


@pytest.fixture(scope="module")
def engine(embedder: nn.Module) -> GradCAM:
    return GradCAM(embedder)


def cosine_to(vector: torch.Tensor):
    def score(output: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(output, vector[None], dim=1)[0]

    return score


@pytest.mark.parametrize(("layer", "counterfactual"), [("layer4", False), ("layer3", True)])
def test_similarity_to_another_image_matches_the_reference(
    engine: GradCAM, embedder: nn.Module, layer: str, counterfactual: bool
) -> None:
    g = torch.Generator().manual_seed(2)
    x, other = torch.rand(3, 64, 64, generator=g), torch.rand(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        vector = embedder(other)[0]
    res = engine.explain(
        x, layer=layer, target=Similarity(engine.embedding(other)), counterfactual=counterfactual
    )
    ref = reference_cam(embedder, x, layer, cosine_to(vector), -1.0 if counterfactual else 1.0)
    assert_close_map(res.coarse, ref.coarse)
    assert_close_map(res.heatmap, ref.heatmap)
    assert res.score == pytest.approx(ref.score, abs=1e-6)


def test_the_pooled_head_shortcut_is_not_used_for_a_similarity(
    engine: GradCAM, embedder: nn.Module
) -> None:
    # layer4 feeds avgpool + fc, where alpha of a class score is analytic; a cosine is not
    # linear in the scores, so the engine must differentiate it.
    assert "layer4" in engine.analytic_layers
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    vector = torch.randn(D, generator=torch.Generator().manual_seed(5))
    res = engine.explain(x, target=Similarity(vector))
    ref = reference_cam(embedder, x[0], "layer4", cosine_to(vector))
    assert_close_map(res.weights, ref.alpha)


def test_concept_encoder_turns_words_into_a_similarity(embedder: nn.Module) -> None:
    table = {"red": torch.randn(D), "round": torch.randn(D)}
    engine = GradCAM(embedder, concept_encoder=lambda words: table[words])
    x = torch.rand(1, 3, 64, 64)
    res = engine.explain(x, target="red")
    assert isinstance(res.target, Similarity) and res.target.name == "red"
    assert res.target_name == "similarity to red"
    expected = engine.explain(x, target=Similarity(table["red"]))
    assert expected.cached and torch.equal(res.coarse, expected.coarse)
    assert engine.concept("round") == Similarity(table["round"])
    assert engine.explain(x, target="3").target == 3  # class names stay class names


def test_batches_take_one_target_each_with_one_backward(
    engine: GradCAM, embedder: nn.Module
) -> None:
    g = torch.Generator().manual_seed(7)
    batch = torch.rand(2, 3, 64, 64, generator=g)
    vector = torch.randn(D, generator=g)
    targets = [Similarity(vector), 5]
    before = engine.cache_info()
    res = engine.explain(batch, layer="layer3", target=targets)
    assert engine.cache_info().backwards - before.backwards == 1
    ref0 = reference_cam(embedder, batch[0], "layer3", cosine_to(vector))
    ref1 = reference_cam(embedder, batch[1], "layer3", lambda out: out[0, 5])
    assert_close_map(res.coarse[0], ref0.coarse)
    assert_close_map(res.coarse[1], ref1.coarse)
    assert res[1].target == 5 and isinstance(res[0].target, Similarity)


def test_explain_classes_mixes_classes_and_targets(engine: GradCAM) -> None:
    x = torch.rand(1, 3, 64, 64)
    concept = Similarity(np.arange(D, dtype=float) - 7)
    results = engine.explain_classes(x, [1, concept], layer="layer4")
    assert [r.target for r in results] == [1, concept]
    assert engine.explain(x, layer="layer4", target=concept, counterfactual=True).cached


def test_bad_similarities_fail_before_any_pass(engine: GradCAM, embedder: nn.Module) -> None:
    before, hooks = snapshot(embedder), hook_state(embedder)
    passes = engine.cache_info()
    with pytest.raises(ValueError, match="has 5 values but the model's embedding has 16"):
        engine.explain(torch.rand(1, 3, 64, 64), target=Similarity(np.ones(5)))
    with pytest.raises(ValueError, match="finite and not all zero"):
        Similarity(np.zeros(D))
    with pytest.raises(ValueError, match="finite"):
        Similarity([1.0, float("nan")])
    with pytest.raises(ValueError, match="concept_encoder"):
        engine.concept("red")
    with pytest.raises(ValueError, match="class targets only"):
        engine.explain(torch.rand(1, 3, 64, 64), target=Similarity(np.ones(D)), method="cam")
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (passes.forwards, passes.backwards)
    assert_unchanged(embedder, before)
    assert hook_state(embedder) == hooks


def test_targets_are_hashable_by_content() -> None:
    mask = np.zeros((6, 6), bool)
    mask[1:3, 2:5] = True
    assert Region(mask, 1) == Region(mask.astype(np.uint8) * 3, 1)
    assert hash(Region(mask, 1)) == hash(Region(torch.from_numpy(mask), 1))
    assert Region(mask, 1) != Region(mask, 2) and Region(mask, 1) != Region(~mask, 1)
    assert Similarity([1, 2, 3]) == Similarity(np.array([1.0, 2.0, 3.0]), name="other name")
    assert Similarity([1, 2, 3]) != Similarity([1, 2, 4])
    box = Box((1, 2, 30, 40), 3)
    det = Detection((1.0, 2.0, 30.0, 40.0), 3, name="cat", score=0.9, rank=0)
    assert box == det and hash(box) == hash(det) and box != Box((1, 2, 30, 40), 3, iou=0.7)
    assert len({box, det, Region(mask, 1), Region(mask.copy(), 1)}) == 2
    region, before = Region(mask, 1), mask.copy()
    mask[0, 0] = True  # the caller's array changing later does not change the target
    assert region == Region(before, 1) and not region.mask[0, 0]
    assert not region.mask.flags.writeable


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Box((5, 5, 5, 9), 1), "x0 < x1"),
        (lambda: Box((0, 0, 1), 1), "4 finite numbers"),
        (lambda: Box((0, 0, 1, 1), 1, iou=0), "iou must be in"),
        (lambda: Box((0, 0, 1, float("inf")), 1), "4 finite numbers"),
        (lambda: Similarity(np.ones((2, 3))), "one \\(D,\\) embedding"),
    ],
)
def test_bad_target_objects_say_what_is_accepted(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]
