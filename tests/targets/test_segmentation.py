"""Segmenters as they come (torchvision FCN, DeepLabV3, LR-ASPP with random weights): Region
targets against the from-scratch reference (hooks + autograd.grad of the masked class sum)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from camwidgets import GradCAM
from camwidgets.targets import Box, Region
from tests.conftest import assert_unchanged, hook_state, snapshot
from tests.targets.reference import assert_close_map, reference_cam

SIZE = (72, 96)


def region_score(mask: np.ndarray, label: int):
    """Sum of class ``label``'s raw scores over ``mask`` resized (nearest) to the output."""

    def score(output: dict[str, torch.Tensor]) -> torch.Tensor:
        out = output["out"]
        small = F.interpolate(
            torch.from_numpy(mask.astype(np.float32))[None, None], size=out.shape[-2:]
        )[0, 0]
        return (out[0, label] * small).sum()

    return score


@pytest.fixture(scope="module")
def fcn() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=4
    ).eval()


@pytest.fixture(scope="module")
def engine(fcn: nn.Module) -> GradCAM:
    return GradCAM(fcn)


@pytest.fixture(scope="module")
def picture(engine: GradCAM) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return engine.prepare(torch.rand(3, *SIZE, generator=g).numpy().transpose(1, 2, 0)).tensor[0]


def a_mask(shape: tuple[int, int] = SIZE) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[shape[0] // 5 : shape[0] // 2, shape[1] // 4 : 3 * shape[1] // 4] = True
    return mask


def test_no_score_fn_default_layer_and_class_view(engine: GradCAM, fcn: nn.Module) -> None:
    assert engine.kind == "segmenter" and engine.num_classes == 4
    assert engine.default_layer == "backbone.layer4"
    x = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        expected = fcn(x)["out"].sum(dim=(-2, -1))
    assert torch.allclose(engine.embedding(x), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize(
    ("layer", "counterfactual"),
    [("backbone.layer4", False), ("backbone.layer4", True), ("backbone.layer2", False)],
)
def test_region_matches_the_reference(
    engine: GradCAM, fcn: nn.Module, picture: torch.Tensor, layer: str, counterfactual: bool
) -> None:
    mask = a_mask()
    res = engine.explain(
        picture, layer=layer, target=Region(mask, 2), counterfactual=counterfactual
    )
    sign = -1.0 if counterfactual else 1.0
    ref = reference_cam(fcn, picture, layer, region_score(mask, 2), sign)
    assert_close_map(res.coarse, ref.coarse)
    assert_close_map(res.heatmap, ref.heatmap)
    assert res.score == pytest.approx(ref.score, rel=1e-5)
    with torch.no_grad():
        prob = fcn(picture[None])["out"].softmax(dim=1)[0, 2][torch.from_numpy(mask)].mean()
    assert res.probability == pytest.approx(float(prob), rel=1e-5)


def test_a_mask_of_another_size_is_resized_nearest(
    engine: GradCAM, fcn: nn.Module, picture: torch.Tensor
) -> None:
    big = np.kron(a_mask(), np.ones((2, 2), bool))  # the same region over a 2x picture
    res = engine.explain(picture, target=Region(big, 1))
    ref = reference_cam(fcn, picture, engine.default_layer, region_score(big, 1))
    assert_close_map(res.coarse, ref.coarse)


def test_class_index_is_the_whole_picture(engine: GradCAM, picture: torch.Tensor) -> None:
    whole = engine.explain(picture, target=3)
    region = engine.explain(picture, target=Region(np.ones(SIZE, bool), 3))
    assert_close_map(whole.coarse, region.coarse, rtol=1e-5)


def test_bad_regions_fail_before_any_pass(engine: GradCAM, picture: torch.Tensor) -> None:
    before = engine.cache_info()
    with pytest.raises(ValueError, match="empty"):
        Region(np.zeros(SIZE, bool), 1)
    with pytest.raises(ValueError, match="2-D"):
        Region(np.ones(5, bool), 1)
    with pytest.raises(ValueError, match="out of range"):
        engine.explain(picture, target=Region(a_mask(), 9))
    with pytest.raises(ValueError, match="needs a detector"):
        engine.explain(picture, target=Box((0, 0, 4, 4), 1))
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (before.forwards, before.backwards)


def test_the_model_is_left_as_found(fcn: nn.Module, picture: torch.Tensor) -> None:
    fcn.train()
    before, hooks = snapshot(fcn), hook_state(fcn)
    try:
        engine = GradCAM(fcn, layers=["backbone.layer4"])
        engine.explain(picture, target=Region(a_mask(), 0), counterfactual=True)
        assert_unchanged(fcn, before)
        assert hook_state(fcn) == hooks
    finally:
        fcn.eval()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["deeplabv3", "lraspp"])
def test_other_segmenters_match_the_reference(family: str) -> None:
    torch.manual_seed(0)
    seg = torchvision.models.segmentation
    if family == "deeplabv3":
        model = seg.deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=3)
    else:
        model = seg.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=3)
    model.eval()
    engine = GradCAM(model)
    assert engine.kind == "segmenter" and engine.default_layer.startswith("backbone.")
    picture = engine.prepare(np.random.default_rng(0).random((*SIZE, 3))).tensor[0]
    mask = a_mask()
    for layer in (engine.default_layer, engine.layers[-1]):
        res = engine.explain(picture, layer=layer, target=Region(mask, 1))
        ref = reference_cam(model, picture, layer, region_score(mask, 1))
        assert_close_map(res.coarse, ref.coarse)
        assert_close_map(res.heatmap, ref.heatmap)
