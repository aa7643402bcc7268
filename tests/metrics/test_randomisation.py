"""The randomisation sanity check: what it randomises, in which order, and that every number is
what an independent rebuild of the randomised model and independent similarity code give."""

from __future__ import annotations

import copy
import math
import zlib

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from camwidgets import GradCAM, metrics
from tests.conftest import SIZE, assert_unchanged, small_transform, snapshot, tiny_resnet

skimage_metrics = pytest.importorskip(
    "skimage.metrics", reason="scikit-image is the reference SSIM (pip install scikit-image)"
)


def picture(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def engine() -> GradCAM:
    return GradCAM(tiny_resnet(seed=1), transform=small_transform())


# -- the reference: the check's documented rule, written again here ----------------------------


def redraw(module: nn.Module, name: str, seed: int, recurse: bool = True) -> None:
    """The documented "default" draw: fan-in weights and their bias uniform in +-1/sqrt(fan_in),
    other parameters normal with the trained mean and std, from a per-group generator."""
    generator = torch.Generator().manual_seed((seed << 32) | zlib.crc32(name.encode()))
    modules = list(module.modules()) if recurse else [module]
    with torch.no_grad():
        for m in modules:
            own = list(m.named_parameters(recurse=False))
            weight = dict(own).get("weight")
            fan_in = weight[0].numel() if weight is not None and weight.dim() >= 2 else None
            for pname, p in own:
                if p.dim() >= 2 or (pname == "bias" and fan_in is not None):
                    bound = 1 / math.sqrt(p[0].numel() if p.dim() >= 2 else float(fan_in or 1))
                    u = torch.rand(p.shape, generator=generator, dtype=torch.float64)
                    p.copy_(((2 * u - 1) * bound).float())
                else:
                    mean, std = float(p.double().mean()), float(p.double().std())
                    z = torch.randn(p.shape, generator=generator, dtype=torch.float64)
                    p.copy_((mean + std * z).float())


def reference_maps(
    model: nn.Module, groups: list[str], cascade: bool, seed: int, image: np.ndarray, target: int
) -> list[torch.Tensor]:
    """Each step's Grad-CAM heat map from a freshly built engine on an independent copy."""
    maps = []
    for step in range(len(groups)):
        twin = copy.deepcopy(model)
        named = dict(twin.named_modules())
        chosen = groups[: step + 1] if cascade else [groups[step]]
        for name in chosen:
            redraw(named[name], name, seed)
        fresh = GradCAM(twin, transform=small_transform())
        maps.append(fresh.explain(image, target=target).heatmap)
    return maps


# -- order and groups -----------------------------------------------------------------------------


def test_blocks_go_from_the_head_to_the_stem(engine: GradCAM) -> None:
    check = metrics.randomisation(engine, picture(), progress=False)
    assert check.steps == ("fc", "layer4", "layer3", "layer2", "layer1", "bn1", "conv1")
    assert check.maps.shape == (7, SIZE, SIZE)
    assert len(check.spearman) == len(check.ssim) == len(check.topk) == 7


def test_modules_follow_the_forward_not_the_registration(engine: GradCAM) -> None:
    # Block registers conv1, bn1, conv2, bn2, down but calls ``down`` first.
    check = metrics.randomisation(engine, picture(), groups="modules", progress=False)
    steps = list(check.steps)
    assert steps[:6] == [
        "fc",
        "layer4.bn2",
        "layer4.conv2",
        "layer4.bn1",
        "layer4.conv1",
        "layer4.down",
    ]
    assert steps[-2:] == ["bn1", "conv1"]
    owners = {n for n, m in engine.model.named_modules() if list(m.parameters(recurse=False))}
    assert set(steps) == owners


# -- the maps are an engine's on the same randomised copy ---------------------------------------


@pytest.mark.parametrize("cascade", [True, False])
def test_each_step_equals_gradcam_on_an_independently_randomised_copy(
    engine: GradCAM, cascade: bool
) -> None:
    image = picture()
    check = metrics.randomisation(engine, image, cascade=cascade, seed=5, progress=False)
    original = GradCAM(copy.deepcopy(engine.model), transform=small_transform()).explain(image)
    assert check.target == original.target
    torch.testing.assert_close(check.original, original.heatmap)
    expected = reference_maps(engine.model, list(check.steps), cascade, 5, image, int(check.target))
    for step, want in enumerate(expected):
        torch.testing.assert_close(check.maps[step], want, rtol=1e-5, atol=1e-6)


def test_reset_init_is_each_modules_reset_parameters(engine: GradCAM) -> None:
    image = picture(4)
    check = metrics.randomisation(
        engine, image, target=2, groups="modules", init="reset", seed=7, progress=False
    )
    twin = copy.deepcopy(engine.model)
    named = dict(twin.named_modules())
    for step, name in enumerate(check.steps[:4]):  # cascading: one more module each time
        torch.manual_seed(7)
        named[name].reset_parameters()  # type: ignore[operator]
        want = GradCAM(copy.deepcopy(twin), transform=small_transform()).explain(image, target=2)
        torch.testing.assert_close(check.maps[step], want.heatmap, rtol=1e-5, atol=1e-6)


def test_several_methods_share_the_copies_and_guided_backprop_is_one(engine: GradCAM) -> None:
    image = picture(5)
    found = metrics.randomisation(
        engine, image, method=["gradcam", "guided-backprop"], seed=2, progress=False
    )
    assert list(found) == ["gradcam", "guided-backprop"]
    guided = found["guided-backprop"]
    assert guided.layer is None and guided.steps == found["gradcam"].steps
    want = engine.guided_backprop(image, target=guided.target).abs().sum(0)
    torch.testing.assert_close(guided.original, want)
    twin = copy.deepcopy(engine.model)
    redraw(twin.fc, "fc", 2)
    step0 = GradCAM(twin, transform=small_transform()).guided_backprop(image, target=guided.target)
    torch.testing.assert_close(guided.maps[0], step0.abs().sum(0))


# -- the numbers are independent computations of the maps' similarity ---------------------------


def test_spearman_ssim_and_topk_against_scipy_skimage_and_numpy(engine: GradCAM) -> None:
    check = metrics.randomisation(engine, picture(6), seed=1, top=0.2, progress=False)
    a = check.original.double().numpy()
    for step in range(len(check.steps)):
        b = check.maps[step].double().numpy()
        if np.ptp(a) > 0 and np.ptp(b) > 0:
            want = spearmanr(a.ravel(), b.ravel()).statistic
            assert check.spearman[step] == pytest.approx(want, abs=1e-9)
        else:
            assert check.spearman[step] == 0.0
        scaled = [x / x.max() if x.max() > 0 else np.zeros_like(x) for x in (a, b)]
        want_ssim = skimage_metrics.structural_similarity(
            scaled[0],
            scaled[1],
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=1.0,
        )
        assert check.ssim[step] == pytest.approx(want_ssim, abs=1e-9)
        k = round(0.2 * a.size)
        top_a = set(np.argsort(-a.ravel(), kind="stable")[:k])
        top_b = set(np.argsort(-b.ravel(), kind="stable")[:k])
        assert check.topk[step] == pytest.approx(len(top_a & top_b) / k)


def test_similarity_of_a_map_with_itself_and_of_a_constant_map() -> None:
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((20, 24)))
    assert metrics.spearman(a, a) == pytest.approx(1.0)
    assert metrics.ssim(a, a) == pytest.approx(1.0)
    assert metrics.topk_overlap(a, a, 0.1) == 1.0
    assert metrics.spearman(a, torch.zeros(20, 24)) == 0.0
    ties = torch.tensor([[0.0, 0.0, 1.0], [2.0, 2.0, 3.0]])
    other = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 4.0]])
    want = spearmanr(ties.numpy().ravel(), other.numpy().ravel()).statistic
    assert metrics.spearman(ties, other) == pytest.approx(want)
    with pytest.raises(ValueError, match="same shape"):
        metrics.spearman(a, a[:5])
    with pytest.raises(ValueError, match="NaN"):
        metrics.ssim(a, a * float("nan"))


# -- the user's model and random state --------------------------------------------------------


@pytest.mark.parametrize("init", ["default", "reset"])
def test_model_and_global_random_state_are_left_as_found(engine: GradCAM, init: str) -> None:
    model = engine.model
    model.train()  # a training-mode model stays in training mode
    model.layer2.eval()
    before = snapshot(model)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    try:
        metrics.randomisation(
            engine,
            picture(),
            init=init,
            cascade=False,
            progress=False,  # type: ignore[arg-type]
        )
        assert torch.equal(torch.get_rng_state(), state)
        assert_unchanged(model, before)
    finally:
        model.eval()


def test_bad_arguments_fail_before_any_model_pass(engine: GradCAM) -> None:
    calls = []
    handle = engine.model.register_forward_hook(lambda *args: calls.append(1))
    try:
        for kwargs, error, words in [
            ({"method": "nope"}, ValueError, "unknown method"),
            ({"method": []}, TypeError, "non-empty"),
            ({"method": ["gradcam", "gradcam"]}, ValueError, "more than once"),
            ({"cascade": "yes"}, TypeError, "cascade"),
            ({"seed": -1}, ValueError, "seed"),
            ({"init": "zeros"}, ValueError, "init"),
            ({"top": 0}, ValueError, "top"),
            ({"layer": "layer9"}, ValueError, "unknown layer"),
            ({"target": 99}, ValueError, "out of range"),
            ({"target": "zebra"}, ValueError, "unknown class"),
            ({"groups": ["fc", "nothing"]}, ValueError, "no module named"),
            ({"groups": ["avgpool"]}, ValueError, "no floating-point"),
        ]:
            with pytest.raises(error, match=words):
                metrics.randomisation(engine, picture(), progress=False, **kwargs)
        with pytest.raises(ValueError, match="single image"):
            metrics.randomisation(engine, [picture(1), picture(2)], progress=False)
    finally:
        handle.remove()
    assert calls == []


def test_grad_cam_forgets_the_model_guided_backprop_much_less(engine: GradCAM) -> None:
    # On a randomly initialised model the contrast is weaker than on a trained one (the zoo
    # table in docs/explanation/sanity-checks.md), but the order holds: Guided Backprop keeps
    # more of its map than Grad-CAM once the head is random.
    found = metrics.randomisation(
        engine, picture(7), method=["gradcam", "guided-backprop"], progress=False
    )
    assert found["guided-backprop"].spearman[0] > found["gradcam"].spearman[0]
    assert found["gradcam"].passed(threshold=0.5) == (
        sum(found["gradcam"].spearman) / len(found["gradcam"].steps) < 0.5
    )


def test_a_pruned_model_is_copied_and_left_as_found() -> None:
    import torch.nn.utils.prune as prune

    model = tiny_resnet(seed=2)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            prune.l1_unstructured(module, "weight", amount=0.5)
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    check = metrics.randomisation(engine, picture(8), groups="modules", progress=False)
    # prune keeps weight_orig (a parameter) and weight_mask (a buffer): weight_orig is redrawn.
    assert "layer4.conv2" in check.steps
    assert_unchanged(model, before)
    assert all(math.isfinite(x) for x in check.spearman)
