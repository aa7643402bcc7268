"""What every source shares: the ``Item`` it yields, the ``Source`` protocol, and
``IndexedSource``, the base of the sources that can load an item by its index."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

ACCEPTED = (
    "a folder of images (class sub-folders give labels), an image file, a .txt file listing "
    "image paths, 'zoo:scenes[:N][:seed=S][:mark=none|correct|swapped][:objects=1|2]', a list "
    "of paths, a torch Dataset or DataLoader, or a Ray Dataset"
)


@dataclass(frozen=True, eq=False)
class Item:
    """One image to audit and what is known about it.

    Attributes:
        id: stable identifier (the path, or the index as text).
        image: anything the engine takes: PIL, numpy HWC, a preprocessed tensor CHW, a path.
        index: position in the source, when it has one.
        label: class index or class name, when known.
        mask: boolean (H, W) object mask in the image's pixels, when known.
        boxes: (M, 4) object boxes (top, left, bottom, right) in the image's pixels, when known.
    """

    id: str
    image: Any
    index: int | None = None
    label: int | str | None = None
    mask: np.ndarray | None = None
    boxes: np.ndarray | None = None


@runtime_checkable
class Source(Protocol):
    """Anything that yields items; ``describe`` says how to find them again."""

    def __len__(self) -> int: ...

    def items(self, skip: frozenset[str] = frozenset()) -> Iterator[Item]: ...

    def describe(self) -> dict[str, Any]: ...


class IndexedSource:
    """A source whose items can be loaded by index: ids are known without loading anything."""

    def __len__(self) -> int:
        raise NotImplementedError

    def id_of(self, index: int) -> str:
        """The id of item ``index`` (its index as text unless the source has better)."""
        return str(index)

    def load(self, index: int) -> Item:
        """Load item ``index``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-able description stored with the audit."""
        raise NotImplementedError

    def items(self, skip: frozenset[str] = frozenset()) -> Iterator[Item]:
        """Every item whose id is not in ``skip``, in order; skipped ones are never loaded."""
        for index in range(len(self)):
            if self.id_of(index) not in skip:
                yield self.load(index)

    def index_of(self, item_id: str) -> int:
        """The index of the item with this id."""
        try:
            index = int(item_id)
        except ValueError:
            raise KeyError(item_id) from None
        if not 0 <= index < len(self) or self.id_of(index) != item_id:
            raise KeyError(item_id)
        return index
