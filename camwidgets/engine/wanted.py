"""Target validation: class indices, names or None (top-1), one per image, before any pass."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .checks import as_index, describe_value
from .classnames import check_index, resolve_class
from .state import EngineState

Target = int | str | None | Sequence[int | str]


class TargetChecks(EngineState):
    """Checks ``target`` arguments against the model's classes."""

    def _wanted(self, target: Target, count: int) -> tuple[int | None, ...]:
        """Check targets before any pass: one index (None = top-1) per image of the batch."""
        if isinstance(target, (np.ndarray, torch.Tensor)) and target.ndim == 1:
            target = target.tolist()
        if isinstance(target, (list, tuple)):
            if len(target) != count:
                raise ValueError(f"got {len(target)} targets for a batch of {count} images")
            return tuple(self._class_index(t) for t in target)
        return (self._class_index(target),) * count

    def _targets(self, wanted: tuple[int | None, ...], scores: torch.Tensor) -> tuple[int, ...]:
        """The checked targets with each None replaced by that image's top-1 class."""
        if all(c is not None for c in wanted):
            return tuple(c for c in wanted if c is not None)
        # One argmax for the batch: one device sync, not one per image.
        top = scores.argmax(dim=1).tolist()
        return tuple(int(top[i]) if c is None else c for i, c in enumerate(wanted))

    def _class_index(self, target: object) -> int | None:
        """Validate one target: an int-like index, a class name, or None for the top-1."""
        if target is None:
            return None
        if isinstance(target, str):  # the resolver the panel and the CLI use too
            return resolve_class(target, self.classes)
        try:
            index = as_index(target, "target")
        except TypeError:
            raise TypeError(
                "target must be a class index (int, numpy integer, 0-d integer tensor), a class "
                f"name, None for the top-1 class, or a list of these, got {describe_value(target)}"
            ) from None
        return check_index(index, self.num_classes)
