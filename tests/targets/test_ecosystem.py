"""Models as Hugging Face, timm and torchvision ship them: no score_fn, their class names, their
transforms; maps against the from-scratch reference (hooks + autograd.grad of the logit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from camwidgets import GradCAM
from tests.targets.reference import assert_close_map, reference_cam


def picture(size: tuple[int, int] = (70, 90), seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8))


def tokens_reference(
    model: nn.Module, x: torch.Tensor, layer: str, target: int, grid: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coarse, alpha) at a token layer (N, T, C): the last h*w tokens are the patch grid
    (a leading class token dropped), channels moved first; written here, from scratch."""
    module = dict(model.named_modules())[layer]
    stored: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
        stored[:] = [out]
        return out.clone()

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(x[None].clone().requires_grad_(True)).logits
            (grad,) = torch.autograd.grad(logits[0, target], stored[0])
    finally:
        handle.remove()
    h, w = grid

    def to_grid(t: torch.Tensor) -> torch.Tensor:
        return t[0, -h * w :].reshape(h, w, -1).permute(2, 0, 1)

    activations, gradient = to_grid(stored[0].detach()), to_grid(grad)
    alpha = gradient.mean(dim=(1, 2))
    return (alpha[:, None, None] * activations).sum(0), alpha


class Logits(nn.Module):
    """Reads ``.logits`` so that ``reference_cam`` sees a tensor."""

    def forward(self, output: object) -> torch.Tensor:
        return output.logits  # type: ignore[attr-defined]


# -- torchvision weights -------------------------------------------------------------------


def test_torchvision_weights_give_transform_and_categories() -> None:
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1  # metadata only: no download
    engine = GradCAM(torchvision.models.resnet18().eval(), weights=weights)
    assert engine.classes == list(weights.meta["categories"])
    pic = picture((300, 260))
    assert torch.equal(engine.prepare(pic).tensor[0], weights.transforms()(pic))
    with pytest.raises(TypeError, match="torchvision weights enum"):
        GradCAM(torchvision.models.resnet18().eval(), weights="IMAGENET1K_V1")


# -- timm ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "layer_kind"), [("resnet18", "nchw"), ("vit_tiny_patch16_224", "tokens")]
)
def test_timm_pretrained_cfg_is_the_default_transform(name: str, layer_kind: str) -> None:
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    cfg = {
        "input_size": (3, 64, 64),
        "crop_pct": 0.75,
        "interpolation": "bicubic",
        "mean": (0.3, 0.4, 0.5),
        "std": (0.2, 0.25, 0.3),
    }
    extra = {"img_size": 64} if name.startswith("vit") else {}
    torch.manual_seed(0)
    model = timm.create_model(
        name, pretrained=False, num_classes=5, pretrained_cfg_overlay=cfg, **extra
    ).eval()
    engine = GradCAM(model)
    pic = picture()
    expected = create_transform(**resolve_data_config({}, model=model))(pic)
    got = engine.prepare(pic).tensor[0]
    assert got.shape == (3, 64, 64) and torch.equal(got, expected)
    layer = engine.default_layer
    assert engine._layouts[layer].kind == layer_kind
    res = engine.explain(pic, target=3)
    if layer_kind == "nchw":
        ref = reference_cam(model, got, layer, lambda out: out[0, 3])
        assert_close_map(res.coarse, ref.coarse)
        assert_close_map(res.heatmap, ref.heatmap)
    else:
        coarse, alpha = _timm_tokens(model, got, layer, 3, (4, 4))
        assert_close_map(res.coarse, coarse)
        assert_close_map(res.weights, alpha)


def _timm_tokens(
    model: nn.Module, x: torch.Tensor, layer: str, target: int, grid: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    class AsLogits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> object:
            return type("Out", (), {"logits": self.inner(x)})()

    return tokens_reference(AsLogits(), x, f"inner.{layer}", target, grid)


# -- Hugging Face ------------------------------------------------------------------------------

HF = pytest.mark.slow  # importing transformers takes seconds to tens of seconds here


@HF
def test_hf_vit_logits_id2label_and_processor() -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "fox"},
        label2id={"cat": 0, "dog": 1, "fox": 2},
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    engine = GradCAM(model, transform=processor)
    assert engine.classes == ["cat", "dog", "fox"]
    pic = picture()
    x = engine.prepare(pic).tensor[0]
    assert torch.equal(x, processor(images=pic, return_tensors="pt")["pixel_values"][0])
    layer = engine.default_layer
    assert engine._layouts[layer].kind == "tokens"
    res = engine.explain(pic, target="dog")
    coarse, alpha = tokens_reference(model, x, layer, 1, (4, 4))
    assert_close_map(res.coarse, coarse)
    assert_close_map(res.weights, alpha)
    assert res.target == 1 and res.target_name == "dog"
    with torch.no_grad():
        logits = model(x[None]).logits[0]
    assert res.score == pytest.approx(float(logits[1]), abs=1e-5)


@HF
def test_hf_convnext_and_swin_from_configs() -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    convnext = transformers.ConvNextForImageClassification(
        transformers.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=4)
    ).eval()
    engine = GradCAM(
        convnext,
        transform=transformers.ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=1.0),
    )
    pic = picture()
    x = engine.prepare(pic).tensor[0]
    layer = engine.default_layer
    assert layer == "convnext.encoder.stages.3"
    res = engine.explain(pic, target=2)
    ref = reference_cam(nn.Sequential(convnext, Logits()), x, f"0.{layer}", lambda o: o[0, 2])
    assert_close_map(res.coarse, ref.coarse)
    assert_close_map(res.heatmap, ref.heatmap)

    swin = transformers.SwinForImageClassification(
        transformers.SwinConfig(
            image_size=64,
            patch_size=4,
            embed_dim=16,
            depths=[1, 1],
            num_heads=[1, 2],
            window_size=4,
            num_labels=3,
        )
    ).eval()
    engine = GradCAM(swin)  # no processor: config.image_size with ImageNet statistics
    x = engine.prepare(pic).tensor[0]
    assert x.shape == (3, 64, 64)
    layer = engine.default_layer
    kind = engine._layouts[layer].kind
    res = engine.explain(pic, target=1)
    h, w = res.coarse.shape
    if kind == "tokens":
        coarse, _ = tokens_reference(swin, x, layer, 1, (h, w))
    else:
        coarse = reference_cam(
            nn.Sequential(swin, Logits()), x, f"0.{layer}", lambda o: o[0, 1]
        ).coarse
    assert_close_map(res.coarse, coarse)
