"""The zoo's synthetic scenes as a source (with object masks and boxes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import ACCEPTED, IndexedSource, Item
from .elements import mask_box


class ScenesSource(IndexedSource):
    """The zoo's synthetic scenes, with object masks and boxes (see ``camwidgets.zoo.scenes``).

    Args:
        n: number of scenes.
        seed: collection seed (the shipped models were trained on collection 0).
        mark: corner mark: "none", "correct" (the class's own, as the shortcut model was
            trained) or "swapped".
        objects: 1 or 2 shapes per scene; two-object scenes have no single label.
        size: side of the scenes in pixels.

    Example:
        >>> from camwidgets.audit import ScenesSource
        >>> scenes = ScenesSource(4, seed=1, mark="correct")
        >>> item = scenes.load(2)
        >>> item.id, item.image.shape, item.mask.shape, item.boxes.shape
        ('2', (96, 96, 3), (96, 96), (1, 4))
    """

    def __init__(
        self, n: int, seed: int = 1, mark: str = "none", objects: int = 1, size: int = 96
    ) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"the number of scenes must be a positive int, got {n!r}")
        if mark not in ("none", "correct", "swapped"):
            raise ValueError(f"mark must be 'none', 'correct' or 'swapped', got {mark!r}")
        if objects not in (1, 2):
            raise ValueError(f"objects must be 1 or 2, got {objects!r}")
        if mark != "none" and objects != 1:
            raise ValueError("corner marks exist only on single-object scenes (objects=1)")
        self.n, self.seed, self.mark, self.objects, self.size = n, seed, mark, objects, size

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> Item:
        from camwidgets.zoo.scenes import make_scene

        scene = make_scene(
            self.seed,
            index,
            n_objects=self.objects,
            size=self.size,
            mark=self.mark,  # type: ignore[arg-type]
        )
        mask = np.logical_or.reduce(scene.masks)
        boxes = np.array([mask_box(m) for m in scene.masks], dtype=np.float64)
        label = scene.labels[0] if self.objects == 1 else None
        return Item(str(index), scene.image, index=index, label=label, mask=mask, boxes=boxes)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "zoo-scenes",
            "n": self.n,
            "seed": self.seed,
            "mark": self.mark,
            "objects": self.objects,
            "size": self.size,
        }

    @classmethod
    def parse(cls, spec: str) -> ScenesSource:
        """``zoo:scenes[:N][:seed=S][:mark=M][:objects=K][:size=P]`` -> a source."""
        parts = spec.split(":")
        if len(parts) < 2 or parts[0] != "zoo" or parts[1] != "scenes":
            raise ValueError(f"unknown zoo data {spec!r}; accepted: {ACCEPTED}")
        options: dict[str, Any] = {"n": 1000}
        for part in parts[2:]:
            key, sep, value = part.partition("=")
            if not sep:
                key, value = "n", part
            if key not in ("n", "seed", "mark", "objects", "size"):
                raise ValueError(
                    f"unknown option {key!r} in {spec!r}; use n, seed, mark, objects, size"
                )
            if key == "mark":
                options[key] = value
            else:
                try:
                    options[key] = int(value)
                except ValueError:
                    raise ValueError(
                        f"option {key!r} in {spec!r} must be an int, got {value!r}"
                    ) from None
        return cls(**options)
