"""Adversarial attacks in the picture's pixel space, for the robustness lesson.

``pgd(engine, image)`` and ``fgsm(engine, image)`` perturb a picture within ``eps`` (L-infinity,
pixel values in [0, 1]) through the engine's own transform, untargeted (away from the clean
top-1) or towards a ``target``, and feed the attacked picture back through the engine.

>>> from camwidgets.attacks import pgd
>>> res = pgd(engine, picture, eps=8 / 255)   # doctest: +SKIP
>>> res.original_name, res.predicted_name     # doctest: +SKIP
"""

from __future__ import annotations

from .gradient import fgsm, pgd
from .pixels import NotDifferentiableError, differentiable
from .result import AttackResult

__all__ = ["AttackResult", "NotDifferentiableError", "differentiable", "fgsm", "pgd"]
