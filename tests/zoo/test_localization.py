"""Localization, measured: the pointing game on fresh two-object scenes.

For each scene both classes are explained at ``layer4`` through the public engine
(``camwidgets.GradCAM``). A map "points" at the object when its maximum lies on the explained
object's mask grown by ``TOLERANCE`` pixels; its counterfactual map (alpha negated) should peak
off the object itself.
"""

from __future__ import annotations

import torch

from camwidgets import GradCAM
from camwidgets.zoo import ZooModel, sample_scenes
from camwidgets.zoo.evaluate import TOLERANCE, reference_gradcam, score_maps
from camwidgets.zoo.scenes import to_tensor

SEED = 777  # never used for training (collections 0 and 1)
N_SCENES = 100


def test_pointing_game_with_the_engine(shapes: ZooModel) -> None:
    scenes = sample_scenes(N_SCENES, seed=SEED, two_objects=True)
    engine = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
    images = [s.image for s in scenes]
    maps: dict[tuple[int, bool], torch.Tensor] = {}
    for which in (0, 1):
        targets = [s.labels[which] for s in scenes]
        for cf in (False, True):
            res = engine.explain(images, layer="layer4", target=targets, counterfactual=cf)
            assert res.heatmap.shape == (N_SCENES, 96, 96)
            maps[which, cf] = res.heatmap
    # Interleave to scene 0 object 0, scene 0 object 1, ... as score_maps expects.
    cams = torch.stack([maps[0, False], maps[1, False]], dim=1).flatten(0, 1)
    cfs = torch.stack([maps[0, True], maps[1, True]], dim=1).flatten(0, 1)
    result = score_maps(scenes, cams, cfs, tolerance=TOLERANCE)
    assert result.n == 2 * N_SCENES
    assert result.pointing >= 0.9, result
    assert result.counterfactual >= 0.8, result


def test_engine_matches_the_reference(shapes: ZooModel) -> None:
    """The zoo's plain Grad-CAM (used by ``evaluate``) and the engine agree."""
    scenes = sample_scenes(8, seed=SEED, two_objects=True)
    x = torch.stack([to_tensor(s.image) for s in scenes])
    targets = torch.tensor([s.labels[1] for s in scenes])
    engine = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
    for cf in (False, True):
        ours = reference_gradcam(shapes.model, x, "layer4", targets, counterfactual=cf)
        theirs = engine.explain(x, layer="layer4", target=targets.tolist(), counterfactual=cf)
        assert torch.allclose(ours, theirs.heatmap, rtol=1e-4, atol=1e-5)
