"""Cache by content: one forward per image, one backward per (image, class), bounded bytes."""

from __future__ import annotations

import gc
import weakref

import torch
from torch import nn

from camwidgets import GradCAM
from tests.conftest import SIZE, resnet18, small_transform


class CountBackward(torch.autograd.Function):
    """Identity whose backward counts how often gradients flow through the head."""

    calls = 0

    @staticmethod
    def forward(ctx: object, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> torch.Tensor:
        CountBackward.calls += 1
        return grad


class Counted(nn.Module):
    """ResNet-18 whose forwards are counted and whose backwards pass a counting identity."""

    def __init__(self) -> None:
        super().__init__()
        self.net = resnet18()
        self.forwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += 1
        return CountBackward.apply(self.net(x))  # type: ignore[no-any-return]


def test_forty_map_session_is_one_forward_and_five_backwards() -> None:
    model = Counted()
    engine = GradCAM(model, transform=small_transform())
    model.forwards, CountBackward.calls = 0, 0
    image = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    layers = ["net.layer1", "net.layer2", "net.layer3", "net.layer4"]
    engine.watch(layers)  # as the panel does with its layer list
    top5 = [p.index for p in engine.predict(image, k=5)]  # type: ignore[union-attr]
    results = [
        engine.explain(image.clone(), layer=layer, target=c, counterfactual=cf)
        for layer in layers
        for c in top5
        for cf in (False, True)
    ]
    assert len(results) == 40
    assert model.forwards == 1, "a 40-map session on one image costs one forward"
    assert CountBackward.calls == 5, "one backward per class"
    info = engine.cache_info()
    assert (info.forwards, info.backwards) == (1, 5)
    # Once computed, every layer and the counterfactual are free, in any order.
    again = engine.explain(image, layer="net.layer2", target=top5[3], counterfactual=True)
    assert again.cached and model.forwards == 1 and CountBackward.calls == 5
    assert not results[0].cached and results[1].cached


def test_deeper_watched_layer_later_costs_one_more_backward_then_nothing() -> None:
    model = Counted()
    engine = GradCAM(model, transform=small_transform())
    engine.watch(["net.layer1", "net.layer3", "net.layer4"])
    engine.gradient_depth = "net.layer4"  # never shallower than what watch() already set
    assert engine.gradient_depth == "net.layer1"
    model.forwards, CountBackward.calls = 0, 0
    image = torch.randn(3, SIZE, SIZE)
    engine.explain(image, layer="net.layer4", target=1)  # one backward to the deepest watched
    engine.explain(image, layer="net.layer1", target=1)
    engine.explain(image, layer="net.layer4", target=2)
    engine.explain(image, layer="net.layer1", target=2)
    engine.explain(image, layer="net.layer3", target=2, counterfactual=True)
    assert CountBackward.calls == 2 and model.forwards == 1


def test_unwatched_layer_costs_a_forward_once_then_is_recorded() -> None:
    """A forward records the stages and the layers asked so far; a new one is remembered.

    (Engine v3: the readable stages are recorded by default, so a first switch between them
    costs no forward; a layer that is not a stage still costs one, once.)
    """
    model = Counted()
    engine = GradCAM(model, transform=small_transform())
    model.forwards, CountBackward.calls = 0, 0
    image, other = torch.randn(3, SIZE, SIZE), torch.randn(3, SIZE, SIZE)
    stages = {"net.layer1", "net.layer2", "net.layer3", "net.layer4"}
    engine.explain(image, layer="net.layer4", target=1)
    entry = engine._cache._items[engine.prepare(image).fingerprint]
    assert set(entry.records) == stages, "the stages (and the asked layer) are hooked"
    engine.explain(image, layer="net.layer2", target=1)  # a stage: recorded already
    assert model.forwards == 1
    engine.explain(image, layer="net.layer2.0", target=1)  # not recorded: forward again
    assert model.forwards == 2
    assert engine.explain(image, layer="net.layer4", target=1).cached  # alphas carried over
    engine.explain(other, layer="net.layer4", target=3)  # records every asked layer now
    entry = engine._cache._items[engine.prepare(other).fingerprint]
    assert set(entry.records) == stages | {"net.layer2.0"} and model.forwards == 3
    engine.explain(other, layer="net.layer2.0", target=3)
    assert model.forwards == 3


def test_same_pixels_different_object_hit_the_cache() -> None:
    model = Counted()
    engine = GradCAM(model, transform=small_transform())
    model.forwards = 0
    a = torch.rand(3, SIZE, SIZE)
    engine.explain(a, target=0)
    engine.explain(a.clone(), target=0)
    engine.explain(a.numpy().transpose(1, 2, 0), target=0)  # same picture as float HWC -> resampled
    assert model.forwards == 2
    b = a.clone()
    b[0, 0, 0] += 0.5
    engine.explain(b, target=0)
    assert model.forwards == 3


def test_byte_bound_evicts_least_recently_used_and_frees_graphs() -> None:
    model = resnet18()
    probe = GradCAM(model, transform=small_transform())
    probe.explain(torch.rand(3, SIZE, SIZE), target=0)
    one_image = probe.cache_info().bytes
    engine = GradCAM(model, transform=small_transform(), cache_bytes=int(one_image * 2.5))
    images = [torch.rand(3, SIZE, SIZE) for _ in range(4)]
    refs = []
    for image in images:
        engine.explain(image, target=0)
        entry = engine._cache._items[engine.prepare(image).fingerprint]
        refs.append(weakref.ref(entry.scores))
    info = engine.cache_info()
    assert info.entries == 2 and info.bytes <= info.max_bytes
    gc.collect()
    assert refs[0]() is None and refs[1]() is None, "evicted graphs are freed"
    assert refs[3]() is not None
    before = info.forwards
    engine.explain(images[3], target=0)  # still cached
    engine.explain(images[0], target=0)  # evicted: recomputed
    assert engine.cache_info().forwards == before + 1


def test_clear_cache() -> None:
    engine = GradCAM(resnet18(), transform=small_transform())
    image = torch.rand(3, SIZE, SIZE)
    engine.explain(image)
    engine.clear_cache()
    assert engine.cache_info().entries == 0 and engine.cache_info().bytes == 0
    assert not engine.explain(image).cached


def test_engine_imports_no_widget_or_plotting_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys, camwidgets, camwidgets.engine;"
        "bad = [m for m in ('ipywidgets', 'plotly', 'IPython') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gradient_depth_set_ahead_makes_every_layer_free() -> None:
    model = Counted()
    engine = GradCAM(model, transform=small_transform())
    assert engine.gradient_depth is None
    engine.gradient_depth = "net.layer1"
    CountBackward.calls = 0
    image = torch.randn(3, SIZE, SIZE)
    engine.explain(image, layer="net.layer4", target=1)
    for layer in ("net.layer1", "net.layer2", "net.layer3"):
        assert engine.explain(image, layer=layer, target=1).cached
    assert CountBackward.calls == 1 and engine.gradient_depth == "net.layer1"
    engine.gradient_depth = "net.layer3"  # never makes it shallower: work already paid for stays
    assert engine.gradient_depth == "net.layer1"
