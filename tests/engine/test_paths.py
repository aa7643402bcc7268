"""The fast paths give the same numbers as the slow ones, and are taken only when proven.

Analytic alpha at a pooled linear head == autograd; several classes in one vectorised backward
== one backward per class; the cache-free batch path keeps nothing; forwards record only the
layers that can be asked; half precision; CUDA where present.
"""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camwidgets import GradCAM
from camwidgets.engine.methods import Method, MethodInputs, MethodOutput, register_method
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot, tiny_net
from tests.engine.reference import reference_gradcam

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no CUDA device on this machine")


def images(n: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def autograd_only(engine: GradCAM) -> GradCAM:
    """The same engine with the analytic head switched off: every alpha from a backward."""
    engine._pooled = None
    return engine


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return resnet18()


# -- analytic alpha at a proven global-average-pool + linear head -------------------------------


def test_resnet_head_is_proven_at_layer4_only(model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    assert "layer4" in engine.analytic_layers
    assert not {"layer3", "layer4.1.bn2", "layer4.1.conv2"} & set(engine.analytic_layers)


@pytest.mark.parametrize("counterfactual", [False, True])
def test_analytic_alpha_equals_autograd_and_runs_no_backward(
    model: nn.Module, counterfactual: bool
) -> None:
    x = images(3)
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    fast = engine.explain(x, layer="layer4", target=[1, 5, 9], counterfactual=counterfactual)
    assert engine.cache_info().backwards == 0
    slow_engine = autograd_only(GradCAM(model, transform=small_transform()))
    slow = slow_engine.explain(x, layer="layer4", target=[1, 5, 9], counterfactual=counterfactual)
    assert slow_engine.cache_info().backwards == 1
    assert fast.weights is not None and slow.weights is not None
    scale = float(slow.heatmap.abs().max())
    assert float((fast.heatmap - slow.heatmap).abs().max()) <= 1e-6 * scale
    torch.testing.assert_close(fast.weights, slow.weights, rtol=1e-5, atol=1e-9)
    sign = -1.0 if counterfactual else 1.0
    for i, c in enumerate((1, 5, 9)):
        heat, _, alpha, _ = reference_gradcam(model, x[i : i + 1], "layer4", c, sign)
        torch.testing.assert_close(fast.weights[i], alpha, rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(fast.heatmap[i], heat, rtol=1e-4, atol=1e-6)
    assert_unchanged(model, before)


class FullGradients(Method):
    """Test method: exposes the full gradient it is given as its map (channel 0)."""

    name = "test-full-gradients"
    needs_gradients = True

    def __call__(self, inputs: MethodInputs) -> MethodOutput:
        assert inputs.gradients is not None
        return MethodOutput(None, inputs.gradients[:, 0])


def test_analytic_full_gradients_equal_autograd(model: nn.Module) -> None:
    register_method(FullGradients())
    x = images(2)
    fast = GradCAM(model, transform=small_transform())
    slow = autograd_only(GradCAM(model, transform=small_transform()))
    a = fast.explain(x, layer="layer4", target=[2, 3], method="test-full-gradients")
    b = slow.explain(x, layer="layer4", target=[2, 3], method="test-full-gradients")
    assert fast.cache_info().backwards == 0 and slow.cache_info().backwards == 1
    torch.testing.assert_close(a.coarse, b.coarse, rtol=1e-5, atol=1e-10)
    h, w = a.coarse.shape[-2:]
    fc = model.fc.weight.detach()  # type: ignore[union-attr]
    expected = (fc[[2, 3], 0] / (h * w))[:, None, None].expand(2, h, w)
    torch.testing.assert_close(a.coarse, expected, rtol=1e-6, atol=0)


def test_head_weight_edits_are_followed() -> None:
    model = resnet18()
    engine = GradCAM(model, transform=small_transform())
    x = images(1)
    with torch.no_grad():
        model.fc.weight.mul_(-2.0)  # type: ignore[operator]
    engine.clear_cache()
    res = engine.explain(x, layer="layer4", target=4)
    _, _, alpha, _ = reference_gradcam(model, x, "layer4", 4)
    torch.testing.assert_close(res.weights, alpha, rtol=1e-5, atol=1e-9)


class Head(nn.Module):
    """A conv body with a configurable head, to check what the proof accepts and refuses."""

    def __init__(self, head: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh())
        self.features = nn.Conv2d(6, 8, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(8, 5)
        self.fc2 = nn.Linear(5, 5)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(self.body(x))
        if self.head == "gap":
            return self.fc(a.mean(dim=(2, 3)))
        if self.head == "adaptive":
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(a, 1), 1))
        if self.head == "relu-between":  # in place after the layer: no longer linear in it
            return self.fc(self.relu(a).mean(dim=(2, 3)))
        if self.head == "scaled-in-place":  # linear, but alpha is 2 W / (h w)
            a.mul_(2.0)
            return self.fc(a.mean(dim=(2, 3)))
        if self.head == "sum":  # linear, but alpha is W, not W / (h w)
            return self.fc(a.sum(dim=(2, 3)))
        if self.head == "two-linear":  # linear, but the map is fc2 @ fc, not fc
            return self.fc2(self.fc(a.mean(dim=(2, 3))))
        if self.head == "batch-mixing":  # subtracts the batch mean: images are not independent
            pooled = a.mean(dim=(2, 3))
            return self.fc(pooled - pooled.mean(dim=0, keepdim=True))
        if self.head == "gated":  # multiplied by a detached function of the image
            pooled = a.mean(dim=(2, 3))
            return self.fc(pooled * pooled.detach().abs())
        raise AssertionError(self.head)


@pytest.mark.parametrize(
    ("head", "proven"),
    [
        ("gap", True),
        ("adaptive", True),
        ("relu-between", False),
        ("scaled-in-place", False),
        ("sum", False),
        ("two-linear", False),
        ("batch-mixing", False),
        ("gated", False),
    ],
)
def test_proof_accepts_only_a_true_pooled_linear_head(head: str, proven: bool) -> None:
    model = Head(head).eval()
    engine = GradCAM(model, transform=small_transform(), layers=["features"])
    assert ("features" in engine.analytic_layers) is proven
    x = images(1)
    res = engine.explain(x, layer="features", target=2)
    assert engine.cache_info().backwards == (0 if proven else 1)
    heat, _, alpha, _ = reference_gradcam(model, x, "features", 2)
    torch.testing.assert_close(res.weights, alpha, rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(res.heatmap, heat, rtol=1e-4, atol=1e-6)


def test_pinned_proof_falls_back_at_another_input_size() -> None:
    """An AvgPool2d(k) head is global only at the grid it was proven at."""

    class FixedPool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Conv2d(3, 4, 3, stride=4, padding=1)
            self.pool = nn.AvgPool2d(SIZE // 4)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.flatten(self.pool(self.features(x)), 1))

    torch.manual_seed(0)
    model = FixedPool().eval()
    engine = GradCAM(model, transform=small_transform())
    assert engine.analytic_layers == ["features"]
    small = torch.randn(1, 3, SIZE, SIZE)
    engine.explain(small, target=1)
    assert engine.cache_info().backwards == 0
    # Twice the size: the pool now averages 2x2 windows; with 4 outputs per channel the fc
    # input no longer fits, so use a pool-free check: the proof must not be used here.
    assert engine._pooled is not None
    assert not engine._pooled.covers("features", (2 * SIZE // 4, 2 * SIZE // 4))
    assert engine._pooled.covers("features", (SIZE // 4, SIZE // 4))


def test_tiny_net_in_place_residual_head() -> None:
    """TinyNet's last ReLU acts in place on the residual sum: the proof is about what the ReLU
    module returned, and agrees with the reference there and before it."""
    model = tiny_net()
    engine = GradCAM(model, transform=small_transform())
    x = images(1)
    for layer in engine.layers:
        res = engine.explain(x, layer=layer, target=3)
        heat, _, alpha, _ = reference_gradcam(model, x, layer, 3)
        torch.testing.assert_close(res.weights, alpha, rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(res.heatmap, heat, rtol=1e-4, atol=1e-6)


# -- several classes in one backward --------------------------------------------------------------


@pytest.mark.parametrize("batched", [False, True])
def test_explain_classes_batched_equals_per_class(model: nn.Module, batched: bool) -> None:
    x = images(1, seed=11)
    layers = ["layer2", "layer3", "layer4"]
    engine = GradCAM(model, transform=small_transform())
    engine._batched_backward = batched  # on the CPU the default is per class
    engine.watch(layers)
    classes = [0, 4, 7, 9]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: vmap falls back to a loop
        results = engine.explain_classes(x, classes, layer="layer3")
    assert [r.target for r in results] == classes and not results[0].cached
    assert engine.cache_info().backwards == (1 if batched else len(classes))
    for c in classes:
        for layer in layers:
            for cf in (False, True):
                got = engine.explain(x, layer=layer, target=c, counterfactual=cf)
                assert got.cached
                heat, _, alpha, _ = reference_gradcam(model, x, layer, c, -1.0 if cf else 1.0)
                torch.testing.assert_close(got.weights, alpha, rtol=1e-5, atol=1e-8)
                torch.testing.assert_close(got.heatmap, heat, rtol=1e-4, atol=1e-6)


def test_explain_classes_batched_and_looped_agree_on_a_batch(model: nn.Module) -> None:
    x = images(2, seed=12)
    targets: list[list[int]] = [[0, 1], [2, 3], [9, 9]]
    out = {}
    for batched in (False, True):
        engine = GradCAM(model, transform=small_transform())
        engine._batched_backward = batched
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            out[batched] = engine.explain_classes(x, targets, layer="layer2")  # type: ignore[arg-type]
    for a, b in zip(out[False], out[True], strict=True):
        assert a.target == b.target
        scale = float(a.heatmap.abs().max())
        assert float((a.heatmap - b.heatmap).abs().max()) <= 1e-6 * scale
        torch.testing.assert_close(a.weights, b.weights, rtol=1e-5, atol=1e-9)


def test_explain_classes_rejects_a_bare_target(model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    with pytest.raises(TypeError, match="list of explain targets"):
        engine.explain_classes(images(1), 3)  # type: ignore[arg-type]


# -- the cache-free batch path ---------------------------------------------------------------


@pytest.mark.parametrize("layer", ["layer4", "layer3"])
def test_uncached_path_frees_graph_and_activations(model: nn.Module, layer: str) -> None:
    engine = GradCAM(model, transform=small_transform())
    seen: list[weakref.ref[torch.Tensor]] = []
    graph: list[bool] = []

    def keep(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        seen.append(weakref.ref(out))
        graph.append(out.requires_grad)

    # layer2's output is saved by layer3's first convolution for the backward: if any graph
    # survived the call, it would still be alive.
    handles = [model.layer2.register_forward_hook(keep), model.layer4.register_forward_hook(keep)]
    try:
        res = engine.explain(images(3), layer=layer, target=[0, 1, 2], cache=False)
    finally:
        for handle in handles:
            handle.remove()
    gc.collect()
    assert seen and all(ref() is None for ref in seen), "a tensor of the call is still alive"
    assert engine.cache_info().entries == 0 and res.heatmap.shape == (3, SIZE, SIZE)
    # At the proven head the forward builds no graph at all.
    assert graph == ([False, False] if layer == "layer4" else [True, True])


def test_uncached_equals_cached_everywhere(model: nn.Module) -> None:
    x = images(2, seed=21)
    cached = GradCAM(model, transform=small_transform())
    fresh = GradCAM(model, transform=small_transform())
    for layer in ("layer1", "layer3", "layer4"):
        a = cached.explain(x, layer=layer, target=[3, 6])
        b = fresh.explain(x, layer=layer, target=[3, 6], cache=False)
        torch.testing.assert_close(a.heatmap, b.heatmap, rtol=0, atol=0)
    assert fresh.cache_info().entries == 0


# -- what a forward records -----------------------------------------------------------------------


def test_watch_records_exactly_the_watched_and_asked_layers(model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    engine.watch(["layer1", model.layer3])
    assert engine.watched == ["layer1", "layer3"]
    x = images(1)
    engine.explain(x, layer="layer4", target=0)
    entry = engine._cache._items[engine.prepare(x).fingerprint]
    # Engine v3: the stages (layer1..layer4 here) are recorded by default besides the watched.
    assert list(entry.records) == ["layer1", "layer2", "layer3", "layer4"]
    assert entry.graph, "layer1 and layer3 need a backward: the graph is kept"
    # layer4 is analytic, but watching promises free switches: the class's one backward runs
    # with its first map, as it would at any other layer.
    assert engine.cache_info().backwards == 1
    assert engine.explain(x, layer="layer1", target=0).cached
    engine.watch([])
    assert engine.watched == []
    y = images(1, seed=99)
    engine.explain(y, layer="layer4", target=0)
    entry = engine._cache._items[engine.prepare(y).fingerprint]
    assert list(entry.records) == engine.stages, "stages and explained so far: still recorded"
    plain = GradCAM(model, transform=small_transform())
    plain.explain(y, layer="layer4", target=0)
    entry = plain._cache._items[plain.prepare(y).fingerprint]
    # The stages need a backward later, so the graph is kept; none runs for the analytic map.
    assert list(entry.records) == plain.stages and entry.graph
    assert plain.cache_info().backwards == 0
    with pytest.raises(ValueError, match="unknown layer"):
        engine.watch(["layer9"])


def test_analytic_entry_gains_a_graph_when_a_deeper_layer_is_asked(model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    x = images(1, seed=5)
    first = engine.explain(x, layer="layer4", target=2)
    assert engine.cache_info().forwards == 1 and engine.cache_info().backwards == 0
    res = engine.explain(x, layer="layer2", target=2)
    # Engine v3: the first forward recorded the stages with their graph: no second forward.
    assert engine.cache_info().forwards == 1 and engine.cache_info().backwards == 1
    heat, _, _, _ = reference_gradcam(model, x, "layer2", 2)
    torch.testing.assert_close(res.heatmap, heat, rtol=1e-4, atol=1e-6)
    again = engine.explain(x, layer="layer4", target=2)
    assert again.cached
    torch.testing.assert_close(again.heatmap, first.heatmap, rtol=0, atol=0)


def test_gradient_depth_setter_watches_every_layer_from_there(model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    engine.gradient_depth = "layer3"
    assert engine.watched == engine.layers[engine.layers.index("layer3") :]


# -- half precision -----------------------------------------------------------------------------


def _bf16_supported() -> bool:
    try:
        conv = nn.Conv2d(3, 2, 3).to(torch.bfloat16)
        conv(torch.randn(1, 3, 8, 8, dtype=torch.bfloat16)).sum()
    except RuntimeError:
        return False
    return True


@pytest.mark.skipif(not _bf16_supported(), reason="this torch build has no CPU bfloat16 conv")
def test_bfloat16_model_on_cpu() -> None:
    model = resnet18().to(torch.bfloat16)
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    assert engine.dtype == torch.bfloat16 and "layer4" in engine.analytic_layers
    x = images(1, seed=8)
    reference_model = resnet18().to(torch.bfloat16).float()  # same bf16 weights, in float32
    for layer in ("layer4", "layer3"):
        res = engine.explain(x, layer=layer, target=6)
        assert res.heatmap.dtype == torch.float32 and bool(torch.isfinite(res.heatmap).all())
        heat, _, alpha, _ = reference_gradcam(reference_model, x.bfloat16().float(), layer, 6)
        corr = torch.corrcoef(torch.stack([res.heatmap.ravel(), heat.ravel()]))[0, 1]
        assert float(corr) > 0.98, f"{layer}: r={float(corr):.4f} against float32"
        assert res.weights is not None
        torch.testing.assert_close(
            res.weights, alpha, rtol=0.05, atol=0.05 * float(alpha.abs().max())
        )
    slow = autograd_only(GradCAM(model, transform=small_transform()))
    a = engine.explain(x, layer="layer4", target=6).weights
    b = slow.explain(x, layer="layer4", target=6).weights
    assert a is not None and b is not None
    torch.testing.assert_close(a, b, rtol=2e-2, atol=1e-2 * float(b.abs().max()))
    assert_unchanged(model, before)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


# -- CUDA -----------------------------------------------------------------------------------------


@needs_cuda
def test_cuda_matches_reference_and_batches_classes() -> None:
    model = resnet18().cuda()
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    assert engine._batched_backward, "one vectorised backward for several classes on CUDA"
    x = images(1, seed=4).cuda()
    engine.watch(["layer2", "layer3", "layer4"])
    results = engine.explain_classes(x, [1, 2, 3], layer="layer3")
    assert engine.cache_info().backwards == 1
    for res in results:
        assert isinstance(res.target, int)
        heat, _, alpha, _ = reference_gradcam(model, x, "layer3", res.target)
        # TF32 convolutions (PyTorch's CUDA default) in both: compare at that precision.
        torch.testing.assert_close(res.weights, alpha.cpu(), rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(res.heatmap, heat.cpu(), rtol=1e-3, atol=1e-4)
    layer4 = engine.explain(x, layer="layer4", target=2)
    heat, _, _, _ = reference_gradcam(model, x, "layer4", 2)
    torch.testing.assert_close(layer4.heatmap, heat.cpu(), rtol=1e-3, atol=1e-4)
    assert_unchanged(model, before)


@needs_cuda
def test_cuda_uncached_batch_at_the_head_keeps_no_graph() -> None:
    model = resnet18().cuda()
    engine = GradCAM(model, transform=small_transform())
    x = images(16, seed=2).cuda()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    engine.explain(x, layer="layer4", target=list(range(10)) + [0] * 6, cache=False)
    torch.cuda.synchronize()
    fast_peak = torch.cuda.max_memory_allocated() - base
    assert torch.cuda.memory_allocated() - base < 1 << 20, "nothing stays on the GPU"
    torch.cuda.reset_peak_memory_stats()
    with torch.enable_grad():
        model(x.clone().requires_grad_(True)).sum()  # a forward that keeps its graph
    graph_peak = torch.cuda.max_memory_allocated() - base
    assert fast_peak < graph_peak


@needs_cuda
def test_cuda_float16_model() -> None:
    model = resnet18().half().cuda()
    engine = GradCAM(model, transform=small_transform())
    x = images(2, seed=6).cuda()
    reference_model = resnet18().half().float().cuda()
    for layer in ("layer4", "layer3"):
        res = engine.explain(x, layer=layer, target=[1, 2])
        assert bool(torch.isfinite(res.heatmap).all())
        _, coarse, _, _ = reference_gradcam(reference_model, x[:1].half().float(), layer, 1)
        # The signed coarse map: at layer4 class 1's ReLU'd map is all zero for this seed (in
        # float32 too), which would make a correlation of heat maps undefined.
        ours = res.coarse[0].ravel()
        assert float(ours.std()) > 0
        corr = torch.corrcoef(torch.stack([ours, coarse.cpu().ravel()]))[0, 1]
        assert float(corr) > 0.98
