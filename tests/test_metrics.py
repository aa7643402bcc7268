"""Faithfulness metrics against references written here (RISE's loop, the papers' formulas)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torch import nn

from camwidgets import GradCAM, metrics, zoo
from tests.conftest import SIZE, small_transform, tiny_net


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_net()


@pytest.fixture()
def engine(model: nn.Module) -> GradCAM:
    return GradCAM(model, transform=small_transform())


def image(seed: int = 0, n: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def smooth_map(seed: int, n: int | None = None) -> torch.Tensor:
    """A tie-free map (continuous noise), so every ranking of the pixels is unique."""
    noise = torch.rand(n or 1, SIZE, SIZE, generator=torch.Generator().manual_seed(100 + seed))
    return noise if n is not None else noise[0]


def rise_curve(
    model: nn.Module,
    img: torch.Tensor,
    explanation: np.ndarray,
    mode: str,
    step: int,
    substrate: torch.Tensor,
    c: int,
) -> tuple[np.ndarray, float]:
    """RISE's CausalMetric.single_run (Petsiuk et al.'s code), one model call per step."""
    hw = img.shape[-1] * img.shape[-2]
    n_steps = (hw + step - 1) // step
    if mode == "del":
        start, finish = img.clone(), substrate.clone()
    else:
        start, finish = substrate.clone(), img.clone()
    scores = np.empty(n_steps + 1)
    salient_order = np.flip(np.argsort(explanation.reshape(-1, hw), axis=1), axis=-1)
    for i in range(n_steps + 1):
        with torch.no_grad():
            pred = F.softmax(model(start), dim=1)
        scores[i] = float(pred[0, c])
        if i < n_steps:
            coords = salient_order[:, step * i : step * (i + 1)]
            start.numpy().reshape(1, 3, hw)[0, :, coords] = finish.numpy().reshape(1, 3, hw)[
                0, :, coords
            ]
    area = (scores.sum() - scores[0] / 2 - scores[-1] / 2) / (scores.shape[0] - 1)
    return scores, float(area)


@pytest.mark.parametrize("steps", [64, 16])
def test_deletion_and_insertion_match_rises_loop(
    engine: GradCAM, model: nn.Module, steps: int
) -> None:
    x = image(1)
    saliency = smooth_map(1)
    step = SIZE * SIZE // steps
    substrate = TF.gaussian_blur(x, kernel_size=[31, 31], sigma=[5.0, 5.0])  # reflect padding
    for kind, mode, baseline in (
        ("deletion", "del", torch.zeros_like(x)),
        ("insertion", "ins", substrate),
    ):
        expected, area = rise_curve(model, x, saliency.numpy(), mode, step, baseline, 2)
        fn = metrics.deletion if kind == "deletion" else metrics.insertion
        curve = fn(engine, x, saliency, 2, steps=steps, batch_size=17, progress=False)
        assert isinstance(curve, metrics.Curve) and curve.kind == kind and curve.target == 2
        np.testing.assert_allclose(curve.scores.numpy(), expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(curve.fractions.numpy(), np.linspace(0, 1, steps + 1))
        assert curve.auc == pytest.approx(area, rel=1e-6)
    assert float(expected.max() - expected.min()) > 1e-3  # the curve really moves


def test_blur_is_a_reflected_gaussian() -> None:
    x = image(2)
    for sigma in (1.0, 2.5):
        size = 2 * int(np.ceil(3 * sigma)) + 1
        expected = TF.gaussian_blur(x, kernel_size=[size, size], sigma=[sigma, sigma])
        torch.testing.assert_close(metrics.blur(x, sigma), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="sigma"):
        metrics.blur(x, 0.0)


def test_uneven_steps_end_at_one_and_use_the_trapezoid_rule(engine: GradCAM) -> None:
    x = image(3)
    curve = metrics.deletion(engine, x, smooth_map(3), 0, steps=300, progress=False)
    assert isinstance(curve, metrics.Curve)
    fractions = curve.fractions.numpy()
    per_step = int(np.ceil(SIZE * SIZE / 300))  # 14 pixels: 293 steps, the last one shorter
    assert len(fractions) == int(np.ceil(SIZE * SIZE / per_step)) + 1
    assert fractions[0] == 0 and fractions[-1] == 1
    assert fractions[1] == pytest.approx(per_step / SIZE**2)
    scores = curve.scores.numpy()
    trapezoid = float(((scores[1:] + scores[:-1]) / 2 * np.diff(fractions)).sum())
    assert curve.auc == pytest.approx(trapezoid, rel=1e-12)


def test_ties_are_taken_in_raster_order(model: nn.Module, engine: GradCAM) -> None:
    # two levels: the top rows first, then everything else in raster order
    saliency = torch.zeros(SIZE, SIZE)
    saliency[:8] = 1.0
    curve = metrics.deletion(engine, image(4), saliency, 1, steps=8, progress=False)
    assert isinstance(curve, metrics.Curve)
    x = image(4)
    expected = []
    for i in range(9):
        perturbed = x.clone()
        perturbed.view(1, 3, -1)[..., : i * SIZE * SIZE // 8] = 0
        with torch.no_grad():
            expected.append(float(F.softmax(model(perturbed), dim=1)[0, 1]))
    np.testing.assert_allclose(curve.scores.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_batches_match_single_images_and_results_bring_their_targets(engine: GradCAM) -> None:
    x = image(5, n=3)
    res = engine.explain(x, layer="conv2", target=[0, 3, 4])
    both = metrics.faithfulness(engine, x, res, steps=32, batch_size=50, progress=False)
    assert isinstance(both, list) and len(both) == 3
    for i in range(3):
        single = metrics.faithfulness(
            engine, x[i : i + 1], res[i].heatmap, res[i].target, steps=32, progress=False
        )
        assert isinstance(single, metrics.Faithfulness)
        assert both[i].deletion.target == res[i].target
        torch.testing.assert_close(both[i].deletion.scores, single.deletion.scores)
        torch.testing.assert_close(both[i].insertion.scores, single.insertion.scores)
    # a lower-resolution map (the coarse grid) is resized bilinearly to the input first
    coarse = metrics.deletion(engine, x[:1], res[0].coarse.clamp_min(0), 0, steps=8, progress=False)
    resized = F.interpolate(
        res[0].coarse.clamp_min(0)[None, None], size=(SIZE, SIZE), mode="bilinear"
    )[0, 0]
    direct = metrics.deletion(engine, x[:1], resized, 0, steps=8, progress=False)
    assert isinstance(coarse, metrics.Curve) and isinstance(direct, metrics.Curve)
    torch.testing.assert_close(coarse.scores, direct.scores)


def test_logit_scores_and_other_baselines(model: nn.Module, engine: GradCAM) -> None:
    x = image(6)
    saliency = smooth_map(6)
    logit = metrics.deletion(engine, x, saliency, 3, steps=4, score="logit", progress=False)
    mean = metrics.deletion(engine, x, saliency, 3, steps=4, baseline="mean", progress=False)
    fixed = metrics.deletion(engine, x, saliency, 3, steps=4, baseline=0.25, progress=False)
    assert isinstance(logit, metrics.Curve) and isinstance(mean, metrics.Curve)
    assert isinstance(fixed, metrics.Curve)
    with torch.no_grad():
        assert float(logit.scores[0]) == pytest.approx(float(model(x)[0, 3]), rel=1e-5)
        fully_mean = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
        assert float(mean.scores[-1]) == pytest.approx(
            float(F.softmax(model(fully_mean), dim=1)[0, 3]), rel=1e-5
        )
        assert float(fixed.scores[-1]) == pytest.approx(
            float(F.softmax(model(torch.full_like(x, 0.25)), dim=1)[0, 3]), rel=1e-5
        )
    flipped = metrics.insertion(
        engine, x, saliency, 3, steps=4, baseline=lambda b: -b, progress=False
    )
    assert isinstance(flipped, metrics.Curve)
    with torch.no_grad():
        assert float(flipped.scores[0]) == pytest.approx(
            float(F.softmax(model(-x), dim=1)[0, 3]), rel=1e-5
        )


def test_confidence_change_matches_the_formula(model: nn.Module, engine: GradCAM) -> None:
    x = image(7, n=4)
    res = engine.explain(x, layer="conv2", target=[0, 1, 2, 3])
    change = metrics.confidence_change(engine, x, res, batch_size=3)
    with torch.no_grad():
        y = F.softmax(model(x), dim=1)[torch.arange(4), torch.arange(4)].double()
        maps = res.heatmap
        peak = maps.amax(dim=(1, 2), keepdim=True)
        explained = x * torch.where(peak > 0, maps / peak, 0.0).unsqueeze(1)
        o = F.softmax(model(explained), dim=1)[torch.arange(4), torch.arange(4)].double()
    drop = 100 * float(((y - o).clamp_min(0) / y).mean())
    increase = 100 * float((o > y).double().mean())
    assert change.average_drop == pytest.approx(drop, rel=1e-5)
    assert change.increase == pytest.approx(increase)
    assert change.targets == (0, 1, 2, 3)
    torch.testing.assert_close(change.original, y, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(change.explained, o, rtol=1e-5, atol=1e-8)


def test_an_empty_map_hides_the_whole_image(model: nn.Module, engine: GradCAM) -> None:
    x = image(8)
    change = metrics.confidence_change(engine, x, torch.zeros(SIZE, SIZE), 2)
    with torch.no_grad():
        expected = float(F.softmax(model(torch.zeros_like(x)), dim=1)[0, 2])
    assert float(change.explained[0]) == pytest.approx(expected, rel=1e-5)


def test_pointing_game() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:8, 10:14] = True
    on = torch.zeros(20, 30)
    on[6, 12] = 1.0
    near = torch.zeros(20, 30)
    near[6, 17] = 1.0  # 4 pixels right of the mask's last column (13)
    diagonal = torch.zeros(20, 30)
    diagonal[11, 17] = 1.0  # (11, 17) to the nearest mask pixel (7, 13): sqrt(32) = 5.66
    empty = torch.zeros(20, 30)
    tied = torch.zeros(20, 30)
    tied[0, 0] = tied[6, 12] = 2.0  # the first maximum in raster order is (0, 0): a miss
    maps = torch.stack([on, near, diagonal, empty, tied])
    result = metrics.pointing_game(maps, mask)
    assert result.hits == (True, False, False, False, False)
    assert result.empty == (False, False, False, True, False)
    assert result.accuracy == pytest.approx(1 / 5)
    assert metrics.pointing_game(maps, mask, tolerance=4).hits == (True, True, False, False, False)
    assert metrics.pointing_game(maps, mask, tolerance=5.6).hits[2] is False
    assert metrics.pointing_game(maps, mask, tolerance=5.7).hits[2] is True
    # lists of maps and masks, numpy inputs
    listed = metrics.pointing_game([on.numpy(), near.numpy()], [mask, np.roll(mask, 4, axis=1)])
    assert listed.hits == (True, True)
    with pytest.raises(ValueError, match="does not match"):
        metrics.pointing_game(on, mask[:10])
    with pytest.raises(ValueError, match="tolerance"):
        metrics.pointing_game(on, mask, tolerance=-1)
    with pytest.raises(ValueError, match="NaN"):
        metrics.pointing_game(torch.full((20, 30), float("nan")), mask)


def test_random_maps_and_the_random_baseline(engine: GradCAM) -> None:
    one = metrics.random_map((SIZE, SIZE), seed=3)
    assert one.shape == (SIZE, SIZE) and float(one.min()) >= 0 and float(one.max()) <= 1
    torch.testing.assert_close(one, metrics.random_map((SIZE, SIZE), seed=3), rtol=0, atol=0)
    assert not torch.equal(one, metrics.random_map((SIZE, SIZE), seed=4))
    coarse = metrics.random_map((SIZE, SIZE), grid=(4, 4), seed=3, count=2)
    assert coarse.shape == (2, SIZE, SIZE)
    cells = torch.rand((2, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(
        coarse, F.interpolate(cells, size=(SIZE, SIZE), mode="bilinear")[:, 0]
    )
    x = image(9)
    baseline = metrics.random_baseline(engine, x, 1, runs=3, steps=16, seed=0, progress=False)
    dels = [
        metrics.deletion(
            engine, x, metrics.random_map((SIZE, SIZE), seed=s), 1, steps=16, progress=False
        )
        for s in range(3)
    ]
    aucs = torch.tensor([d.auc for d in dels if isinstance(d, metrics.Curve)], dtype=torch.float64)
    assert baseline.runs == 3
    assert baseline.deletion == pytest.approx(float(aucs.mean()), rel=1e-9)
    assert baseline.deletion_std == pytest.approx(float(aucs.std()), rel=1e-9)
    with pytest.raises(ValueError, match="single image"):
        metrics.random_baseline(engine, image(9, n=2), runs=2)


def test_progress_bar(engine: GradCAM, capsys: pytest.CaptureFixture[str]) -> None:
    x = image(10)
    metrics.deletion(engine, x, smooth_map(10), 0, steps=4, progress=False)
    assert "deletion/insertion" not in capsys.readouterr().err
    metrics.deletion(engine, x, smooth_map(10), 0, steps=4, batch_size=2, progress=True)
    assert "deletion/insertion" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"baseline": "black"}, ValueError, "unknown baseline"),
        ({"baseline": torch.zeros(2, 3, 5, 5)}, ValueError, "broadcast"),
        ({"score": "prob"}, ValueError, "score"),
        ({"saliency": torch.full((SIZE, SIZE), float("nan"))}, ValueError, "NaN"),
        ({"saliency": torch.zeros(2, SIZE, SIZE)}, ValueError, "2 saliency map"),
        ({"saliency": "map"}, TypeError, "saliency must be"),
        ({"target": 99}, ValueError, "out of range"),
        ({"target": "dog"}, ValueError, "unknown class"),
    ],
)
def test_bad_arguments_fail_before_any_model_pass(
    engine: GradCAM, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    arguments: dict[str, object] = {"saliency": smooth_map(0), "target": None, **kwargs}
    before = engine.cache_info().forwards
    with pytest.raises(error, match=match):
        metrics.deletion(engine, image(0), **arguments)  # type: ignore[arg-type]
    assert engine.cache_info().forwards == before


def test_on_the_shapes_zoo_gradcam_beats_random_maps() -> None:
    # Per image the deletion of random pixels can beat any map (when the class is also what the
    # model says of a blank image, every deletion curve ends high): compare means over scenes.
    shapes = zoo.load("shapes")
    engine = GradCAM(shapes.model, transform=shapes.transform, classes=shapes.classes)
    scenes = zoo.sample_scenes(4, seed=7)
    batch = [s.image for s in scenes]
    targets = [s.labels[0] for s in scenes]
    res = engine.explain(batch, target=targets)
    curves = metrics.faithfulness(engine, batch, res, steps=50, progress=False)
    assert isinstance(curves, list)
    chance = [
        metrics.random_baseline(engine, s.image, t, runs=2, steps=50, progress=False)
        for s, t in zip(scenes, targets, strict=True)
    ]
    assert np.mean([c.deletion.auc for c in curves]) < np.mean([c.deletion for c in chance])
    assert np.mean([c.insertion.auc for c in curves]) > np.mean([c.insertion for c in chance])
    masks = np.stack([s.masks[0] for s in scenes])
    assert metrics.pointing_game(res, masks, tolerance=8).accuracy == 1.0  # one layer4 cell


def test_importing_the_metrics_pulls_in_no_widget_or_plotting_code() -> None:
    code = (
        "import sys, camwidgets.metrics, camwidgets.engine.guided; "
        "print(sorted(m for m in ('ipywidgets', 'plotly') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
