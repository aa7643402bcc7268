"""Agreement with Quantus 0.6 on the same inputs and maps: the pointing game, the randomisation
test (its MPRT) and the deletion curve (its PixelFlipping). Where a definition differs, the test
shows the difference is exactly what docs/explanation/sanity-checks.md says."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch

from camwidgets import GradCAM, metrics, zoo

quantus = pytest.importorskip(
    "quantus", reason="the agreement tests need Quantus (pip install 'camwidgets[test]')"
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def shapes() -> Any:
    return zoo.load("shapes")


@pytest.fixture(scope="module")
def engine(shapes: Any) -> GradCAM:
    return GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)


def batch(engine: GradCAM, scenes: list[Any]) -> torch.Tensor:
    """The scenes as the model sees them, (N, 3, H, W)."""
    return engine.prepare([s.image for s in scenes]).tensor


# -- pointing game -------------------------------------------------------------------------------


def test_pointing_game_agrees_on_maps_with_one_maximum(engine: GradCAM, shapes: Any) -> None:
    scenes = zoo.sample_scenes(12, seed=3, two_objects=True)
    x = batch(engine, scenes)
    # Explain the second object: some maps point at it, some at the first (misses).
    targets = [s.labels[1] for s in scenes]
    maps = engine.explain(x, target=targets).heatmap.numpy()
    masks = np.stack([s.masks[1] for s in scenes])
    assert all((m == m.max()).sum() == 1 for m in maps)  # one maximum each: no ties to break
    ours = metrics.pointing_game(maps, masks)
    theirs = quantus.PointingGame(disable_warnings=True)(
        model=shapes.model,
        x_batch=x.numpy(),
        y_batch=np.array(targets),
        a_batch=maps[:, None],
        s_batch=masks[:, None].astype(np.float32),
    )
    assert list(ours.hits) == [bool(h) for h in theirs]
    assert 0 < sum(ours.hits) < len(scenes)  # both outcomes occur, so agreement means something


def test_pointing_game_ties_and_flat_maps_differ_as_documented(shapes: Any) -> None:
    mask = np.zeros((1, 8, 8), bool)
    mask[0, 6, 6] = True
    flat = np.full((1, 8, 8), 0.5, np.float32)
    tied = np.zeros((1, 8, 8), np.float32)
    tied[0, 0, 0] = tied[0, 6, 6] = 1.0  # two maxima: the first in raster order is off the mask
    x = np.zeros((1, 3, 8, 8), np.float32)
    ours = metrics.pointing_game(np.concatenate([flat, tied]), np.concatenate([mask, mask]))

    def theirs(a: np.ndarray) -> bool:
        return bool(
            quantus.PointingGame(normalise=False, disable_warnings=True)(
                model=shapes.model,
                x_batch=x,
                y_batch=np.array([0]),
                a_batch=a[:, None],
                s_batch=mask[:, None].astype(np.float32),
            )[0]
        )

    # Ours: a flat map has no maximum (a miss, flagged empty); ties take the first maximum.
    assert ours.hits == (False, False) and ours.empty == (True, False)
    # Quantus: any maximum on the mask is a hit; a flat map is refused outright.
    assert theirs(tied) is True
    with pytest.raises(AssertionError, match="uniformly distributed"):
        theirs(flat)


# -- randomisation: Quantus' MPRT ----------------------------------------------------------------


@pytest.mark.slow
def test_randomisation_agrees_with_quantus_mprt(engine: GradCAM, shapes: Any) -> None:
    # Guided Backprop: Quantus refuses an all-zero explanation (an assertion), and Grad-CAM's
    # map of a model whose head is random is often all zero; |guided gradient| never is here.
    scene = zoo.sample_scenes(1, seed=5)[0]
    x = batch(engine, [scene])
    ours = metrics.randomisation(
        engine,
        scene.image,
        method="guided-backprop",
        groups="modules",
        init="reset",
        seed=43,
        progress=False,
    )

    def explain(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> Any:
        fresh = GradCAM(model, classes=shapes.classes, transform=shapes.transform)
        maps = [
            fresh.guided_backprop(torch.from_numpy(np.asarray(one)), target=int(t)).abs().sum(0)
            for one, t in zip(inputs, targets, strict=True)
        ]
        return torch.stack(maps).numpy()[:, None]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Quantus seeds torch's global generator with seed + 1 before each reset_parameters().
        theirs = quantus.MPRT(seed=42, disable_warnings=True, display_progressbar=False)(
            model=shapes.model,
            x_batch=x.numpy(),
            y_batch=np.array([ours.target]),
            a_batch=ours.original.numpy()[None, None],
            explain_func=explain,
        )
    layers = [k for k in theirs if k != "original"]
    assert layers == list(ours.steps)  # every module with parameters, head first
    for step, layer in enumerate(layers):
        assert ours.spearman[step] == pytest.approx(float(theirs[layer][0]), abs=1e-6)
    assert float(theirs["original"][0]) == pytest.approx(1.0)


@pytest.mark.slow
def test_quantus_mprt_refuses_the_flat_maps_ours_scores_zero(engine: GradCAM, shapes: Any) -> None:
    scene = zoo.sample_scenes(1, seed=5)[0]
    ours = metrics.randomisation(
        engine, scene.image, groups="modules", init="reset", seed=43, progress=False
    )
    flat = [i for i in range(len(ours.steps)) if float(ours.maps[i].max()) == 0.0]
    assert flat, "this scene's Grad-CAM goes flat once the head is random"
    assert all(ours.spearman[i] == 0.0 for i in flat)

    def explain(model: torch.nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: Any) -> Any:
        fresh = GradCAM(model, classes=shapes.classes, transform=shapes.transform)
        heat = fresh.explain(torch.from_numpy(np.asarray(inputs)), target=int(targets[0])).heatmap
        return heat.numpy()[None, None]

    with warnings.catch_warnings(), pytest.raises(AssertionError, match="equal to zero"):
        warnings.simplefilter("ignore")
        quantus.MPRT(seed=42, disable_warnings=True, display_progressbar=False)(
            model=shapes.model,
            x_batch=batch(engine, [scene]).numpy(),
            y_batch=np.array([ours.target]),
            a_batch=ours.original.numpy()[None, None],
            explain_func=explain,
        )


# -- deletion: Quantus' PixelFlipping ------------------------------------------------------------


@pytest.mark.slow
def test_deletion_curve_agrees_with_pixel_flipping(engine: GradCAM, shapes: Any) -> None:
    scene = zoo.sample_scenes(1, seed=8)[0]
    x = batch(engine, [scene])
    res = engine.explain(x)
    # Distinct values everywhere (a Grad-CAM map has ReLU zeros), so both orders are the same.
    jitter = np.random.default_rng(0).random(res.heatmap.shape[-2:]) * 1e-6
    saliency = res.heatmap.numpy()[0] + jitter.astype(np.float32)
    steps = 192  # 48 pixels a step
    ours = metrics.deletion(
        engine, x, torch.from_numpy(saliency)[None], res.target, steps=steps, progress=False
    )
    assert isinstance(ours, metrics.Curve)
    curve = ours
    per_step = math.ceil(saliency.size / steps)
    theirs = quantus.PixelFlipping(
        # Quantus flips channel values (a pixel is 3 of them) but checks the count against
        # H x W: 144 values (48 pixels) a step, 192 steps, as ours.
        features_in_step=3 * per_step,
        perturb_baseline=0.0,  # the model-input zero, our "zero" baseline
        normalise=False,
        disable_warnings=True,
        display_progressbar=False,
    )(
        model=shapes.model,
        x_batch=x.numpy(),
        y_batch=np.array([res.target]),
        a_batch=saliency[None, None],
    )
    flips = np.asarray(theirs[0])
    # Quantus' curve starts after the first step; ours starts at the unperturbed image.
    assert flips.shape == (steps,) and curve.scores.shape == (steps + 1,)
    np.testing.assert_allclose(curve.scores[1:].numpy(), flips, atol=1e-5)
    # The areas differ by definition: ours on [0, 1] with the start, Quantus' over step numbers.
    quantus_area = float(np.sum((flips[1:] + flips[:-1]) / 2))  # np.trapz(flips), dx=1
    start = float(curve.scores[0])
    assert curve.auc == pytest.approx(((start + flips[0]) / 2 + quantus_area) / steps, abs=1e-6)
