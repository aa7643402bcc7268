"""Target validation, before any pass: class indices, names, None (top-1) or target objects
(``camwidgets.targets``: Box, Region, Similarity, a Detection), one per image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from camwidgets.targets import Similarity
from camwidgets.targets import Target as TargetObject

from .checks import as_index, describe_value
from .classnames import check_index, resolve_class
from .entry import ImageEntry
from .state import EngineState

Target = int | str | None | TargetObject | Sequence[int | str | TargetObject | None]
Key = int | TargetObject  # what one image's gradients are cached under


class TargetChecks(EngineState):
    """Checks ``target`` arguments against the model's classes."""

    def _wanted(self, target: Target, count: int) -> tuple[Key | None, ...]:
        """Check targets before any pass: one index (None = top-1) per image of the batch."""
        if isinstance(target, (np.ndarray, torch.Tensor)) and target.ndim == 1:
            target = target.tolist()
        if isinstance(target, (list, tuple)):
            if len(target) != count:
                raise ValueError(f"got {len(target)} targets for a batch of {count} images")
            return tuple(self._class_index(t) for t in target)
        return (self._class_index(target),) * count

    def _targets(self, wanted: tuple[Key | None, ...], entry: ImageEntry) -> tuple[Key, ...]:
        """The checked targets with each None replaced by that image's top-1 class."""
        if all(c is not None for c in wanted):
            return tuple(c for c in wanted if c is not None)
        if entry.top is None:
            # One argmax per forward for the whole batch: one device sync, then remembered.
            entry.top = tuple(int(t) for t in entry.scores.argmax(dim=1).tolist())
        top = entry.top
        return tuple(top[i] if c is None else c for i, c in enumerate(wanted))

    def _class_index(self, target: object) -> Key | None:
        """Validate one target: an int-like index, a class name, None for the top-1, or a
        target object (its label resolved against the class names)."""
        if target is None:
            return None
        if isinstance(target, TargetObject):
            if self._conventions.kind in target.refused_for:
                raise ValueError(
                    f"a {type(target).__name__} target needs a "
                    f"{'detector' if self._conventions.kind == 'segmenter' else 'segmenter'}; "
                    f"this engine's model is a {self._conventions.kind}"
                )
            return target.resolve(self.classes, self.num_classes)
        if isinstance(target, str):  # the resolver the panel and the CLI use too
            if self.concept_encoder is None:
                return resolve_class(target, self.classes)
            try:
                return resolve_class(target, self.classes)
            except ValueError:  # not a class name: words, a concept of the embedding
                return self._concept(target)
        try:
            index = as_index(target, "target")
        except TypeError:
            raise TypeError(
                "target must be a class index (int, numpy integer, 0-d integer tensor), a class "
                "name, None for the top-1 class, a target object (camwidgets.targets: Box, "
                f"Region, Similarity) or a list of these, got {describe_value(target)}"
            ) from None
        return check_index(index, self.num_classes)

    def concept(self, words: str) -> Similarity:
        """``Similarity`` to the ``concept_encoder``'s embedding of ``words``."""
        if self.concept_encoder is None:
            raise ValueError("concept() needs GradCAM(..., concept_encoder=words -> vector)")
        if not isinstance(words, str) or not words.strip():
            raise ValueError(f"concept() takes words, got {words!r}")
        return self._concept(words)

    def _concept(self, words: str) -> Similarity:
        """A Similarity to the concept encoder's embedding of ``words``, checked."""
        encoder = self.concept_encoder
        assert encoder is not None
        vector = encoder(words)
        if isinstance(vector, torch.Tensor):
            vector = vector.detach().float().cpu().reshape(-1)
        concept = Similarity(vector, name=words)
        concept.resolve(self.classes, self.num_classes)
        return concept
