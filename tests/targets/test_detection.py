"""Detectors as they come: torchvision detection models with random weights, no score_fn.

Every map is compared with ``reference_cam`` (plain hooks + ``torch.autograd.grad`` of the
chosen box's reported score, written in tests/targets/reference.py); the heat map goes through
the model's own resize and padding there too.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN, RetinaNet, fcos_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import box_iou

from camwidgets import GradCAM
from camwidgets.targets import Box, Detection
from tests.conftest import assert_unchanged, hook_state, snapshot
from tests.targets.reference import assert_close_map, reference_cam

PICTURE = (3, 90, 120)  # resized inside to min_size 128: the padding is real (divisible by 32)


def faster_rcnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
    return FasterRCNN(backbone, num_classes=4, min_size=128, max_size=160).eval()


@pytest.fixture(scope="module")
def detector() -> nn.Module:
    return faster_rcnn()


@pytest.fixture(scope="module")
def engine(detector: nn.Module) -> GradCAM:
    return GradCAM(detector)


@pytest.fixture(scope="module")
def picture() -> torch.Tensor:
    return torch.rand(PICTURE, generator=torch.Generator().manual_seed(1))


def box_score(target: Box):
    """The reported score of the output box of ``target.label`` with the largest IoU."""

    def score(output: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        det = output[0]
        iou = box_iou(torch.tensor([target.box]), det["boxes"].detach())[0]
        iou[det["labels"] != target.label] = -1
        return det["scores"][int(iou.argmax())]

    return score


def as_list(model: nn.Module, x: torch.Tensor) -> object:
    return model([x])  # the way torchvision documents it: a list of (C, H, W) pictures


def test_no_score_fn_and_default_layer_is_the_trunk(engine: GradCAM) -> None:
    assert engine.kind == "detector"
    assert engine.default_layer == "backbone.body.layer4"
    assert engine.num_classes == 4
    assert "backbone.fpn:pool" in engine.layers
    # FPN levels 0..3 are the FPN's layer_blocks outputs: both names work.
    assert engine._layer("backbone.fpn:0") == "backbone.fpn.layer_blocks.0"
    assert not any(n.startswith(("rpn", "roi_heads")) for n in engine.layers)


def test_detect_matches_the_models_output(
    engine: GradCAM, detector: nn.Module, picture: torch.Tensor
) -> None:
    found = engine.detect(picture)
    with torch.no_grad():
        out = detector([picture])[0]
    assert len(found) == len(out["boxes"]) > 0
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    first = found[0]
    j = int(out["scores"].argmax())
    assert first.box == pytest.approx(out["boxes"][j].tolist(), abs=1e-4)
    assert first.label == int(out["labels"][j]) and first.name == engine.classes[first.label]
    assert first.score == pytest.approx(float(out["scores"][j]), abs=1e-6)
    # Boxes lie over the input picture (the model maps them back from its resized batch).
    assert all(0 <= d.box[0] < d.box[2] <= PICTURE[2] + 1e-3 for d in found)
    assert all(0 <= d.box[1] < d.box[3] <= PICTURE[1] + 1e-3 for d in found)


@pytest.mark.parametrize(
    ("layer", "counterfactual"),
    [("backbone.body.layer4", False), ("backbone.body.layer4", True), ("backbone.fpn:0", False)],
)
def test_box_matches_the_reference(
    engine: GradCAM,
    detector: nn.Module,
    picture: torch.Tensor,
    layer: str,
    counterfactual: bool,
) -> None:
    detection = engine.detect(picture)[1]
    # A Box near the detection, not the detection itself: the IoU match picks it.
    x0, y0, x1, y1 = detection.box
    target = Box((x0 + 1, y0, x1, y1 - 1), detection.label, iou=0.5)
    res = engine.explain(picture, layer=layer, target=target, counterfactual=counterfactual)
    sign = -1.0 if counterfactual else 1.0
    ref = reference_cam(detector, picture, layer, box_score(target), sign, call=as_list)
    assert_close_map(res.coarse, ref.coarse)
    assert_close_map(res.heatmap, ref.heatmap)
    assert res.heatmap.shape == PICTURE[1:]
    assert res.score == pytest.approx(ref.score, abs=1e-6) == pytest.approx(detection.score)
    assert res.target == target and res.target_name == f"{engine.classes[target.label]} box"


def test_one_forward_per_picture_one_backward_per_target(
    engine: GradCAM, picture: torch.Tensor
) -> None:
    fresh = picture.flip(-1).contiguous()
    found = engine.detect(fresh)  # the forward, cached with the picture
    before = engine.cache_info()
    engine.explain(fresh, target=found[0])
    after = engine.cache_info()
    assert (after.forwards - before.forwards, after.backwards - before.backwards) == (0, 1)
    # The counterfactual, and a Box equal to the detection: no model pass.
    assert engine.explain(fresh, target=found[0], counterfactual=True).cached
    assert engine.explain(fresh, target=Box(found[0].box, found[0].label)).cached
    assert hash(Box(found[0].box, found[0].label)) == hash(found[0])


@pytest.mark.slow
def test_the_box_score_is_differentiable_through_the_box_head(
    detector: nn.Module, picture: torch.Tensor
) -> None:
    """d(score)/d(layer4) from autograd agrees with a central finite difference (float64).

    torchvision's RPN detaches its proposals (they are coordinates, not features), so the
    gradient of a box score is the one through the box head with the proposals held: the
    finite difference holds them too (the RPN's output replayed from the unperturbed pass).
    """
    model = faster_rcnn().double()
    x = picture.double()
    proposals: list[object] = []

    def replay(_m: nn.Module, _i: object, output: object) -> object:
        if not proposals:
            proposals.append(output)
        return proposals[0]

    with torch.no_grad():
        out = model([x])[0]
    target = Box(tuple(out["boxes"][0].tolist()), int(out["labels"][0]), iou=0.9)
    score = box_score(target)
    direction = torch.randn(1, 512, 4, 5, generator=torch.Generator().manual_seed(3)).double()
    shift: list[float] = [0.0]
    kept: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: object, output: torch.Tensor) -> torch.Tensor:
        kept[:] = [output]
        return output + shift[0] * direction

    handles = [
        model.backbone.body.layer4.register_forward_hook(hook),
        model.rpn.register_forward_hook(replay),
    ]
    try:
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(score(model([x])), kept[0])
        assert kept[0].shape == direction.shape  # 128 x 160 input: a 4 x 5 grid at stride 32
        eps, values = 1e-5, []
        for s in (eps, -eps):
            shift[0] = s
            with torch.no_grad():
                values.append(float(score(model([x]))))
    finally:
        for handle in handles:
            handle.remove()
    numeric = (values[0] - values[1]) / (2 * eps)
    analytic = float((grad * direction).sum())
    assert abs(analytic) > 1e-6
    assert numeric == pytest.approx(analytic, rel=1e-5)


def test_a_box_nothing_overlaps_names_the_nearest(engine: GradCAM, picture: torch.Tensor) -> None:
    nearest = engine.detect(picture)[0]
    other = (nearest.label % 3) + 1  # a label it does not have at that spot, maybe elsewhere
    with pytest.raises(ValueError, match=r"IoU >= 0\.99") as info:
        engine.explain(picture, target=Box((0, 0, 3, 3), other, iou=0.99))
    assert "nearest is" in str(info.value) and "engine.detect" in str(info.value)


def test_bad_targets_fail_before_any_pass(engine: GradCAM, picture: torch.Tensor) -> None:
    before = engine.cache_info()
    with pytest.raises(ValueError, match="out of range"):
        engine.explain(picture, target=Box((0, 0, 9, 9), 7))
    with pytest.raises(ValueError, match="unknown class name"):
        engine.explain(picture, target=Box((0, 0, 9, 9), "zebra"))
    with pytest.raises(ValueError, match="needs a segmenter"):
        import numpy as np

        from camwidgets.targets import Region

        engine.explain(picture, target=Region(np.ones((4, 4), bool), 1))
    with pytest.raises(ValueError, match="class targets only"):
        engine.explain(picture, target=Box((0, 0, 9, 9), 1), method="scorecam")
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (before.forwards, before.backwards)


def test_the_model_is_left_as_found(picture: torch.Tensor) -> None:
    model = faster_rcnn(seed=2).train()
    before, hooks = snapshot(model), hook_state(model)
    engine = GradCAM(model)
    found = engine.detect(picture)
    engine.explain(picture, target=found[0])
    with pytest.raises(ValueError):
        engine.explain(picture, target=Box((0, 0, 2, 2), 1, iou=1.0))
    assert_unchanged(model, before)
    assert hook_state(model) == hooks


@pytest.mark.slow
def test_a_batch_takes_one_target_per_picture(engine: GradCAM, detector: nn.Module) -> None:
    g = torch.Generator().manual_seed(5)
    pictures = [torch.rand(PICTURE, generator=g) for _ in range(2)]
    found = engine.detect(pictures)
    assert isinstance(found, list) and len(found) == 2
    targets = [found[0][0], found[1][2]]
    res = engine.explain(torch.stack(pictures), target=targets)
    for i, (x, t) in enumerate(zip(pictures, targets, strict=True)):
        assert isinstance(t, Detection)
        ref = reference_cam(detector, x, engine.default_layer, box_score(t), call=as_list)
        assert_close_map(res.coarse[i], ref.coarse)
        assert_close_map(res.heatmap[i], ref.heatmap)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["retinanet", "fcos", "ssd", "maskrcnn", "keypointrcnn"])
def test_other_families_match_the_reference(family: str) -> None:
    torch.manual_seed(0)
    tv = torchvision.models.detection
    small = {"min_size": 128, "max_size": 160}
    if family == "retinanet":
        backbone = resnet_fpn_backbone(
            backbone_name="resnet18",
            weights=None,
            returned_layers=[2, 3, 4],
            extra_blocks=torchvision.ops.feature_pyramid_network.LastLevelP6P7(256, 256),
        )
        model = RetinaNet(backbone, num_classes=3, score_thresh=0.0, **small)
    elif family == "fcos":
        model = fcos_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=3, score_thresh=0.0, **small
        )
    elif family == "ssd":
        model = tv.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=3)
    elif family == "maskrcnn":
        model = tv.maskrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=3, **small
        )
    else:
        model = tv.keypointrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=2, num_keypoints=3, **small
        )
    model.eval()
    engine = GradCAM(model)
    picture = torch.rand(PICTURE, generator=torch.Generator().manual_seed(1))
    found = engine.detect(picture)
    assert found, f"{family} with random weights detected nothing"
    rcnn = family in ("maskrcnn", "keypointrcnn")
    # The R-CNN box head pools FPN levels 0-3; "pool" feeds only the RPN, whose proposals are
    # detached: a box score does not depend on it (its map is zero, checked below).
    last = "backbone.fpn:3" if rcnn else engine.layers[-1]
    for layer in (engine.default_layer, last):
        res = engine.explain(picture, layer=layer, target=found[0])
        ref = reference_cam(model, picture, layer, box_score(found[0]), call=as_list)
        assert_close_map(res.coarse, ref.coarse)
        assert_close_map(res.heatmap, ref.heatmap)
    if rcnn:
        unused = engine.explain(picture, layer="backbone.fpn:pool", target=found[0])
        assert not unused.weights.any() and not unused.heatmap.any()
