"""The CAM family on one cache: each method against its paper's formula, written here, and peers.

The references share no code with the engine: one forward hook that hands a copy downstream
(so the stored activation is the layer's true output), ``torch.autograd.grad`` on it, then the
formula in float64 numpy, loop by loop where the paper writes sums.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camwidgets import GradCAM
from camwidgets.engine.methods import METHODS, ScoreCAM
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot, tiny_net
from tests.engine.reference import layer_output_and_gradient

GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "hirescam", "layercam")


def capture(
    model: nn.Module, x: torch.Tensor, layer: str, targets: list[int], sign: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(A, sign * dY_c/dA) of ``layer`` for a batch, float64 numpy (N, K, h, w)."""
    output, grad = layer_output_and_gradient(model, x, layer, targets, sign)
    return output.double().numpy(), grad.double().numpy()


def weighted(alpha: np.ndarray, a: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.einsum("nk,nkhw->nhw", alpha, a)
    return out


def ref_gradcam(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    alpha = g.mean(axis=(2, 3))
    return alpha, weighted(alpha, a)


def ref_gradcampp(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Chattopadhay et al. eq. 19, pixel by pixel."""
    n, k, h, w = a.shape
    alpha = np.zeros((n, k))
    for i in range(n):
        for c in range(k):
            total = a[i, c].sum()
            for y in range(h):
                for x in range(w):
                    gij = g[i, c, y, x]
                    if gij == 0:
                        continue
                    denominator = 2 * gij**2 + total * gij**3
                    if denominator != 0:
                        alpha[i, c] += gij**2 / denominator * max(gij, 0.0)
    return alpha, weighted(alpha, a)


def ref_xgradcam(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    total = a.sum(axis=(2, 3))
    safe = np.where(total != 0, total, 1.0)
    alpha = np.where(total != 0, (a * g).sum(axis=(2, 3)) / safe, 0.0)
    return alpha, weighted(alpha, a)


def ref_hirescam(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    return None, (g * a).sum(axis=1)


def ref_layercam(a: np.ndarray, g: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    return None, (np.maximum(g, 0) * a).sum(axis=1)


REFERENCES = {
    "gradcam": ref_gradcam,
    "gradcam++": ref_gradcampp,
    "xgradcam": ref_xgradcam,
    "hirescam": ref_hirescam,
    "layercam": ref_layercam,
}


def heat(coarse: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.maximum(coarse, 0)).float().unsqueeze(1)
    return F.interpolate(t, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]


def close(got: torch.Tensor, expected: np.ndarray, rtol: float = 1e-4) -> None:
    ref = torch.from_numpy(np.asarray(expected)).float()
    atol = 1e-5 * max(float(ref.abs().max()), 1e-12)
    torch.testing.assert_close(got, ref, rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return resnet18()


@pytest.fixture()
def engine(model: nn.Module) -> GradCAM:
    return GradCAM(model, transform=small_transform())


def images(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", GRADIENT_METHODS)
@pytest.mark.parametrize("layer", ["layer4", "layer3", "layer4.1.bn2"])
@pytest.mark.parametrize("counterfactual", [False, True])
def test_gradient_methods_match_their_formula(
    engine: GradCAM, model: nn.Module, method: str, layer: str, counterfactual: bool
) -> None:
    x = images()
    targets = [3, 8]
    sign = -1.0 if counterfactual else 1.0
    a, g = capture(model, x, layer, targets, sign)
    alpha, coarse = REFERENCES[method](a, g)
    res = engine.explain(x, layer=layer, target=targets, method=method, counterfactual=sign < 0)
    assert res.method == method and res.counterfactual == counterfactual
    assert float(np.abs(coarse).max()) > 0
    close(res.coarse, coarse)
    close(res.heatmap, heat(coarse).numpy())
    close(res.activations, a, rtol=1e-6)
    if alpha is None:
        assert res.weights is None
    else:
        assert res.weights is not None
        close(res.weights, alpha)


def test_methods_read_the_true_output_of_a_layer_overwritten_in_place() -> None:
    # TinyNet's bn2 output is modified by ``out += identity`` and an in-place ReLU afterwards.
    model = tiny_net()
    engine = GradCAM(model, transform=small_transform())
    x = images(1, seed=3)
    a, g = capture(model, x, "bn2", [1])
    for method in ("gradcam++", "xgradcam", "hirescam", "layercam"):
        _, coarse = REFERENCES[method](a, g)
        close(engine.explain(x, layer="bn2", target=1, method=method).coarse, coarse[0])


def ref_eigencam(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    weights, maps = [], []
    for one in a:
        matrix = one.reshape(one.shape[0], -1).T  # (hw, K), not centred
        _, _, vt = np.linalg.svd(matrix, full_matrices=False)
        v1 = vt[0]
        projection = matrix @ v1
        if projection.sum() < 0:
            v1, projection = -v1, -projection
        weights.append(v1)
        maps.append(projection.reshape(one.shape[1:]))
    return np.stack(weights), np.stack(maps)


@pytest.mark.parametrize("layer", ["layer4", "layer3", "layer2.0.bn1"])
def test_eigencam_is_the_first_principal_projection_and_class_agnostic(
    engine: GradCAM, model: nn.Module, layer: str
) -> None:
    x = images(seed=4)
    a, _ = capture(model, x, layer, [0, 0])
    v1, projection = ref_eigencam(a)
    before = engine.cache_info()
    res = engine.explain(x, layer=layer, target=[2, 5], method="eigencam")
    assert res.weights is not None
    close(res.coarse, projection)
    close(res.weights, v1)
    other = engine.explain(x, layer=layer, target=[7, 1], method="eigencam")
    torch.testing.assert_close(other.coarse, res.coarse, rtol=0, atol=0)
    assert engine.cache_info().backwards == before.backwards  # no gradients needed


def ref_scorecam(model: nn.Module, x: torch.Tensor, a: np.ndarray, target: int) -> np.ndarray:
    """The authors' loop (haofanwang/Score-CAM): one masked forward per channel."""
    alpha = np.zeros(a.shape[1])
    acts = torch.from_numpy(a[0]).float()
    for k in range(acts.shape[0]):
        up = F.interpolate(
            acts[k][None, None], size=x.shape[-2:], mode="bilinear", align_corners=False
        )
        if up.max() == up.min():
            continue
        norm = (up - up.min()) / (up.max() - up.min())
        with torch.no_grad():
            probabilities = F.softmax(model(x * norm), dim=1)
        alpha[k] = float(probabilities[0, target])
    return alpha


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_scorecam_matches_the_authors_loop(batch_size: int) -> None:
    model = tiny_net()
    engine = GradCAM(model, transform=small_transform())
    x = images(2, seed=5)
    targets = [4, 0]
    res = engine.explain(
        x,
        layer="conv2",
        target=targets,
        method=ScoreCAM(batch_size=batch_size, progress=False),
    )
    assert res.method == "scorecam" and res.weights is not None
    for i, target in enumerate(targets):
        a, _ = capture(model, x[i : i + 1], "conv2", [target])
        alpha = ref_scorecam(model, x[i : i + 1], a, target)
        close(res.weights[i], alpha, rtol=1e-4)
        close(res.coarse[i], weighted(alpha[None], a)[0])


class DeadChannel(nn.Module):
    """A conv whose channels 1 and 3 are constant (zero weights, bias): Score-CAM skips them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        with torch.no_grad():
            self.conv.weight[[1, 3]] = 0
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))  # type: ignore[no-any-return]


def test_scorecam_skips_constant_channels_and_stays_off_the_gradient_path() -> None:
    model = DeadChannel().eval()
    engine = GradCAM(model, transform=small_transform(), layers=["conv"])
    x = images(1, seed=6)
    engine.explain(x, layer="conv", target=1)  # forward + one backward, cached
    before = engine.cache_info()
    res = engine.explain(x, layer="conv", target=1, method=ScoreCAM(batch_size=2, progress=False))
    after = engine.cache_info()
    assert res.weights is not None
    assert res.weights[1] == 0 and res.weights[3] == 0 and bool((res.weights[[0, 2, 4]] > 0).all())
    assert after.forwards - before.forwards == 2  # 3 masks in batches of 2
    assert after.backwards == before.backwards
    assert not res.cached


def test_scorecam_progress_bar(capsys: pytest.CaptureFixture[str]) -> None:
    engine = GradCAM(tiny_net(), transform=small_transform())
    x = images(1, seed=7)
    engine.explain(x, layer="conv2", method=ScoreCAM(progress=False))
    assert "Score-CAM" not in capsys.readouterr().err
    engine.clear_cache()  # the first run's result is kept with the image
    engine.explain(x, layer="conv2", method=ScoreCAM(batch_size=2, progress=True))
    assert "Score-CAM" in capsys.readouterr().err


def test_switching_methods_on_a_cached_image_class_layer_runs_no_pass(engine: GradCAM) -> None:
    x = images(1, seed=8)
    engine.explain(x, layer="layer4", target=2, method="gradcam++")
    before = engine.cache_info()
    for cf in (False, True):
        for method in (*GRADIENT_METHODS, "cam", "gradcam++"):
            res = engine.explain(x, layer="layer4", target=2, method=method, counterfactual=cf)
            assert res.cached, method
    res = engine.explain(x, layer="layer4", target=2, method="eigencam")
    assert res.cached
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (before.forwards, before.backwards)


def test_a_gradient_method_after_gradcam_costs_one_backward_then_none(engine: GradCAM) -> None:
    x = images(1, seed=9)
    engine.explain(x, layer="layer3", target=1)
    before = engine.cache_info()
    engine.explain(x, layer="layer3", target=1, method="layercam")
    middle = engine.cache_info()
    assert (middle.forwards, middle.backwards) == (before.forwards, before.backwards + 1)
    for method in GRADIENT_METHODS:
        engine.explain(x, layer="layer3", target=1, method=method)
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (middle.forwards, middle.backwards)


@pytest.mark.parametrize("method", ["eigencam", "scorecam"])
def test_counterfactual_is_refused_before_any_pass(method: str, model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform())
    start = engine.cache_info()
    with pytest.raises(ValueError, match=f"'{method}' has no counterfactual: "):
        engine.explain(images(1), method=method, counterfactual=True)
    assert engine.cache_info() == start


def test_every_method_is_listed_and_cam_only_where_defined(engine: GradCAM) -> None:
    expected = {*GRADIENT_METHODS, "eigencam", "scorecam", "guided-gradcam"}
    assert expected <= set(METHODS)
    assert set(engine.methods("layer3")) == expected
    assert set(engine.methods("layer4")) == expected | {"cam"}


def test_bad_method_arguments_are_refused(engine: GradCAM) -> None:
    with pytest.raises(ValueError, match=r"unknown method 'gradcam\+'"):
        engine.explain(images(1), method="gradcam+")
    with pytest.raises(TypeError, match="Method instance"):
        engine.explain(images(1), method=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        ScoreCAM(batch_size=0)
    with pytest.raises(TypeError, match="progress"):
        ScoreCAM(progress="yes")  # type: ignore[arg-type]


def test_every_method_leaves_the_model_as_found() -> None:
    model = resnet18().train()
    model(torch.randn(1, 3, SIZE, SIZE)).sum().backward()
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    x = images(1, seed=10)
    with torch.no_grad():
        for method in METHODS:
            chosen = ScoreCAM(batch_size=128, progress=False) if method == "scorecam" else method
            res = engine.explain(x, layer="layer4", target=0, method=chosen)
            assert torch.isfinite(res.heatmap).all()
    assert_unchanged(model, before)
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, before["grads"][name])  # type: ignore[arg-type,index]


def test_zero_gradients_give_zero_maps_not_nan() -> None:
    # a class whose head row is zero has zero gradients everywhere: every ratio must stay 0
    model = tiny_net()
    with torch.no_grad():
        model.fc.weight[2] = 0
    engine = GradCAM(model, transform=small_transform())
    for method in GRADIENT_METHODS:
        res = engine.explain(images(1, seed=11), layer="conv2", target=2, method=method)
        assert torch.isfinite(res.coarse).all() and float(res.coarse.abs().max()) == 0, method


# -- peers: pytorch-grad-cam and torchcam ----------------------------------------------------


def minmax(cam: np.ndarray) -> np.ndarray:
    cam = cam - cam.min()
    out: np.ndarray = cam / (cam.max() + 1e-12)
    return out


PGC = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
}


def loud(model: nn.Module) -> nn.Module:
    """A copy with its head scaled by 1e3, so pytorch-grad-cam's eps stops mattering."""
    louder = copy.deepcopy(model)
    with torch.no_grad():
        louder.fc.weight.mul_(1e3)  # type: ignore[operator,union-attr]
    return louder


def pgc_run(model: nn.Module, method: str, x: torch.Tensor, targets: list[int]) -> np.ndarray:
    pgc = pytest.importorskip("pytorch_grad_cam")
    targets_mod = pytest.importorskip("pytorch_grad_cam.utils.model_targets")
    peer_model = copy.deepcopy(model)  # it calls .eval() and writes .grad
    cam = getattr(pgc, PGC[method])(peer_model, [peer_model.layer3])
    result: np.ndarray = cam(
        x.clone(), targets=[targets_mod.ClassifierOutputTarget(c) for c in targets]
    )
    return result


@pytest.mark.parametrize("method", list(PGC))
def test_agrees_with_pytorch_grad_cam_after_its_normalisation(
    model: nn.Module, method: str
) -> None:
    image_mod = pytest.importorskip("pytorch_grad_cam.utils.image")
    # Grad-CAM++: its eps = 1e-6 in the denominator is of the order of g^2 here; see below
    subject = loud(model) if method == "gradcam++" else model
    x = images(2, seed=12)
    expected = pgc_run(subject, method, x, [4, 9])
    res = GradCAM(subject, transform=small_transform()).explain(
        x, layer="layer3", target=[4, 9], method=method
    )
    # its pipeline from our coarse map: ReLU, min-max, OpenCV resize, min-max again (the
    # second one after aggregating target layers)
    resized = image_mod.scale_cam_image(np.maximum(res.coarse.numpy(), 0), (SIZE, SIZE))
    np.testing.assert_allclose(image_mod.scale_cam_image(resized), expected, atol=1e-4)
    # and our own heatmap, min-max scaled, matches it closely (resize before vs after scaling)
    for i in range(2):
        r = np.corrcoef(minmax(res.heatmap[i].numpy()).ravel(), expected[i].ravel())[0, 1]
        assert r > 0.999


def test_pytorch_grad_cam_gradcampp_differs_by_its_eps(model: nn.Module, engine: GradCAM) -> None:
    """With raw-score gradients of ~1e-3, g^2 ~ 1e-6 and pytorch-grad-cam's eps = 1e-6 in
    g^2 / (2 g^2 + sum(A) g^3 + eps) changes the weights. Documented in
    docs/explanation/methods.md."""
    image_mod = pytest.importorskip("pytorch_grad_cam.utils.image")
    x = images(2, seed=12)
    expected = pgc_run(model, "gradcam++", x, [4, 9])
    a, g = capture(model, x, "layer3", [4, 9])
    g2 = g**2
    ratio = np.where(g != 0, g2 / (2 * g2 + a.sum(axis=(2, 3), keepdims=True) * g2 * g + 1e-6), 0)
    with_eps = weighted((ratio * np.maximum(g, 0)).sum(axis=(2, 3)), a)
    resized = image_mod.scale_cam_image(np.maximum(with_eps, 0), (SIZE, SIZE))
    np.testing.assert_allclose(image_mod.scale_cam_image(resized), expected, atol=1e-4)
    ours = engine.explain(x, layer="layer3", target=[4, 9], method="gradcam++")
    resized = image_mod.scale_cam_image(np.maximum(ours.coarse.numpy(), 0), (SIZE, SIZE))
    assert np.abs(image_mod.scale_cam_image(resized) - expected).max() > 1e-3


TORCHCAM = {"xgradcam": "XGradCAM", "layercam": "LayerCAM", "gradcam": "GradCAM"}


@pytest.mark.parametrize("method", list(TORCHCAM))
def test_agrees_with_torchcam_after_its_normalisation(
    model: nn.Module, engine: GradCAM, method: str
) -> None:
    methods = pytest.importorskip("torchcam.methods")
    x = images(1, seed=13)
    peer_model = copy.deepcopy(model)
    with getattr(methods, TORCHCAM[method])(
        peer_model, "layer3", input_shape=(3, SIZE, SIZE)
    ) as cam:
        scores = peer_model(x.clone())
        (expected,) = cam(6, scores)
    res = engine.explain(x, layer="layer3", target=6, method=method)
    np.testing.assert_allclose(
        minmax(np.maximum(res.coarse.numpy(), 0)), expected[0].detach().numpy(), atol=1e-4
    )


def test_torchcam_gradcampp_is_not_the_papers_closed_form(
    model: nn.Module, engine: GradCAM
) -> None:
    """torchcam 0.5 divides a copy (``alpha[mask].div_``), so its weights are sum g^2 ReLU(g):
    documented in docs/explanation/methods.md. Ours is eq. 19 (checked above against the
    written-out formula)."""
    methods = pytest.importorskip("torchcam.methods")
    x = images(1, seed=14)
    peer_model = copy.deepcopy(model)
    with methods.GradCAMpp(peer_model, "layer3", input_shape=(3, SIZE, SIZE)) as cam:
        scores = peer_model(x.clone())
        (peer,) = cam(6, scores)
    a, g = capture(model, x, "layer3", [6])
    undivided = (g**2 * np.maximum(g, 0)).sum(axis=(2, 3))
    np.testing.assert_allclose(
        peer[0].detach().numpy(), minmax(np.maximum(weighted(undivided, a)[0], 0)), atol=1e-4
    )
    ours = engine.explain(x, layer="layer3", target=6, method="gradcam++")
    assert np.abs(minmax(np.maximum(ours.coarse.numpy(), 0)) - peer[0].numpy()).max() > 1e-2


def test_pytorch_grad_cam_eigencam_centres_the_activations(
    model: nn.Module, engine: GradCAM
) -> None:
    """pytorch-grad-cam centres A before the SVD and keeps LAPACK's sign; the paper (and we)
    project the uncentred A. Documented in docs/explanation/methods.md."""
    pgc = pytest.importorskip("pytorch_grad_cam")
    svd = pytest.importorskip("pytorch_grad_cam.utils.svd_on_activations")
    x = images(1, seed=15)
    a, _ = capture(model, x, "layer3", [0])
    centred = svd.get_2d_projection(a.astype(np.float32))
    peer_model = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = pgc.EigenCAM(peer_model, [peer_model.layer3])(x.clone(), targets=None)
    image_mod = pytest.importorskip("pytorch_grad_cam.utils.image")
    resized = image_mod.scale_cam_image(np.maximum(centred, 0), (SIZE, SIZE))
    np.testing.assert_allclose(peer, image_mod.scale_cam_image(resized), atol=1e-4)
    ours = engine.explain(x, layer="layer3", method="eigencam")
    _, uncentred = ref_eigencam(a)
    close(ours.coarse, uncentred[0])
    assert (
        np.abs(minmax(np.maximum(uncentred[0], 0)) - minmax(np.maximum(centred[0], 0))).max() > 1e-2
    )


def test_scorecam_is_kept_with_the_cached_image() -> None:
    engine = GradCAM(tiny_net(), transform=small_transform())
    x = images(1, seed=16)
    first = engine.explain(x, layer="conv2", target=3, method=ScoreCAM(progress=False))
    before = engine.cache_info()
    again = engine.explain(x, layer="conv2", target=3, method=ScoreCAM(batch_size=3))
    assert again.cached and engine.cache_info().forwards == before.forwards
    torch.testing.assert_close(again.coarse, first.coarse, rtol=0, atol=0)
    other = engine.explain(x, layer="conv2", target=4, method=ScoreCAM(progress=False))
    assert not other.cached and engine.cache_info().forwards > before.forwards


@pytest.mark.parametrize("arch", ["vit", "channels-last"])
def test_methods_on_token_and_channels_last_layers(arch: str) -> None:
    from tests.engine.test_layouts import (
        ChannelsLast,
        TinyViT,
        nhwc_to_nchw,
        seeded,
        tokens_to_nchw,
    )

    if arch == "vit":
        model, layer = seeded(lambda: TinyViT(registers=2)), "blocks.1.norm1"
        rearrange = tokens_to_nchw(3, SIZE // 8, SIZE // 8)
    else:
        model, layer, rearrange = seeded(ChannelsLast), "norm", nhwc_to_nchw
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    x = images(2, seed=17)
    output, grad = layer_output_and_gradient(model, x, layer, [1, 3])
    a = rearrange(output).double().numpy()
    g = rearrange(grad).double().numpy()
    for method, reference in REFERENCES.items():
        res = engine.explain(x, layer=layer, target=[1, 3], method=method)
        _, coarse = reference(a, g)
        close(res.coarse, coarse)
    _, projection = ref_eigencam(a)
    close(engine.explain(x, layer=layer, method="eigencam").coarse, projection)
    for method in ("scorecam", "guided-gradcam"):
        res = engine.explain(x, layer=layer, target=[1, 3], method=method)
        assert res.coarse.shape == a.shape[:1] + a.shape[2:] and torch.isfinite(res.heatmap).all()
    assert_unchanged(model, before)
