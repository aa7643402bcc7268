"""The panel's images: each one's prepared tensor, predictions, picture and picker label."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...engine import GradCAM, Prediction, Prepared
from ...figures import png_data_uri
from ..controls import class_label

TOP_K = 5
"""How many top predictions the class list offers."""


@dataclass
class PanelImage:
    """One image of the panel: its prepared tensor, predictions, picture, picker label.

    ``predictions`` (every class, most probable first) and ``picture`` (a PNG data URI) are
    filled on first use and kept.
    """

    prepared: Prepared
    label: str
    predictions: list[Prediction] | None = None
    picture: str | None = None

    def png(self) -> str:
        """The picture as a PNG data URI (made once)."""
        if self.picture is None:
            display = self.prepared.display  # (1, H, W, 3) for one image
            self.picture = png_data_uri(display[0] if display.ndim == 4 else display)
        return self.picture


def load_images(engine: GradCAM, images: Sequence[Any]) -> list[PanelImage]:
    """Prepare every image (the engine refuses what it cannot take, before any model pass)."""
    if not images:
        raise ValueError("got an empty list of images")
    return [PanelImage(engine.prepare(x), image_label(x, i)) for i, x in enumerate(images)]


def predict_all(engine: GradCAM, prepared: Prepared) -> list[Prediction]:
    """Every class, most probable first (one cached forward serves all of them)."""
    found = engine.predict(prepared, k=engine.num_classes)
    return [p for p in found if isinstance(p, Prediction)]


def offered(image: PanelImage | None) -> list[int]:
    """The top classes of ``image`` (the class list before any extra)."""
    predictions = image.predictions if image is not None else None
    return [p.index for p in (predictions or [])[:TOP_K]]


def class_options(predictions: Sequence[Prediction], extra: Sequence[int]) -> list[Any]:
    """The class list: the top predictions, then the classes chosen beyond them."""
    shown = list(predictions[:TOP_K])
    by_index = {p.index: p for p in predictions}
    shown += [by_index[i] for i in extra if i in by_index and by_index[i] not in shown]
    return [(class_label(p.index, p.name, p.probability), p.index) for p in shown]


def image_label(image: Any, index: int) -> str:
    """The image picker's label: a file's name, else "image N"."""
    if isinstance(image, (str, Path)):
        return Path(image).name
    return f"image {index + 1}"
