"""What each call costs in real model passes, counted outside the engine; results on the device.

Forwards are counted by a forward pre-hook that the test installs on the model's root: a call
whose input lives on the ``meta`` device computes nothing (shape propagation) and is not a real
forward. Backwards are counted by an identity autograd Function on the scores.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from camwidgets import GradCAM
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot, tiny_net

LAYERS = ["layer1", "layer2", "layer3", "layer4"]


class CountBackward(torch.autograd.Function):
    """Identity whose backward counts how often gradients flow back through the scores."""

    calls = 0

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        CountBackward.calls += 1
        return grad


class Scored(nn.Module):
    """A model whose scores pass through ``CountBackward`` (same names as the inner ResNet)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return CountBackward.apply(self.inner(x))  # type: ignore[no-any-return]


@contextmanager
def real_forwards(model: nn.Module) -> Iterator[list[int]]:
    """Count the model's real forwards (input not on ``meta``) while the block runs."""
    count = [0]

    def pre(_: nn.Module, args: tuple[Any, ...]) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].device.type != "meta":
            count[0] += 1

    handle = model.register_forward_pre_hook(pre)
    try:
        yield count
    finally:
        handle.remove()


def test_construction_runs_one_real_forward() -> None:
    model = resnet18()
    with real_forwards(model) as count:
        engine = GradCAM(model, transform=small_transform())
    assert count[0] == 1
    # Everything that discovery and the head proof gave before is still found.
    assert engine.default_layer == "layer4"
    assert engine.stages == LAYERS
    assert {"layer4"} <= set(engine.analytic_layers)
    assert engine.has_cam and "layer4" in engine.cam_layers
    assert engine.layer_shapes["layer4"] == (512, SIZE // 32, SIZE // 32)


@pytest.mark.parametrize("order", ["shallow first", "deep first"])
def test_natural_forty_map_session_is_one_forward(order: str) -> None:
    """4 layers x 5 classes x normal/counterfactual, nested, no ``watch``: one forward."""
    model = Scored(resnet18(num_classes=8))
    layers = [f"inner.{name}" for name in LAYERS]
    if order == "deep first":
        layers.reverse()
    with real_forwards(model) as count:
        engine = GradCAM(model, transform=small_transform())
        built = count[0]
        CountBackward.calls = 0
        image = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
        results = [
            engine.explain(image, layer=layer, target=c, counterfactual=cf)
            for layer in layers
            for c in range(5)
            for cf in (False, True)
        ]
    assert built <= 1
    assert count[0] - built == 1, "the whole session costs one forward"
    # Shallow first: each class's first backward reaches every stage. Deep first (the head is
    # not provably analytic here, the counting Function sits on the scores): one backward per
    # class to layer4, then, once a second layer is asked, one per class to the first stage.
    assert CountBackward.calls == (5 if order == "shallow first" else 10)
    assert len(results) == 40
    # Every map equals a fresh engine's single map (nothing served from a wrong entry).
    fresh = GradCAM(Scored(resnet18(num_classes=8)), transform=small_transform())
    for i in (0, 13, 27, 39):
        layer, c, cf = layers[i // 10], (i % 10) // 2, bool(i % 2)
        alone = fresh.explain(image, layer=layer, target=c, counterfactual=cf)
        torch.testing.assert_close(results[i].heatmap, alone.heatmap, rtol=1e-5, atol=1e-6)


def test_a_non_stage_layer_asked_later_costs_one_forward_then_is_recorded() -> None:
    model = resnet18()
    engine = GradCAM(model, transform=small_transform())
    image = torch.randn(3, SIZE, SIZE)
    with real_forwards(model) as count:
        engine.explain(image, layer="layer4", target=1)
        engine.explain(image, layer="layer2", target=1)  # a stage: recorded by default
        assert count[0] == 1
        engine.explain(image, layer="layer3.0.conv1", target=1)  # not a stage: one forward
        assert count[0] == 2
        engine.explain(image, layer="layer3.0.conv1", target=2)
        assert count[0] == 2


def test_meta_shape_pass_leaves_a_caching_model_as_found() -> None:
    class SizeCache(nn.Module):
        """Keeps a per-size tensor on itself, built lazily in forward (as some ViTs do)."""

        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_net()
            self.grids: dict[tuple[int, int], torch.Tensor] = {}
            self.last: torch.Tensor | None = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            size = (int(x.shape[-2]), int(x.shape[-1]))
            if size not in self.grids:
                self.grids[size] = torch.zeros(size, device=x.device)
            self.last = self.grids[size]
            return self.net(x + self.grids[size])  # type: ignore[no-any-return]

    model = SizeCache()
    GradCAM(model, transform=small_transform())
    tensors = [*model.grids.values(), model.last]
    assert all(t is not None and t.device.type == "cpu" for t in tensors)
    res = GradCAM(model, transform=small_transform()).explain(torch.randn(3, SIZE, SIZE))
    assert res.heatmap.device.type == "cpu"


# -- results on the device --------------------------------------------------------------------


def test_results_stay_where_they_were_computed_and_copy_on_request() -> None:
    engine = GradCAM(resnet18(), transform=small_transform())
    x = torch.randn(2, 3, SIZE, SIZE)
    res = engine.explain(x, layer="layer3", target=[1, 2])
    tensors = [res.heatmap, res.coarse, res.activations, res.logits]
    assert res.weights is not None
    assert all(t.device == x.device for t in [*tensors, res.weights]) and res.device == x.device
    assert res.cpu() is res, "on the CPU nothing is copied"
    assert isinstance(res.numpy(), np.ndarray) and res.numpy().dtype == np.float32
    assert res.numpy().shape == (2, SIZE, SIZE)
    assert (res.numpy() == res.heatmap.numpy()).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_results_stay_on_the_gpu_and_match_the_cpu() -> None:
    cpu = GradCAM(resnet18(), transform=small_transform())
    gpu = GradCAM(resnet18().cuda(), transform=small_transform())
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    ours = gpu.explain(x.cuda(), layer="layer3", target=3)
    assert ours.heatmap.is_cuda and ours.coarse.is_cuda and ours.logits.is_cuda
    host = ours.cpu()
    assert not host.heatmap.is_cuda and host.weights is not None and not host.weights.is_cuda
    want = cpu.explain(x, layer="layer3", target=3)
    torch.testing.assert_close(host.heatmap, want.heatmap, rtol=1e-3, atol=1e-4)
    assert abs(host.score - want.score) < 1e-3


# -- warts --------------------------------------------------------------------------------------


def test_results_are_truthy_single_and_batch() -> None:
    engine = GradCAM(resnet18(), transform=small_transform())
    single = engine.explain(torch.randn(3, SIZE, SIZE), target=0)
    batch = engine.explain(torch.randn(3, 3, SIZE, SIZE), target=0)
    assert bool(single) and bool(batch) and len(batch) == 3
    assert [bool(r) for r in batch] == [True, True, True]
    with pytest.raises(TypeError, match="no len"):
        len(single)


def test_a_model_that_does_not_take_images_says_so() -> None:
    model = nn.Linear(3, 10).train()
    before = snapshot(model)
    with pytest.raises(TypeError, match=r"does not take images.*\(N, C, H, W\)") as info:
        GradCAM(model)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert_unchanged(model, before)
