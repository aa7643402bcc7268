"""Failure modes: where the maps of a wrong prediction lie, and the patterns they form.

For an image whose top-1 p differs from its label t, the audit explains both p and t and
records on which of the picture's *places* (named masks: the objects by class name, a corner
mark as ``"mark:<class>"``) each map peaks. The Grad-CAM paper's claim is that "seemingly
unreasonable predictions have reasonable explanations": a model that names the other shape of
a two-shape scene looks at that shape; a model that learned a shortcut looks at the mark.

Grouping by (where the predicted class's map lies, where the true class's map lies), each
relative to the two classes, gives sentences a reader can check at a glance, e.g. "predicted
another object's class: the predicted class's map sits on that object".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BACKGROUND", "NOWHERE", "Mistake", "Pattern", "group", "place_of", "relation"]

BACKGROUND = "background"
"""The place of a peak that is on none of the named places."""
NOWHERE = "nowhere"
"""The place of an all-zero map (it has no peak)."""
MARK = "mark:"


def place_of(heat: np.ndarray, places: Mapping[str, np.ndarray], tolerance: float) -> str:
    """Where a map peaks: the nearest place within ``tolerance`` pixels, else the background.

    Args:
        heat: an (H, W) non-negative map.
        places: named boolean (H, W) masks, in the map's pixels.
        tolerance: Chebyshev distance (pixels) a peak may lie off a place's mask.
    """
    if heat.ndim != 2:
        raise ValueError(f"heat must be (H, W), got shape {heat.shape}")
    if not float(heat.max(initial=0.0)) > 0.0:
        return NOWHERE
    row, col = divmod(int(np.argmax(heat)), heat.shape[1])
    best, where = float("inf"), BACKGROUND
    for name, mask in places.items():
        if mask.shape != heat.shape:
            raise ValueError(f"place {name!r} is {mask.shape}, the map {heat.shape}")
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            continue
        distance = float(np.min(np.maximum(np.abs(ys - row), np.abs(xs - col))))
        if distance <= tolerance and distance < best:
            best, where = distance, name
    return where


def relation(place: str | None, own: str, other: str) -> str:
    """A place said relative to a class (``own``) and the other class of the mistake.

    >>> relation("square", "square", "star"), relation("mark:star", "square", "star")
    ('own object', 'mark of the other class')
    """
    if place is None:
        return "unknown"
    if place in (NOWHERE, BACKGROUND):
        return place
    if place.startswith(MARK):
        whose = place[len(MARK) :]
        if whose == own:
            return "own mark"
        return "mark of the other class" if whose == other else "mark"
    if place == own:
        return "own object"
    return "other class's object" if place == other else "another object"


# Where the predicted class's map lies -> how the mistake reads, and the place in words.
_LEADS: dict[str, tuple[str, str]] = {
    "own object": ("predicted another object in the picture", "on that object"),
    "own mark": ("predicted the mark's class", "on the mark"),
    "mark of the other class": ("predicted a class from the mark of another", "on the mark"),
    "mark": ("predicted a class from the mark of another", "on the mark"),
    "other class's object": ("named the labelled object wrongly", "on the labelled object"),
    "another object": ("predicted a class from an unrelated object", "on another object"),
    BACKGROUND: ("predicted from the background", "on the background"),
    NOWHERE: ("the predicted class has an empty map", "nowhere (all zero)"),
    "unknown": ("mistake (no places known for the image)", "somewhere unknown"),
}
# Where the true class's map lies, in words.
_TRUE: dict[str, str] = {
    "own object": "on the labelled object",
    "own mark": "on the mark",
    "mark of the other class": "on the mark",
    "mark": "on the mark",
    "other class's object": "on the predicted object",
    "another object": "on another object",
    BACKGROUND: "on the background",
    NOWHERE: "nowhere (all zero)",
    "unknown": "somewhere unknown",
}


@dataclass(frozen=True)
class Mistake:
    """One image whose top-1 differs from its label.

    Attributes:
        id: the item's id.
        label, predicted: class names of the label and of the top-1.
        label_place, pred_place: where the maps of the true and the predicted class peak.
    """

    id: str
    label: str
    predicted: str
    label_place: str | None
    pred_place: str | None

    @property
    def pattern(self) -> str:
        """The sentence this mistake's maps make, e.g. "predicted another object in the
        picture: the predicted class's map sits on that object; the true class's map sits on
        the labelled object"."""
        lead, pred = _LEADS[relation(self.pred_place, self.predicted, self.label)]
        true = _TRUE[relation(self.label_place, self.label, self.predicted)]
        return f"{lead}: the predicted class's map sits {pred}; the true class's map sits {true}"


@dataclass(frozen=True)
class Pattern:
    """Mistakes that share one pattern.

    Attributes:
        pattern: the sentence; count: how many mistakes; ids: their item ids;
        pairs: (true, predicted) class names with their counts, most frequent first.
    """

    pattern: str
    count: int
    ids: tuple[str, ...]
    pairs: tuple[tuple[str, str, int], ...]


def group(mistakes: Sequence[Mistake]) -> list[Pattern]:
    """Mistakes grouped by pattern, the most frequent pattern first."""
    found: dict[str, list[Mistake]] = {}
    for mistake in mistakes:
        found.setdefault(mistake.pattern, []).append(mistake)
    out = []
    for pattern, members in found.items():
        pairs: dict[tuple[str, str], int] = {}
        for m in members:
            pairs[(m.label, m.predicted)] = pairs.get((m.label, m.predicted), 0) + 1
        ranked = sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append(
            Pattern(
                pattern=pattern,
                count=len(members),
                ids=tuple(m.id for m in members),
                pairs=tuple((t, p, c) for (t, p), c in ranked),
            )
        )
    return sorted(out, key=lambda p: (-p.count, p.pattern))
