"""The engine v2 API: batch results, the uncached batch path, activations, scores, methods."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from camwidgets import GradCAM
from camwidgets.engine.methods import METHODS, Method, MethodInputs, MethodOutput, register_method
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot
from tests.engine.reference import reference_gradcam


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return resnet18()


@pytest.fixture()
def engine(model: torch.nn.Module) -> GradCAM:
    return GradCAM(model, transform=small_transform())


def batch(n: int = 3, seed: int = 5) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def test_batch_result_indexes_and_iterates_as_single_results(
    engine: GradCAM, model: torch.nn.Module
) -> None:
    x = batch()
    res = engine.explain(x, layer="layer3", target=[1, 4, 7])
    assert len(res) == 3 and res.batched
    singles = list(res)
    assert [r.target for r in singles] == [1, 4, 7]
    for i, single in enumerate(singles):
        assert not single.batched and single.heatmap.shape == (SIZE, SIZE)
        heat, coarse, alpha, _ = reference_gradcam(model, x[i : i + 1], "layer3", single.target)
        torch.testing.assert_close(single.heatmap, heat, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(single.coarse, coarse, rtol=1e-4, atol=1e-6)
        assert single.weights is not None
        torch.testing.assert_close(single.weights, alpha, rtol=1e-4, atol=1e-7)
    assert res[-1].target == 7
    with pytest.raises(IndexError):
        res[3]
    with pytest.raises(TypeError):
        len(singles[0])


def test_reprs_are_short(engine: GradCAM) -> None:
    one = engine.explain(batch(1), target=2)
    many = engine.explain(batch(4), target=[0, 1, 2, 3])
    assert "CamResult(" in repr(one) and "target=2" in repr(one) and len(repr(one)) < 200
    assert "batch of 4" in repr(many) and len(repr(many)) < 200


def test_logits_are_the_models_raw_scores(engine: GradCAM, model: torch.nn.Module) -> None:
    x = batch(2)
    with torch.no_grad():
        expected = model(x)
    res = engine.explain(x, target=[0, 1])
    torch.testing.assert_close(res.logits, expected, rtol=1e-5, atol=1e-5)
    assert res[1].score == pytest.approx(float(expected[1, 1]), rel=1e-5)


def test_uncached_batch_path_matches_and_keeps_nothing(
    engine: GradCAM, model: torch.nn.Module
) -> None:
    x = batch(4)
    before = snapshot(model)
    cached = engine.explain(x, layer="layer2", target=[3, 1, 0, 2], counterfactual=True)
    engine.clear_cache()
    fresh = GradCAM(model, transform=small_transform())
    uncached = fresh.explain(
        x, layer="layer2", target=[3, 1, 0, 2], counterfactual=True, cache=False
    )
    torch.testing.assert_close(uncached.heatmap, cached.heatmap, rtol=0, atol=0)
    torch.testing.assert_close(uncached.coarse, cached.coarse, rtol=0, atol=0)
    info = fresh.cache_info()
    assert info.entries == 0 and info.forwards == 1 and info.backwards == 1
    assert_unchanged(model, before)


def test_uncached_path_frees_its_graph(model: torch.nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    seen: list[weakref.ref[torch.Tensor]] = []
    layer4 = model.layer4

    def keep(_m: torch.nn.Module, _i: object, out: torch.Tensor) -> None:
        seen.append(weakref.ref(out))

    handle = layer4.register_forward_hook(keep)
    try:
        engine.explain(batch(2), layer="layer4", target=[0, 1], cache=False)
    finally:
        handle.remove()
    gc.collect()
    assert seen and all(ref() is None for ref in seen), "layer output still alive after the call"


def test_activations_are_the_layer_output(engine: GradCAM, model: torch.nn.Module) -> None:
    x = batch(2)
    stored: list[torch.Tensor] = []
    handle = model.layer3.register_forward_hook(lambda m, i, o: stored.append(o.detach().clone()))
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    acts = engine.activations(x, "layer3")
    assert acts.shape == stored[0].shape and acts.dtype == torch.float32
    torch.testing.assert_close(acts, stored[0])
    assert not acts.requires_grad and engine.cache_info().entries == 0


def test_scores_runs_the_model_in_eval_mode(engine: GradCAM, model: torch.nn.Module) -> None:
    x = batch(3)
    model.train()
    try:
        before = snapshot(model)
        scores = engine.scores(x)
        assert_unchanged(model, before)
    finally:
        model.eval()
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(scores, expected)


def test_methods_lists_cam_only_where_defined(engine: GradCAM) -> None:
    assert "gradcam" in engine.methods("layer2") and "cam" not in engine.methods("layer2")
    assert "cam" in engine.methods("layer4")
    with pytest.raises(ValueError, match="CAM is defined only"):
        engine.explain(batch(1), layer="layer2", method="cam")
    with pytest.raises(ValueError, match="unknown method"):
        engine.explain(batch(1), method="nope")


def test_a_registered_method_needs_no_edit_to_the_engine(
    engine: GradCAM, model: torch.nn.Module
) -> None:
    class GradTimesInput(Method):
        name = "test-grad-times-activation"
        needs_gradients = True

        def __call__(self, inputs: MethodInputs) -> MethodOutput:
            assert inputs.gradients is not None
            return MethodOutput(None, (inputs.gradients * inputs.activations).sum(dim=1))

    register_method(GradTimesInput())
    try:
        x = batch(1, seed=9)
        res = engine.explain(x, layer="layer3", target=5, method="test-grad-times-activation")
        # Independent: gradient of the score w.r.t. layer3's output, by hand.
        stored: list[torch.Tensor] = []

        def hook(_m: torch.nn.Module, _i: object, out: torch.Tensor) -> torch.Tensor:
            stored.append(out)
            return out.clone()

        handle = model.layer3.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                scores = model(x.clone().requires_grad_(True))
                (grad,) = torch.autograd.grad(scores[0, 5], stored[0])
        finally:
            handle.remove()
        expected = (grad[0] * stored[0].detach()[0]).sum(0)
        assert res.weights is None
        torch.testing.assert_close(res.coarse, expected, rtol=1e-4, atol=1e-6)
        # Same method again, and plain Grad-CAM there: no model pass.
        again = engine.explain(x, layer="layer3", target=5, method="test-grad-times-activation")
        plain = engine.explain(x, layer="layer3", target=5)
        assert again.cached and plain.cached
    finally:
        METHODS.pop("test-grad-times-activation")


def test_package_lists_and_lazily_loads_its_public_names() -> None:
    import subprocess
    import sys

    code = (
        "import sys, camwidgets\n"
        "assert {'GradCAM', 'Explorer', 'zoo', 'CamResult'} <= set(dir(camwidgets))\n"
        "assert 'torch' not in sys.modules and 'ipywidgets' not in sys.modules\n"
        "assert camwidgets.zoo.SHAPE_CLASSES[0] == 'circle'\n"
        "assert 'ipywidgets' not in sys.modules\n"
        "assert camwidgets.GradCAM.__name__ == 'GradCAM'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
