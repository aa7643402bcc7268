"""torch datasets and loaders, and Ray Datasets, as sources."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import IndexedSource, Item
from .elements import item_from, items_from_columns, uncollate


class DatasetSource(IndexedSource):
    """A map-style torch ``Dataset`` (``len`` and ``[i]``); the id is the index."""

    def __init__(self, dataset: Any) -> None:
        if not (hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")):
            raise TypeError(
                f"a dataset needs __len__ and __getitem__; got {type(dataset).__name__}"
            )
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def load(self, index: int) -> Item:
        return item_from(self.dataset[index], index)

    def describe(self) -> dict[str, Any]:
        kind = type(self.dataset)
        return {
            "kind": "dataset",
            "type": f"{kind.__module__}.{kind.__qualname__}",
            "count": len(self),
        }


class LoaderSource:
    """A torch ``DataLoader``: batches are split back into items; the id is the running position.

    A loader cannot skip ahead, so resuming re-reads (but does not re-explain) written items;
    give the loader's dataset instead when it is map-style, to skip them without loading.
    """

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def __len__(self) -> int:
        dataset = getattr(self.loader, "dataset", None)
        if dataset is not None and hasattr(dataset, "__len__"):
            return len(dataset)
        return len(self.loader)

    def items(self, skip: frozenset[str] = frozenset()) -> Iterator[Item]:
        position = 0
        # batch_size=None: the loader yields single elements, not collated batches.
        batched = getattr(self.loader, "batch_sampler", None) is not None
        for batch in self.loader:
            for element in uncollate(batch) if batched else [batch]:
                item = item_from(element, position)
                position += 1
                if item.id not in skip:
                    yield item

    def describe(self) -> dict[str, Any]:
        return {"kind": "loader", "count": len(self)}


class RayDatasetSource:
    """A Ray Dataset with an ``image`` (HWC array or preprocessed CHW) or ``path`` column.

    Optional columns: ``id`` (else the path is the id), ``label``, ``mask``, ``boxes``. On the
    local backend the rows stream to this process; on the Ray backend workers read them.
    """

    def __init__(self, dataset: Any) -> None:
        columns = set(dataset.columns(fetch_if_missing=True) or [])
        if not columns & {"image", "path"}:
            raise ValueError(
                "a Ray Dataset to audit needs an 'image' or a 'path' column; "
                f"it has {sorted(columns)}"
            )
        if not columns & {"id", "path"}:
            raise ValueError(
                "a Ray Dataset to audit needs an 'id' (or 'path') column: rows have no stable "
                f"order, and ids are what a resumed run skips; it has {sorted(columns)}"
            )
        self.dataset = dataset
        self._count: int | None = None

    def __len__(self) -> int:
        if self._count is None:
            self._count = int(self.dataset.count())
        return self._count

    def items(self, skip: frozenset[str] = frozenset()) -> Iterator[Item]:
        for batch in self.dataset.iter_batches(batch_format="numpy", batch_size=256):
            for item in items_from_columns(batch):
                if item.id not in skip:
                    yield item

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray-dataset"}
