"""Real architectures, built offline with seeded random weights: default layer, exact maps on
their own layouts (against the hand-written rearranging reference), and hygiene.

Inputs are as small as each model allows; the heavy ones are marked slow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import timm
import torch
import torchvision
from torch import nn
from torchvision import transforms

from camwidgets import GradCAM
from tests.conftest import assert_unchanged, snapshot, with_random_batchnorm
from tests.engine.test_layouts import (
    Rearrange,
    assert_maps_close,
    nhwc_to_nchw,
    reference_layout_gradcam,
    tokens_to_nchw,
)

tv = torchvision.models


@dataclass(frozen=True)
class Case:
    """A model, its input size, its expected default layer and grid, and layers to check."""

    build: Callable[[], nn.Module]
    size: int
    default: str
    grid: tuple[int, int]
    # layer -> "nchw", "nhwc" or ("tokens", prefix): how the hand-written reference reads it
    checks: dict[str, str | tuple[str, int]]


def tv_vit() -> nn.Module:
    model = tv.vit_b_16(weights=None, image_size=64)
    with torch.no_grad():  # torchvision initialises the head to zero: every score constant
        model.heads.head.weight.normal_(0.0, 0.02)
    return model


def tm(name: str, **kwargs: object) -> Callable[[], nn.Module]:
    return lambda: timm.create_model(name, pretrained=False, **kwargs)


CASES = {
    "resnet18": Case(lambda: tv.resnet18(), 64, "layer4", (2, 2), {"layer4": "nchw"}),
    "vgg11": Case(lambda: tv.vgg11(), 64, "features", (2, 2), {"features": "nchw"}),
    "alexnet": Case(lambda: tv.alexnet(), 96, "features", (2, 2), {"features": "nchw"}),
    "convnext_tiny": Case(
        lambda: tv.convnext_tiny(),
        64,
        "features",
        (2, 2),
        {"features": "nchw", "features.5.2.block.2": "nhwc"},
    ),
    "swin_t": Case(
        lambda: tv.swin_t(), 64, "norm", (2, 2), {"norm": "nhwc", "features.5.1": "nhwc"}
    ),
    "vit_b_16": Case(
        tv_vit,
        64,
        "encoder.layers.encoder_layer_11.ln_1",
        (4, 4),
        {
            "encoder.layers.encoder_layer_11.ln_1": ("tokens", 1),
            "encoder.layers.encoder_layer_5": ("tokens", 1),
        },
    ),
    "mobilenet_v3_small": Case(
        lambda: tv.mobilenet_v3_small(), 64, "features", (2, 2), {"features": "nchw"}
    ),
    "timm_vit_tiny": Case(
        tm("vit_tiny_patch16_224", img_size=64),
        64,
        "blocks.11.norm1",
        (4, 4),
        {"blocks.11.norm1": ("tokens", 1), "blocks.3.mlp": ("tokens", 1)},
    ),
    "timm_vit_tiny_dynamic": Case(
        tm("vit_tiny_patch16_224", img_size=64, dynamic_img_size=True),
        64,
        "blocks.11.norm1",
        (4, 4),
        {"blocks.11.norm1": ("tokens", 1), "patch_embed": "nhwc"},
    ),
    "timm_deit_distilled": Case(
        tm("deit_tiny_distilled_patch16_224", img_size=64),
        64,
        "blocks.11.norm1",
        (4, 4),
        {"blocks.11.norm1": ("tokens", 2), "blocks.6": ("tokens", 2)},
    ),
    "timm_swin": Case(
        tm("swin_tiny_patch4_window7_224", img_size=64, window_size=2),
        64,
        "norm",
        (2, 2),
        {"norm": "nhwc", "layers.2.blocks.1": "nhwc"},
    ),
    "timm_convnext": Case(
        tm("convnext_atto"), 64, "stages", (2, 2), {"stages": "nchw", "stages.1": "nchw"}
    ),
}
SLOW = {
    "resnet50": Case(lambda: tv.resnet50(), 64, "layer4", (2, 2), {"layer4": "nchw"}),
    "densenet121": Case(lambda: tv.densenet121(), 64, "features", (2, 2), {"features": "nchw"}),
    "efficientnet_b0": Case(
        lambda: tv.efficientnet_b0(), 64, "features", (2, 2), {"features": "nchw"}
    ),
    "regnet_y_400mf": Case(
        lambda: tv.regnet_y_400mf(), 64, "trunk_output", (2, 2), {"trunk_output": "nchw"}
    ),
    "maxvit_t": Case(
        lambda: tv.maxvit_t(),
        224,
        "blocks.3",
        (7, 7),
        {"blocks.3": "nchw", "blocks.2.layers.1.layers.grid_attention": "nchw"},
    ),
    "timm_vit_registers": Case(
        tm("vit_small_patch14_reg4_dinov2", img_size=56),
        56,
        "blocks.11.norm1",
        (4, 4),
        {"blocks.11.norm1": ("tokens", 5), "blocks.0": ("tokens", 5)},
    ),
}
PARAMS = [pytest.param(k, c, id=k) for k, c in CASES.items()] + [
    pytest.param(k, c, id=k, marks=pytest.mark.slow) for k, c in SLOW.items()
]


def rearrangement(spec: str | tuple[str, int], grid: tuple[int, int]) -> Rearrange:
    if spec == "nchw":
        return lambda t: t
    if spec == "nhwc":
        return nhwc_to_nchw
    assert isinstance(spec, tuple)
    return tokens_to_nchw(spec[1], *grid)


@pytest.mark.parametrize(("key", "case"), PARAMS)
def test_architecture(key: str, case: Case) -> None:
    torch.manual_seed(0)
    model = with_random_batchnorm(case.build())
    before = snapshot(model)
    transform = transforms.Compose(
        [transforms.Resize(case.size), transforms.CenterCrop(case.size), transforms.ToTensor()]
    )
    engine = GradCAM(model, transform=transform)
    assert engine.default_layer == case.default
    assert engine.layer_shapes[case.default][1:] == case.grid
    assert engine.stages and set(engine.stages) <= set(engine.layers)
    assert case.default in engine.stages
    assert not [n for n in engine.layers if ".attn." in n or "partition" in n]
    x = torch.randn(2, 3, case.size, case.size, generator=torch.Generator().manual_seed(5))
    for layer, spec in case.checks.items():
        grid = engine.layer_shapes[layer][1:]
        if isinstance(spec, tuple):  # tokens: every token layer sits on the patch grid
            assert grid == case.grid
        for counterfactual in (False, True):
            sign = -1.0 if counterfactual else 1.0
            res = engine.explain(x, layer=layer, target=[3, 7], counterfactual=counterfactual)
            heat, coarse, alpha = reference_layout_gradcam(
                model, x, layer, [3, 7], rearrangement(spec, grid), sign
            )
            assert res.coarse.shape == (2, *grid)
            assert_maps_close(res.coarse, coarse)
            assert_maps_close(res.heatmap, heat)
            assert res.weights is not None
            assert_maps_close(res.weights, alpha)
    assert float(engine.explain(x, target=[3, 7]).coarse.abs().max()) > 0
    assert_unchanged(model, before)
