"""Broden, the concept dataset of Network Dissection, read from its public directory format.

Broden (Bau et al., 2017) merges ADE20K, Pascal-Context, Pascal-Part, OpenSurfaces, DTD and a
colour set into ~63,000 images with per-pixel labels of ~1,200 concepts in six categories:
``color``, ``object``, ``part``, ``material`` (per pixel) and ``scene``, ``texture`` (per image).
It is distributed by the NetDissect project (``broden1_224`` or ``broden1_227``, script
``script/dlbroden.sh`` in github.com/CSAILVision/NetDissect); camwidgets does not download it.

Directory layout, as NetDissect reads it::

    broden1_224/
      index.csv      image,split,ih,iw,sh,sw,color,object,part,material,scene,texture
                     one row per image; each category cell is a ';'-separated list of
                     segmentation PNGs (per-pixel categories) or label numbers (per-image ones)
      label.csv      number,name,category,frequency,coverage,syns
                     category is e.g. "object(1234);part(56)": where the label occurs
      category.csv   name,first,last,count,frequency  (the category names)
      c_<cat>.csv    code,number,name,frequency,coverage  (optional here: not needed to load)
      images/        the pictures and the segmentation PNGs, paths relative to it

A segmentation PNG holds one label number per pixel, encoded as ``R + 256 * G`` (0 = no label),
at the segmentation size ``(sh, sw)`` (half the image size in broden1_224).

Example:
    >>> from torchvision import transforms
    >>> from camwidgets import GradCAM
    >>> from camwidgets.naming import Broden, dissect
    >>> data = Broden("broden1_224", split="val")  # doctest: +SKIP
    >>> # No centre crop: the masks cover the whole picture.
    >>> transform = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
    ...     transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    >>> engine = GradCAM(model, transform=transform)  # doctest: +SKIP
    >>> names = dissect(engine, "layer4", data)  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
from PIL import Image

__all__ = ["BRODEN_CATEGORIES", "Broden", "decode_segmentation"]

BRODEN_CATEGORIES: tuple[str, ...] = ("color", "object", "part", "material", "scene", "texture")

_CATEGORY_COUNT = re.compile(r"^([^(]*)\(([^)]*)\)$")


def decode_segmentation(pixels: np.ndarray) -> np.ndarray:
    """Label numbers of a Broden segmentation image: ``R + 256 * G`` (int32, (H, W)).

    >>> import numpy as np
    >>> rgb = np.zeros((1, 2, 3), np.uint8); rgb[0, 1] = (4, 1, 0)
    >>> decode_segmentation(rgb).tolist()
    [[0, 260]]
    """
    if pixels.ndim != 3 or pixels.shape[2] < 2:
        raise ValueError(f"a Broden segmentation is an RGB image, got shape {pixels.shape}")
    return pixels[..., 0].astype(np.int32) + 256 * pixels[..., 1].astype(np.int32)


@dataclass(frozen=True)
class _Row:
    """One index.csv row: picture path, split, segmentation size, entries per category."""

    image: str
    split: str | None
    size: tuple[int, int]
    entries: dict[str, list[int | str]]


class Broden(Sequence[tuple[Image.Image, dict[str, np.ndarray]]]):
    """A Broden-format directory as concept data for :func:`camwidgets.naming.dissect`.

    Item ``i`` is ``(picture, masks)``: the RGB PIL image and ``{concept name: bool (sh, sw)
    mask}`` for every concept labelled in it, in the chosen categories. Per-image labels (scene,
    texture) become masks of ones. Concept names are ``label.csv``'s names (a name used by two
    label numbers is told apart as ``"name (number)"``); ``categories`` maps each to the
    chosen category it occurs in most (``label.csv``'s counts); labels listed under none of the
    chosen categories are left out.

    Args:
        directory: the dataset root (holds ``index.csv``, ``label.csv`` and ``images/``).
        categories: which categories to read (default all six).
        split: keep only rows of this split (``"train"`` or ``"val"``), or all.
        limit: keep only the first ``limit`` rows (after the split filter).

    Raises:
        FileNotFoundError: the directory or one of its index files is missing.
        ValueError: a malformed index or label file, an unknown category.
    """

    def __init__(
        self,
        directory: str | Path,
        categories: Sequence[str] = BRODEN_CATEGORIES,
        split: str | None = None,
        limit: int | None = None,
    ) -> None:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(
                f"no Broden directory at {root}; get broden1_224 with NetDissect's "
                "script/dlbroden.sh (github.com/CSAILVision/NetDissect) and pass its path"
            )
        for needed in ("index.csv", "label.csv"):
            if not (root / needed).is_file():
                raise FileNotFoundError(f"{root} has no {needed}: not a Broden directory")
        if isinstance(categories, str):
            categories = [categories]
        unknown = [c for c in categories if c not in BRODEN_CATEGORIES]
        if unknown:
            raise ValueError(
                f"unknown Broden categories {unknown}; choose from {', '.join(BRODEN_CATEGORIES)}"
            )
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
        self.root = root
        self.selected: tuple[str, ...] = tuple(categories)
        self.rows = _read_index(root / "index.csv", self.selected, split)
        if limit is not None:
            self.rows = self.rows[:limit]
        self.labels, counts = _read_labels(root / "label.csv")
        # A label belongs to the data when it occurs in a chosen category; its category is
        # the chosen one it occurs in most.
        self.categories: dict[str, str] = {}
        for number, name in sorted(self.labels.items()):
            chosen = {c: n for c, n in counts.get(number, {}).items() if c in self.selected}
            if chosen:
                self.categories[name] = max(chosen, key=lambda c: (chosen[c], c))
        self.concept_names: tuple[str, ...] = tuple(self.categories)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> tuple[Image.Image, dict[str, np.ndarray]]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[Image.Image, dict[str, np.ndarray]]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> (
        tuple[Image.Image, dict[str, np.ndarray]]
        | Sequence[tuple[Image.Image, dict[str, np.ndarray]]]
    ):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        row = self.rows[int(index)]
        with Image.open(self.root / "images" / row.image) as opened:
            picture = opened.convert("RGB")
        return picture, self.masks(int(index))

    def __iter__(self) -> Iterator[tuple[Image.Image, dict[str, np.ndarray]]]:
        return (self[i] for i in range(len(self)))

    def masks(self, index: int) -> dict[str, np.ndarray]:
        """``{concept: bool (sh, sw) mask}`` of image ``index`` (no picture decoded)."""
        row = self.rows[index]
        size = row.size
        found: dict[int, np.ndarray] = {}
        for category in self.selected:
            for entry in row.entries[category]:
                if isinstance(entry, int):
                    # A per-image label (scene, texture): the whole picture.
                    found[entry] = np.ones(size, dtype=bool)
                    continue
                with Image.open(self.root / "images" / entry) as opened:
                    numbers = decode_segmentation(np.asarray(opened.convert("RGB")))
                if numbers.shape != size:
                    raise ValueError(
                        f"{entry} is {numbers.shape[1]}x{numbers.shape[0]} but index.csv says "
                        f"the segmentation is {size[1]}x{size[0]}"
                    )
                for number in np.unique(numbers):
                    if number == 0:
                        continue
                    mask = numbers == number
                    previous = found.get(int(number))
                    found[int(number)] = mask if previous is None else previous | mask
        masks: dict[str, np.ndarray] = {}
        for number, mask in sorted(found.items()):
            name = self.labels.get(number)
            if name is None:
                raise ValueError(f"label number {number} (image {row.image}) not in label.csv")
            if name in self.categories:
                masks[name] = mask
        return masks

    def __repr__(self) -> str:
        return (
            f"Broden({str(self.root)!r}, images={len(self)}, concepts={len(self.concept_names)}, "
            f"categories={list(self.selected)})"
        )


def _read_index(path: Path, categories: Sequence[str], split: str | None) -> list[_Row]:
    """index.csv rows: sizes as ints, category cells as lists of PNG paths or label numbers."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in ("image", "sh", "sw", *categories) if c not in header]
        if missing:
            raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}")
        rows: list[_Row] = []
        for line, raw in enumerate(reader, start=2):
            if split is not None and raw.get("split") != split:
                continue
            try:
                size = (int(raw["sh"]), int(raw["sw"]))
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: sh and sw must be integers") from None
            entries: dict[str, list[int | str]] = {}
            for category in categories:
                cell = raw.get(category) or ""
                entries[category] = [int(v) if v.isdigit() else v for v in cell.split(";") if v]
            rows.append(_Row(raw["image"], raw.get("split"), size, entries))
    return rows


def _read_labels(path: Path) -> tuple[dict[int, str], dict[int, dict[str, int]]]:
    """label.csv: number -> unique concept name, and number -> {category: count}."""
    numbers: dict[int, str] = {}
    where: dict[int, dict[str, int]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for line, raw in enumerate(reader, start=2):
            try:
                number = int(raw["number"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}:{line}: 'number' must be an integer") from None
            if number == 0:
                continue  # the "unlabelled" entry
            counts: dict[str, int] = {}
            for part in (raw.get("category") or "").split(";"):
                match = _CATEGORY_COUNT.match(part.strip())
                if match:
                    counts[match.group(1)] = int(match.group(2) or 0)
            numbers[number] = raw.get("name") or str(number)
            where[number] = counts
    seen: dict[str, int] = {}
    for name in numbers.values():
        seen[name] = seen.get(name, 0) + 1
    names = {n: (name if seen[name] == 1 else f"{name} ({n})") for n, name in numbers.items()}
    return names, where
