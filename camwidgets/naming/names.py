"""ChannelNames: the table network dissection produces (channel -> concept, IoU, runner-up).

The table keeps the whole IoU matrix (channels x concepts), so a name, a runner-up or the
channels that detect a concept are all read from it, and the naming threshold can be changed
without dissecting again.

File format (JSON, UTF-8), version 1::

    {
      "format": "camwidgets.channel-names",
      "version": 1,
      "layer": "layer4",                 # the dissected layer's name
      "quantile": 0.005,                 # top quantile q used for the per-channel thresholds
      "iou_threshold": 0.04,             # a channel is named when its best IoU >= this
      "images": 1000,                    # images the dissection ran over
      "concepts": ["circle", ...],       # C concept names, column order of "iou"
      "categories": {"circle": "shape"}, # concept -> category (may be empty)
      "concept_pixels": [123456, ...],   # C: mask pixels of each concept over the dataset
      "thresholds": [0.73, ...],         # K: activation threshold T_k of each channel
      "fired_pixels": [45000, ...],      # K: pixels where the upsampled map exceeded T_k
      "iou": [[0.01, ...], ...]          # K x C IoU matrix
    }

Readers reject other formats and newer versions with a clear error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "ChannelName", "ChannelNames"]

FORMAT = "camwidgets.channel-names"
VERSION = 1


@dataclass(frozen=True)
class ChannelName:
    """One row of the table: what one channel detects.

    Attributes:
        channel: the channel index in the layer.
        concept: the best concept when its IoU reaches the table's threshold, else None.
        iou: the best concept's IoU (also when it is below the threshold).
        best: the best concept, named or not (None only when the table has no concepts).
        runner_up: the second-best concept (None with fewer than two concepts).
        runner_up_iou: its IoU (0.0 when there is none).
        threshold: the activation threshold T_k used for this channel.
    """

    channel: int
    concept: str | None
    iou: float
    best: str | None
    runner_up: str | None
    runner_up_iou: float
    threshold: float


class ChannelNames:
    """Per-channel concept names for one layer, from :func:`camwidgets.naming.dissect`.

    ``iou[k, c]`` is the intersection over union, summed over the whole dataset, between the
    pixels where channel k's upsampled activation exceeds its threshold ``T_k`` and the pixels of
    concept c::

        IoU_{k,c} = sum_x |M_k(x) & L_c(x)| / sum_x |M_k(x) | L_c(x)|

    Channel k is named after ``argmax_c IoU_{k,c}`` when that IoU >= ``iou_threshold``.

    Example:
        >>> import numpy as np
        >>> names = ChannelNames(
        ...     layer="layer4", concepts=["circle", "red"],
        ...     iou=np.array([[0.2, 0.05], [0.01, 0.02]]), thresholds=np.array([1.0, 2.0]),
        ...     quantile=0.005, iou_threshold=0.04)
        >>> names.name(0), names.iou(0), names.name(1)
        ('circle', 0.2, None)
        >>> names.channels("circle")
        [0]

    Args:
        layer: the dissected layer's name.
        concepts: concept names, the columns of ``iou``.
        iou: (K, C) IoU matrix, values in [0, 1].
        thresholds: (K,) activation threshold of each channel.
        quantile: the top quantile the thresholds were set at.
        iou_threshold: the IoU a best concept needs for the channel to be named.
        categories: concept -> category ("shape", "colour", "object", ...); optional.
        images: how many images the dissection saw.
        concept_pixels: (C,) mask pixels of each concept over the dataset.
        fired_pixels: (K,) pixels above threshold of each channel over the dataset.
    """

    def __init__(
        self,
        layer: str,
        concepts: Sequence[str],
        iou: np.ndarray,
        thresholds: np.ndarray,
        quantile: float,
        iou_threshold: float,
        categories: Mapping[str, str] | None = None,
        images: int = 0,
        concept_pixels: np.ndarray | None = None,
        fired_pixels: np.ndarray | None = None,
    ) -> None:
        if not isinstance(layer, str) or not layer:
            raise TypeError(f"layer must be a non-empty str, got {layer!r}")
        concepts = list(concepts)
        if not all(isinstance(c, str) and c for c in concepts):
            raise TypeError("concepts must be non-empty strings")
        if len(set(concepts)) != len(concepts):
            raise ValueError("concept names must be unique")
        iou = np.asarray(iou, dtype=np.float64)
        if iou.ndim != 2 or iou.shape[1] != len(concepts):
            raise ValueError(
                f"iou must be (channels, {len(concepts)} concepts), got shape {iou.shape}"
            )
        if not np.all(np.isfinite(iou)) or (iou.size and (iou.min() < 0 or iou.max() > 1)):
            raise ValueError("iou values must be finite and in [0, 1]")
        channels = iou.shape[0]
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.shape != (channels,):
            raise ValueError(f"thresholds must have shape ({channels},), got {thresholds.shape}")
        _check_fraction("quantile", quantile, open_low=True)
        _check_fraction("iou_threshold", iou_threshold, open_low=False)
        self.layer = layer
        self.concepts: tuple[str, ...] = tuple(concepts)
        self.categories: dict[str, str] = dict(categories or {})
        self.matrix = iou
        self.matrix.setflags(write=False)
        self.thresholds = thresholds
        self.thresholds.setflags(write=False)
        self.quantile = float(quantile)
        self.iou_threshold = float(iou_threshold)
        self.images = int(images)
        self.concept_pixels = _counts(concept_pixels, len(concepts), "concept_pixels")
        self.fired_pixels = _counts(fired_pixels, channels, "fired_pixels")
        # Best and runner-up per channel; ties go to the earlier concept (stable sort).
        order = np.argsort(-iou, axis=1, kind="stable")
        self._best = order[:, 0] if len(concepts) else np.zeros(channels, dtype=np.int64)
        self._second = order[:, 1] if len(concepts) > 1 else None

    # -- lookups ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of channels."""
        return int(self.matrix.shape[0])

    def __iter__(self) -> Iterator[ChannelName]:
        return (self[k] for k in range(len(self)))

    def __getitem__(self, channel: int) -> ChannelName:
        """The row of one channel."""
        k = self._channel(channel)
        best = self.concepts[self._best[k]] if self.concepts else None
        second = self._second
        return ChannelName(
            channel=k,
            concept=self.name(k),
            iou=self.iou(k),
            best=best,
            runner_up=self.concepts[second[k]] if second is not None else None,
            runner_up_iou=float(self.matrix[k, second[k]]) if second is not None else 0.0,
            threshold=float(self.thresholds[k]),
        )

    def name(self, channel: int) -> str | None:
        """The channel's concept, or None when its best IoU is below ``iou_threshold``."""
        k = self._channel(channel)
        if not self.concepts or self.matrix[k, self._best[k]] < self.iou_threshold:
            return None
        return str(self.concepts[self._best[k]])

    def iou(self, channel: int, concept: str | None = None) -> float:
        """The IoU of the channel's best concept, or of ``concept`` when given."""
        k = self._channel(channel)
        if concept is None:
            return float(self.matrix[k, self._best[k]]) if self.concepts else 0.0
        return float(self.matrix[k, self._concept(concept)])

    def category(self, concept: str | None) -> str | None:
        """The category of a concept (None when unknown or for an unnamed channel)."""
        if concept is None:
            return None
        return self.categories.get(concept)

    def channels(self, concept: str) -> list[int]:
        """Channels named after ``concept``, highest IoU first."""
        c = self._concept(concept)
        found = [k for k in range(len(self)) if self.name(k) == concept]
        return sorted(found, key=lambda k: -self.matrix[k, c])

    def named(self) -> list[int]:
        """Channels that have a name."""
        return [k for k in range(len(self)) if self.name(k) is not None]

    def with_threshold(self, iou_threshold: float) -> ChannelNames:
        """The same dissection named with another IoU threshold (no model pass)."""
        return ChannelNames(
            self.layer,
            self.concepts,
            self.matrix,
            self.thresholds,
            self.quantile,
            iou_threshold,
            self.categories,
            self.images,
            self.concept_pixels,
            self.fired_pixels,
        )

    def summary(self) -> dict[str, int]:
        """Concept -> number of channels named after it, most frequent first."""
        counts: dict[str, int] = {}
        for k in range(len(self)):
            name = self.name(k)
            if name is not None:
                counts[name] = counts.get(name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def __repr__(self) -> str:
        named = len(self.named())
        return (
            f"ChannelNames(layer={self.layer!r}, channels={len(self)}, named={named}, "
            f"concepts={len(self.concepts)}, quantile={self.quantile}, "
            f"iou_threshold={self.iou_threshold})"
        )

    # -- files -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready content of the file format described in this module."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "layer": self.layer,
            "quantile": self.quantile,
            "iou_threshold": self.iou_threshold,
            "images": self.images,
            "concepts": list(self.concepts),
            "categories": dict(self.categories),
            "concept_pixels": [int(v) for v in self.concept_pixels],
            "thresholds": [float(v) for v in self.thresholds],
            "fired_pixels": [int(v) for v in self.fired_pixels],
            "iou": [[float(v) for v in row] for row in self.matrix],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelNames:
        """Rebuild a table from :meth:`to_dict`'s content, checking format and version."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"not a channel-names table: expected format {FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int) or version > VERSION or version < 1:
            raise ValueError(
                f"channel-names version {version!r} is not supported (this camwidgets reads "
                f"versions 1..{VERSION}); upgrade camwidgets or dissect again"
            )
        missing = [
            key
            for key in ("layer", "quantile", "iou_threshold", "concepts", "thresholds", "iou")
            if key not in data
        ]
        if missing:
            raise ValueError(f"channel-names table lacks {', '.join(missing)}")
        concepts = list(data["concepts"])
        thresholds = np.asarray(data["thresholds"], dtype=np.float64)
        iou = np.asarray(data["iou"], dtype=np.float64).reshape(len(thresholds), len(concepts))
        return cls(
            layer=data["layer"],
            concepts=concepts,
            iou=iou,
            thresholds=thresholds,
            quantile=float(data["quantile"]),
            iou_threshold=float(data["iou_threshold"]),
            categories=data.get("categories") or {},
            images=int(data.get("images", 0)),
            concept_pixels=_optional(data.get("concept_pixels")),
            fired_pixels=_optional(data.get("fired_pixels")),
        )

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (see the module docstring); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ChannelNames:
        """Read a table written by :meth:`save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not a channel-names JSON file: {error}") from None
        return cls.from_dict(data)

    # -- internals -------------------------------------------------------------------------

    def _channel(self, channel: int) -> int:
        """Validate a channel index."""
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)):
            raise TypeError(f"channel must be an int, got {type(channel).__name__}")
        if not 0 <= channel < len(self):
            raise IndexError(f"channel {channel} out of range: the layer has {len(self)}")
        return int(channel)

    def _concept(self, concept: str) -> int:
        """Column of a concept name."""
        try:
            return self.concepts.index(concept)
        except ValueError:
            raise ValueError(
                f"unknown concept {concept!r}; the table has {', '.join(self.concepts)}"
            ) from None


def _check_fraction(name: str, value: float, *, open_low: bool) -> None:
    """Raise unless ``value`` is a real number in (0, 1) (or [0, 1] when not ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    inside = 0 < value < 1 if open_low else 0 <= value <= 1
    if not (math.isfinite(value) and inside):
        interval = "(0, 1)" if open_low else "[0, 1]"
        raise ValueError(f"{name} must be in {interval}, got {value}")


def _counts(values: np.ndarray | None, size: int, name: str) -> np.ndarray:
    """Integer counts of the given length (zeros when absent)."""
    if values is None:
        return np.zeros(size, dtype=np.int64)
    array = np.asarray(values, dtype=np.int64)
    if array.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},), got {array.shape}")
    return array


def _optional(values: Any) -> np.ndarray | None:
    """An array from a JSON list, or None."""
    return None if values is None else np.asarray(values, dtype=np.int64)
