"""Guided backpropagation and Guided Grad-CAM: a hand-written reference, captum, hygiene."""

from __future__ import annotations

import copy
import warnings
from typing import cast

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from camwidgets import GradCAM
from camwidgets.engine.guided import UnguidedReLUWarning, guided_gradients
from tests.conftest import (
    SIZE,
    assert_unchanged,
    hook_state,
    resnet18,
    small_transform,
    snapshot,
    tiny_net,
    with_random_batchnorm,
)

captum_attr = pytest.importorskip("captum.attr")


def mlp(inplace: bool, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 16),
        nn.ReLU(inplace=inplace),
        nn.Linear(16, 12),
        nn.ReLU(inplace=inplace),
        nn.Linear(12, 4),
    ).eval()


def manual_guided(net: nn.Sequential, x: torch.Tensor, target: int) -> torch.Tensor:
    """Guided backprop written out by hand: R <- W^T R through the linears, and at each ReLU
    R <- 1[z > 0] * max(R, 0) with z the ReLU's input (Springenberg et al., eq. for guided)."""
    lin1, lin2, lin3 = (cast(nn.Linear, net[i]) for i in (0, 2, 4))
    z1 = x @ lin1.weight.T + lin1.bias
    h1 = z1.clamp_min(0)
    z2 = h1 @ lin2.weight.T + lin2.bias
    r = lin3.weight[target].expand(x.shape[0], -1)
    r = (z2 > 0) * r.clamp_min(0)
    r = r @ lin2.weight
    r = (z1 > 0) * r.clamp_min(0)
    return (r @ lin1.weight).detach()


@pytest.mark.parametrize("inplace", [False, True])
def test_matches_the_hand_written_rule(inplace: bool) -> None:
    net = mlp(inplace)
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    got = guided_gradients(net, x, lambda y: y[:, 2].sum())
    torch.testing.assert_close(got, manual_guided(net, x, 2), rtol=1e-5, atol=1e-6)
    # ... and it is not the plain gradient, so the test can tell them apart
    xr = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(xr)[:, 2].sum(), xr)
    assert (plain - got).abs().max() > 1e-3


def test_in_place_relus_give_the_same_result_as_out_of_place() -> None:
    model = resnet18()
    out_of_place = copy.deepcopy(model)
    for module in out_of_place.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    a = guided_gradients(model, x, lambda y: y[:, 4].sum())
    b = guided_gradients(out_of_place, x, lambda y: y[:, 4].sum())
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ["resnet18", "vgg11"])
def test_agrees_with_captum_guided_backprop(arch: str) -> None:
    torch.manual_seed(0)
    model = with_random_batchnorm(getattr(torchvision.models, arch)(weights=None, num_classes=10))
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    peer = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # captum warns that it sets hooks
        expected = captum_attr.GuidedBackprop(peer).attribute(x.clone(), target=[3, 7]).detach()
    engine = GradCAM(model, transform=small_transform())
    got = engine.guided_backprop(x, target=[3, 7])
    assert got.shape == (2, 3, SIZE, SIZE)
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6 * float(expected.abs().max()))


@pytest.mark.parametrize(("arch", "layer"), [("resnet18", "layer4"), ("vgg11", "features.20")])
def test_guided_gradcam_agrees_with_captum(arch: str, layer: str) -> None:
    torch.manual_seed(1)
    model = with_random_batchnorm(getattr(torchvision.models, arch)(weights=None, num_classes=10))
    x = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    peer = copy.deepcopy(model)
    module = dict(peer.named_modules())[layer]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = (
            captum_attr.GuidedGradCam(peer, module)
            .attribute(x.clone(), target=[1, 5], interpolate_mode="bilinear")
            .detach()
        )
    engine = GradCAM(model, transform=small_transform())
    res = engine.explain(x, layer=layer, target=[1, 5], method="guided-gradcam")
    plain = engine.explain(x, layer=layer, target=[1, 5])
    assert res.guided is not None and res.guided.shape == (2, 3, SIZE, SIZE)
    torch.testing.assert_close(res.heatmap, plain.heatmap, rtol=0, atol=0)
    assert expected.abs().max() > 0
    scale = float(expected.abs().max())
    torch.testing.assert_close(res.guided, expected, rtol=1e-4, atol=1e-5 * scale)
    # single results carry their own (3, H, W) slice
    assert res[1].guided is not None
    torch.testing.assert_close(res[1].guided, res.guided[1])


class Negated(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.model(x)
        return -out


def test_counterfactual_is_guided_backprop_of_minus_the_score() -> None:
    model = resnet18()
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = captum_attr.GuidedBackprop(Negated(copy.deepcopy(model))).attribute(
            x.clone(), target=6
        )
    engine = GradCAM(model, transform=small_transform())
    got = engine.guided_backprop(x, target=6, counterfactual=True)
    assert got.shape == (3, SIZE, SIZE)
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected[0].detach(), rtol=1e-4, atol=1e-6 * scale)
    res = engine.explain(x, target=6, counterfactual=True, method="guided-gradcam")
    assert res.guided is not None
    torch.testing.assert_close(res.guided, got * res.heatmap, rtol=1e-6, atol=1e-9)


def test_repeats_are_cached_and_the_model_is_left_as_found() -> None:
    model = resnet18().train()
    model(torch.randn(2, 3, SIZE, SIZE)).sum().backward()  # the user's own .grad
    for p in cast(nn.Module, model.layer1).parameters():
        p.requires_grad_(False)  # a frozen part too
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    engine.watch(["layer3"])  # recorded by the first forward, so explaining it runs none
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        first = engine.guided_backprop(x, target=2)
        info = engine.cache_info()
        again = engine.guided_backprop(x, target=2)
        res = engine.explain(x, target=2, method="guided-gradcam", layer="layer3")
    assert engine.cache_info().forwards == info.forwards
    assert engine.cache_info().backwards == info.backwards + 1  # Grad-CAM's own backward only
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert res.guided is not None
    torch.testing.assert_close(res.guided, first * res.heatmap)
    assert_unchanged(model, before)
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, before["grads"][name])  # type: ignore[arg-type,index]


def test_works_under_inference_mode() -> None:
    net = mlp(True)
    x = torch.randn(3, 6, generator=torch.Generator().manual_seed(7))
    expected = manual_guided(net, x, 1)
    with torch.inference_mode():
        got = guided_gradients(net, x.clone(), lambda y: y[:, 1].sum())
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_hooks_are_removed_when_the_forward_raises() -> None:
    model = tiny_net()
    before = hook_state(model)

    def objective(_y: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        guided_gradients(model, torch.randn(1, 3, 8, 8), objective)
    assert hook_state(model) == before
    assert not model.training


class FunctionalNet(nn.Module):
    """ReLUs as F.relu calls in forward (plus one nn.ReLU module), which guidance cannot see."""

    def __init__(self, module_relu: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin1 = nn.Linear(6, 16)
        self.lin2 = nn.Linear(16, 12)
        self.lin3 = nn.Linear(12, 4)
        self.act = nn.ReLU() if module_relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.lin1(x))
        z = self.lin2(h)
        h = self.act(z) if self.act is not None else F.relu(z)
        return self.lin3(h)  # type: ignore[no-any-return]


def test_functional_relu_is_not_guided_and_says_so() -> None:
    net = FunctionalNet(module_relu=False).eval()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(8))
    with pytest.warns(UnguidedReLUWarning, match="2 ReLU op"):
        got = guided_gradients(net, x, lambda y: y[:, 0].sum())
    # with no nn.ReLU module, guided backpropagation is exactly the plain gradient
    xr = x.clone().requires_grad_(True)
    (plain,) = torch.autograd.grad(net(xr)[:, 0].sum(), xr)
    torch.testing.assert_close(got, plain, rtol=1e-6, atol=1e-7)


def test_mixed_model_guides_only_the_module_relu() -> None:
    net = FunctionalNet(module_relu=True).eval()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(9))
    with pytest.warns(UnguidedReLUWarning, match="1 ReLU op"):
        got = guided_gradients(net, x, lambda y: y[:, 3].sum())
    z1 = net.lin1(x)
    z2 = net.lin2(z1.clamp_min(0))
    r = net.lin3.weight[3].expand(4, -1)
    r = (z2 > 0) * r.clamp_min(0)  # the nn.ReLU: guided
    r = (z1 > 0) * (r @ net.lin2.weight)  # the F.relu: plain ReLU gradient
    torch.testing.assert_close(got, (r @ net.lin1.weight).detach(), rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        guided_gradients(net, x, lambda y: y[:, 3].sum(), warn=False)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module"):
        guided_gradients(lambda v: v, torch.randn(1, 3), lambda y: y.sum())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="single-element"):
        guided_gradients(mlp(False), torch.randn(2, 6), lambda y: y)
    engine = GradCAM(resnet18(), transform=small_transform())
    with pytest.raises(TypeError, match="counterfactual"):
        engine.guided_backprop(torch.randn(1, 3, SIZE, SIZE), counterfactual="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        engine.guided_backprop(torch.randn(1, 3, SIZE, SIZE), target=99)
