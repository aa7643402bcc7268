"""Image files: a list of paths, or every image under a folder (class sub-folders as labels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import IMAGE_SUFFIXES, IndexedSource, Item


class PathsSource(IndexedSource):
    """Image files; the id is the path as given.

    Args:
        paths: image files.
        labels: optional label per path (class index or name).
    """

    def __init__(
        self, paths: Sequence[str | Path], labels: Sequence[int | str] | None = None
    ) -> None:
        self.paths = [str(p) for p in paths]
        if not self.paths:
            raise ValueError("got no image paths to audit")
        if labels is not None and len(labels) != len(self.paths):
            raise ValueError(f"got {len(labels)} labels for {len(self.paths)} paths")
        missing = [p for p in self.paths if not Path(p).is_file()]
        if missing:
            raise ValueError(f"{len(missing)} image path(s) do not exist, e.g. {missing[0]!r}")
        self.labels = list(labels) if labels is not None else None
        self._index = {p: i for i, p in enumerate(self.paths)}
        if len(self._index) != len(self.paths):
            raise ValueError("image paths must be distinct: they are the audit's ids")

    def __len__(self) -> int:
        return len(self.paths)

    def id_of(self, index: int) -> str:
        return self.paths[index]

    def index_of(self, item_id: str) -> int:
        return self._index[item_id]

    def load(self, index: int) -> Item:
        label = self.labels[index] if self.labels is not None else None
        return Item(id=self.paths[index], image=self.paths[index], index=index, label=label)

    def describe(self) -> dict[str, Any]:
        return {"kind": "paths", "count": len(self)}


class FolderSource(PathsSource):
    """Every image under ``root`` (sorted); ``root/CLASS/x.png`` gets the label ``CLASS``.

    Labels are taken from the first level of sub-folders when every image sits in one
    (the torchvision ``ImageFolder`` layout); images directly in ``root`` leave them unknown.

    Example:
        >>> from camwidgets.audit import FolderSource
        >>> source = FolderSource("photos/")            # doctest: +SKIP
        >>> source.load(0).id, source.load(0).label      # doctest: +SKIP
        ('photos/husky/001.jpg', 'husky')
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"{str(root)!r} is not a folder")
        files = sorted(
            p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {str(root)!r}")
        nested = all(len(p.relative_to(self.root).parts) >= 2 for p in files)
        labels = [p.relative_to(self.root).parts[0] for p in files] if nested else None
        super().__init__(files, labels)

    def describe(self) -> dict[str, Any]:
        return {"kind": "folder", "root": str(self.root), "count": len(self)}
