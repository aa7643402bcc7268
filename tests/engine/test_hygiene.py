"""The user's model is left exactly as found: flags, parameters, .grad, buffers, hooks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from camwidgets import GradCAM
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot, tiny_net
from tests.engine.reference import reference_gradcam


def _session(engine: GradCAM, x: torch.Tensor) -> None:
    for layer in ("layer1", "layer4.1.bn2", "layer4"):
        for cf in (False, True):
            engine.explain(x, layer=layer, target=3, counterfactual=cf)
    engine.predict(x)


def test_train_mode_model_is_left_in_train_mode_with_buffers_untouched() -> None:
    model = resnet18().train()
    model.layer2.eval()  # a mixed state must survive too, not just the top flag
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    _session(engine, torch.randn(1, 3, SIZE, SIZE))
    assert_unchanged(model, before)
    assert all(p.grad is None for p in model.parameters())


def test_existing_grads_and_user_hooks_are_preserved() -> None:
    model = resnet18()
    model(torch.randn(1, 3, SIZE, SIZE)).sum().backward()  # the user's own .grad
    calls: list[int] = []
    model.layer3.register_forward_hook(lambda m, i, o: calls.append(1))
    before = snapshot(model)
    _session(GradCAM(model, transform=small_transform()), torch.randn(1, 3, SIZE, SIZE))
    assert_unchanged(model, before)
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, before["grads"][name])  # type: ignore[arg-type,index]
    assert calls, "the user's own hook still runs during our forward"


def test_frozen_parameters_and_outer_no_grad() -> None:
    model = resnet18()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    before = snapshot(model)
    with torch.no_grad():
        engine = GradCAM(model, transform=small_transform())
        res = engine.explain(x, layer="layer3", target=1)
    heat, *_ = reference_gradcam(model, x, "layer3", 1)
    torch.testing.assert_close(res.heatmap, heat, rtol=1e-4, atol=1e-6)
    assert_unchanged(model, before)


def test_inside_inference_mode() -> None:
    model = tiny_net()
    with torch.inference_mode():
        x = torch.randn(1, 3, SIZE, SIZE)
        res = GradCAM(model, transform=small_transform()).explain(x, layer="bn2", target=0)
    assert res.heatmap.shape == (SIZE, SIZE) and not res.heatmap.requires_grad


class Failing(nn.Module):
    """Wraps a model and raises inside its forward once armed, after some layers ran."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()
        self.armed = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        if self.armed:
            raise RuntimeError("boom inside forward")
        return out


def test_exception_inside_forward_leaves_nothing_behind() -> None:
    model = Failing().train()
    engine = GradCAM(model, transform=small_transform())
    model.armed = True
    before = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        engine.explain(torch.randn(1, 3, SIZE, SIZE))
    assert_unchanged(model, before)
    assert engine.cache_info().entries == 0


def test_exception_in_score_fn_leaves_nothing_behind() -> None:
    model = tiny_net().train()
    state = {"fail": False}

    def score_fn(out: object) -> torch.Tensor:
        if state["fail"]:
            raise KeyError("logits")
        assert isinstance(out, torch.Tensor)
        return out

    engine = GradCAM(model, transform=small_transform(), score_fn=score_fn)
    state["fail"] = True
    before = snapshot(model)
    with pytest.raises(KeyError):
        engine.explain(torch.randn(1, 3, SIZE, SIZE))
    assert_unchanged(model, before)


def test_results_are_immutable_and_detached() -> None:
    res = GradCAM(tiny_net(), transform=small_transform()).explain(torch.randn(1, 3, SIZE, SIZE))
    with pytest.raises(AttributeError):
        res.layer = "x"  # type: ignore[misc]
    for t in (res.heatmap, res.coarse, res.weights, res.activations):
        assert not t.requires_grad and t.grad_fn is None and t.device.type == "cpu"


@pytest.mark.parametrize("batched", [False, True])
def test_fast_paths_leave_the_model_as_found(batched: bool) -> None:
    """The head proof at construction, watched forwards, several classes per backward and the
    cache-free path: flags, parameters, .grad, buffers and hooks all as found."""
    model = resnet18().train()
    model(torch.randn(2, 3, SIZE, SIZE)).sum().backward()  # the user's own .grad
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    assert "layer4" in engine.analytic_layers
    engine._batched_backward = batched
    engine.watch(["layer2", "layer4"])
    x = torch.randn(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: vmap falls back to a loop
        engine.explain_classes(x, [0, 1, 2], layer="layer2", counterfactual=True)
    engine.explain(x, layer="layer4", target=5)
    engine.explain(x.repeat(3, 1, 1, 1), layer="layer4", target=[0, 1, 2], cache=False)
    engine.explain(x.repeat(2, 1, 1, 1), layer="layer3", target=[3, 4], cache=False)
    assert_unchanged(model, before)
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, before["grads"][name])  # type: ignore[arg-type,index]
