"""AttackResult: the attacked pictures, the predictions before and after, and the budget."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["AttackResult"]


@dataclass(frozen=True)
class AttackResult:
    """What an attack did to one picture or a batch (a batch result indexes and iterates).

    For one picture the properties are single values; for a batch they are lists (``.image``
    and ``.perturbation`` are (N, H, W, 3) arrays when every picture has the same size).

    Attributes:
        images: the attacked pictures, float32 (H, W, 3) in [0, 1], each at its input's size,
            on the 1/255 grid (what a PNG or the engine's own uint8 path holds exactly).
        original_pictures: the clean pictures as the engine sees them, float32 (H, W, 3).
        originals: the engine's top-1 on each clean picture.
        predictions: the engine's top-1 on each attacked picture (fed back through the engine).
        targets: the class each picture was pushed towards, or None (untargeted).
        classes: the engine's class names.
        method: "pgd" or "fgsm"; eps, steps, step_size: the attack's settings.
        batched: whether the input was a batch.

    Example:
        >>> from camwidgets import GradCAM, zoo
        >>> from camwidgets.attacks import pgd
        >>> z = zoo.load("shapes")                                           # doctest: +SKIP
        >>> engine = GradCAM(z.model, classes=z.classes, transform=z.transform)  # doctest: +SKIP
        >>> res = pgd(engine, zoo.make_scene(1, 0).image)                   # doctest: +SKIP
        >>> res.original_name, res.predicted_name, res.success             # doctest: +SKIP
    """

    images: tuple[np.ndarray, ...]
    original_pictures: tuple[np.ndarray, ...]
    originals: tuple[int, ...]
    predictions: tuple[int, ...]
    targets: tuple[int | None, ...]
    classes: tuple[str, ...]
    method: str
    eps: float
    steps: int
    step_size: float
    batched: bool

    def _one(self, values: Sequence[Any]) -> Any:
        """A single value for one picture, the list for a batch."""
        return list(values) if self.batched else values[0]

    def _pictures(self, values: Sequence[np.ndarray]) -> Any:
        """(H, W, 3) for one picture; (N, H, W, 3) or a list for a batch."""
        if not self.batched:
            return values[0]
        if len({v.shape for v in values}) == 1:
            return np.stack(values)
        return list(values)

    @property
    def image(self) -> Any:
        """The attacked picture(s), float32 (H, W, 3) in [0, 1]."""
        return self._pictures(self.images)

    @property
    def original_image(self) -> Any:
        """The clean picture(s) as the engine saw them, float32 (H, W, 3) in [0, 1]."""
        return self._pictures(self.original_pictures)

    @property
    def perturbation(self) -> Any:
        """``image - original_image``: within [-eps, eps] everywhere."""
        return self._pictures(
            [a - o for a, o in zip(self.images, self.original_pictures, strict=True)]
        )

    @property
    def original(self) -> Any:
        """The class index predicted on the clean picture(s)."""
        return self._one(self.originals)

    @property
    def predicted(self) -> Any:
        """The class index predicted on the attacked picture(s)."""
        return self._one(self.predictions)

    @property
    def target(self) -> Any:
        """The class pushed towards, or None for an untargeted attack."""
        return self._one(self.targets)

    @property
    def successes(self) -> tuple[bool, ...]:
        """Per picture: reached the target (targeted) or left the original class."""
        return tuple(
            (p == t) if t is not None else (p != o)
            for o, p, t in zip(self.originals, self.predictions, self.targets, strict=True)
        )

    @property
    def success(self) -> Any:
        """Whether the attack did what it was asked (a list for a batch)."""
        return self._one(self.successes)

    @property
    def success_rate(self) -> float:
        """Share of pictures where the attack succeeded."""
        return float(np.mean(self.successes))

    @property
    def original_name(self) -> Any:
        """The class name(s) predicted on the clean picture(s)."""
        return self._one([self.classes[i] for i in self.originals])

    @property
    def predicted_name(self) -> Any:
        """The class name(s) predicted on the attacked picture(s)."""
        return self._one([self.classes[i] for i in self.predictions])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> AttackResult:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"index an AttackResult with an int, got {type(index).__name__}")
        i = int(index)
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} pictures")
        i %= len(self)
        return AttackResult(
            images=(self.images[i],),
            original_pictures=(self.original_pictures[i],),
            originals=(self.originals[i],),
            predictions=(self.predictions[i],),
            targets=(self.targets[i],),
            classes=self.classes,
            method=self.method,
            eps=self.eps,
            steps=self.steps,
            step_size=self.step_size,
            batched=False,
        )

    def __iter__(self) -> Iterator[AttackResult]:
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        head = f"AttackResult({self.method}, eps={self.eps:.4g}"
        if not self.batched:
            return f"{head}: {self.original_name} -> {self.predicted_name}, success={self.success})"
        return f"{head}: {len(self)} pictures, success rate {self.success_rate:.0%})"
