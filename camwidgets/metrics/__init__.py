"""Faithfulness metrics for saliency maps: deletion / insertion, confidence change, pointing game.

* **Deletion and insertion** (Petsiuk et al., "RISE", BMVC 2018, arXiv:1806.07421). Pixels are
  ranked by saliency, highest first. Deletion replaces them, ``pixels_per_step`` at a time, by a
  baseline (zeros of the model input, i.e. the normalisation mean); insertion starts from a
  blurred copy and puts the original pixels back in the same order. The curve is the class
  probability after each step, against the fraction of pixels changed; its area (trapezoid
  rule on [0, 1]) is the score: low is good for deletion, high for insertion.
* **Average drop and increase in confidence** (Chattopadhay et al., "Grad-CAM++", WACV 2018).
  The model sees only the explanation, E = x * L / max(L), with Y the class probability on x
  and O on E: average drop = 100/N sum_i max(0, Y_i - O_i) / Y_i; increase in confidence =
  100/N sum_i [O_i > Y_i].
* **Pointing game** (Zhang et al., "Top-down neural attention by excitation backprop", ECCV
  2016): a hit when the map's maximum lies on the object's mask, or within ``tolerance``
  pixels of it (the paper used 15).
* **Randomisation sanity check** (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS
  2018): randomise the model's parameters from the head down, on a copy, and measure how far
  each step's map moves from the original (Spearman, SSIM, top-k overlap; ``randomisation``).

Every perturbed image goes through ``engine.scores`` in batches of ``batch_size`` (no
gradients, eval mode); long runs show a progress bar (after a second, or ``progress=True``).
All perturbations happen in the model-input space (after the transform's normalisation), as in
RISE's code, so "zero" is the dataset mean colour, not black.

Example:
    >>> from camwidgets import GradCAM, metrics, zoo
    >>> shapes = zoo.load("shapes")
    >>> engine = GradCAM(shapes.model, transform=shapes.transform, classes=shapes.classes)
    >>> scene = zoo.sample_scenes(1)[0]
    >>> res = engine.explain(scene.image, target=scene.labels[0])
    >>> curves = metrics.faithfulness(engine, scene.image, res, progress=False)
    >>> 0.0 <= curves.deletion.auc <= curves.insertion.auc <= 1.0
    True
    >>> metrics.pointing_game(res.heatmap, scene.masks[0], tolerance=4).accuracy
    1.0
"""

from __future__ import annotations

# One module per concept. Type aliases and the engine protocol stay reachable as
# ``camwidgets.metrics.X`` (module attributes before the split) without joining ``__all__``.
from .confidence import ConfidenceChange, confidence_change
from .curves import Baseline as Baseline
from .curves import Curve, Faithfulness, auc, blur, deletion, faithfulness, insertion
from .curves import Kind as Kind
from .inputs import Saliency as Saliency
from .inputs import Scorer as Scorer
from .pointing import PointingGame, pointing_game
from .random_maps import RandomBaseline, random_baseline, random_map
from .randomisation import GUIDED_BACKPROP, Randomisation, randomisation
from .similarity import spearman, ssim, topk_overlap

__all__ = [
    "GUIDED_BACKPROP",
    "ConfidenceChange",
    "Curve",
    "Faithfulness",
    "PointingGame",
    "RandomBaseline",
    "Randomisation",
    "auc",
    "blur",
    "confidence_change",
    "deletion",
    "faithfulness",
    "insertion",
    "pointing_game",
    "random_baseline",
    "random_map",
    "randomisation",
    "spearman",
    "ssim",
    "topk_overlap",
]
