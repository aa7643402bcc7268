"""Grad-CAM maps against an independent reference, CAM equivalence, counterfactual, batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from camwidgets import GradCAM
from tests.conftest import SIZE, resnet18, small_transform, tiny_net
from tests.engine.reference import reference_gradcam

LAYERS = ["layer4", "layer3", "layer1", "layer4.1.bn2", "layer1.0.bn1", "layer2.0.conv1", "bn1"]


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return resnet18()


@pytest.fixture(scope="module")
def engine(model: torch.nn.Module) -> GradCAM:
    return GradCAM(model, transform=small_transform())


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("counterfactual", [False, True])
def test_matches_reference(
    engine: GradCAM, model: torch.nn.Module, image: torch.Tensor, layer: str, counterfactual: bool
) -> None:
    target = 7
    heat, coarse, alpha, acts = reference_gradcam(
        model, image, layer, target, sign=-1.0 if counterfactual else 1.0
    )
    res = engine.explain(image, layer=layer, target=target, counterfactual=counterfactual)
    assert res.heatmap.dtype == torch.float32 and res.heatmap.shape == (SIZE, SIZE)
    torch.testing.assert_close(res.activations, acts, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(res.weights, alpha, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(res.coarse, coarse, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(res.heatmap, heat, rtol=1e-4, atol=1e-6)
    assert res.heatmap.min() >= 0 and res.coarse.abs().max() > 0  # ReLU applied; map not trivial
    assert res.layer == layer and res.counterfactual is counterfactual and res.target == target


def test_overwritten_batchnorm_is_its_true_output(engine: GradCAM, image: torch.Tensor) -> None:
    """layer4.1.bn2's output is later rewritten by ``out += identity``: we keep the original."""
    res = engine.explain(image, layer="layer4.1.bn2", target=2)
    block_out = engine.explain(image, layer="layer4.1", target=2)
    # The rewritten tensor (bn2 + identity, ReLU'd) differs from bn2's output; a view-keeping
    # implementation would report the block output here.
    assert not torch.allclose(res.activations, block_out.activations)


def test_not_normalised(engine: GradCAM, image: torch.Tensor) -> None:
    res = engine.explain(image, target=3)
    assert float(res.heatmap.max()) != pytest.approx(1.0)
    torch.testing.assert_close(res.heatmap.max(), res.coarse.clamp_min(0).max(), rtol=1e-4, atol=0)


def test_counterfactual_negates_weights(engine: GradCAM, image: torch.Tensor) -> None:
    normal = engine.explain(image, layer="layer3", target=4)
    counter = engine.explain(image, layer="layer3", target=4, counterfactual=True)
    torch.testing.assert_close(counter.weights, -normal.weights)
    torch.testing.assert_close(counter.coarse, -normal.coarse)
    expected = F.interpolate(
        (-normal.coarse).clamp_min(0)[None, None], size=(SIZE, SIZE), mode="bilinear"
    )[0, 0]
    torch.testing.assert_close(counter.heatmap, expected)
    assert counter.score == normal.score and counter.probability == normal.probability


def test_cam_equals_gradcam_up_to_a_constant(engine: GradCAM, image: torch.Tensor) -> None:
    assert engine.has_cam and "layer4" in engine.cam_layers
    grad = engine.explain(image, layer="layer4", target=5)
    cam = engine.explain(image, layer="layer4", target=5, method="cam")
    h, w = grad.coarse.shape
    # d mean_hw(A) / dA = 1/(h w), so Grad-CAM's alpha is the fc row divided by h*w.
    torch.testing.assert_close(cam.weights, grad.weights * h * w, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(cam.heatmap, grad.heatmap * h * w, rtol=1e-4, atol=1e-5)
    fc = engine.model.fc.weight.detach()  # type: ignore[union-attr]
    torch.testing.assert_close(cam.weights, fc[5])


def test_cam_refused_elsewhere(engine: GradCAM, image: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="CAM is defined only at"):
        engine.explain(image, layer="layer3", method="cam")


def test_batch_equals_per_image(model: torch.nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    batch = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    targets = [1, 8, 3]
    res = engine.explain(batch, layer="layer3", target=targets)
    assert res.batched and res.heatmap.shape == (3, SIZE, SIZE) and res.target == (1, 8, 3)
    assert engine.cache_info().forwards == 1 and engine.cache_info().backwards == 1
    for i, t in enumerate(targets):
        heat, _, alpha, _ = reference_gradcam(model, batch[i : i + 1], "layer3", t)
        torch.testing.assert_close(res.heatmap[i], heat, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(res.weights[i], alpha, rtol=1e-4, atol=1e-7)
        single = engine.explain(batch[i], layer="layer3", target=t)
        torch.testing.assert_close(single.heatmap, res.heatmap[i], rtol=1e-4, atol=1e-6)
        assert single.score == pytest.approx(res.score[i], rel=1e-5)  # type: ignore[index]


def test_list_of_images_is_a_batch(engine: GradCAM) -> None:
    images = [torch.rand(3, SIZE, SIZE) for _ in range(2)]
    res = engine.explain(images, target=[0, 1])
    assert res.batched and res.heatmap.shape == (2, SIZE, SIZE)


def test_default_target_is_top1_and_names(image: torch.Tensor) -> None:
    names = [f"class-{i}" for i in range(10)]
    engine = GradCAM(resnet18(), classes=names, transform=small_transform())
    top = engine.predict(image, k=1)[0]
    res = engine.explain(image)
    assert res.target == top.index and res.target_name == names[top.index]  # type: ignore[union-attr]
    by_name = engine.explain(image, target="class-4")
    assert by_name.target == 4


def test_predict_matches_softmax(
    engine: GradCAM, model: torch.nn.Module, image: torch.Tensor
) -> None:
    with torch.no_grad():
        logits = model(image)[0]
    probs = logits.softmax(0)
    order = probs.argsort(descending=True)[:5]
    preds = engine.predict(image, k=5)
    assert [p.index for p in preds] == order.tolist()  # type: ignore[union-attr]
    for p in preds:
        assert p.probability == pytest.approx(float(probs[p.index]), rel=1e-5)  # type: ignore[union-attr]
        assert p.logit == pytest.approx(float(logits[p.index]), rel=1e-5, abs=1e-6)  # type: ignore[union-attr]


def test_tiny_net_inplace_residual() -> None:
    model = tiny_net()
    engine = GradCAM(model, transform=small_transform())
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    for layer in ("bn2", "bn1", "conv2", "relu"):
        heat, coarse, _, _ = reference_gradcam(model, x, layer, 1)
        res = engine.explain(x, layer=layer, target=1)
        torch.testing.assert_close(res.coarse, coarse, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(res.heatmap, heat, rtol=1e-4, atol=1e-6)


def test_matches_captum(model: torch.nn.Module, engine: GradCAM, image: torch.Tensor) -> None:
    """captum's LayerGradCam with ReLU and bilinear upsampling is an independent check."""
    captum_attr = pytest.importorskip("captum.attr")
    layer = model.layer3  # type: ignore[attr-defined]
    attr = captum_attr.LayerGradCam(model, layer).attribute(image, target=6, relu_attributions=True)
    up = captum_attr.LayerAttribution.interpolate(attr, (SIZE, SIZE), interpolate_mode="bilinear")
    res = engine.explain(image, layer="layer3", target=6)
    torch.testing.assert_close(res.heatmap, up[0, 0].detach(), rtol=1e-4, atol=1e-6)
