"""Teaching zoo: synthetic shape scenes and small models that ship with the package.

>>> from camwidgets import zoo
>>> shapes = zoo.load("shapes")            # doctest: +SKIP
>>> scenes = zoo.sample_scenes(4, seed=1)  # doctest: +SKIP
>>> data = zoo.concepts(200, seed=21)      # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from camwidgets.zoo.concepts import ConceptScenes, concepts
from camwidgets.zoo.registry import ZooModel, load
from camwidgets.zoo.scenes import SHAPE_CLASSES, Scene, ShapesDataset, make_scene

if TYPE_CHECKING:
    from camwidgets.zoo.torchvision_models import torchvision_model

__all__ = [
    "SHAPE_CLASSES",
    "ConceptScenes",
    "Scene",
    "ShapesDataset",
    "ZooModel",
    "concepts",
    "load",
    "make_scene",
    "sample_scenes",
    "torchvision_model",
]


def sample_scenes(n: int, seed: int = 0, two_objects: bool = False) -> list[Scene]:
    """``n`` reproducible scenes for notebooks and the demo gallery.

    Args:
        n: how many.
        seed: collection seed (the shipped models were trained on collection 0).
        two_objects: two shapes of different classes per scene instead of one.
    """
    return [make_scene(seed, i, n_objects=2 if two_objects else 1) for i in range(n)]


def __getattr__(name: str) -> Any:
    # torchvision_model needs torchvision, whose import costs seconds (it pulls torch._dynamo):
    # imported on first use, so the shipped teaching models load without it.
    if name == "torchvision_model":
        from camwidgets.zoo.torchvision_models import torchvision_model

        return torchvision_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
