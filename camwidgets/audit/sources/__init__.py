"""Where audited images come from: folders, path lists, torch datasets and loaders, zoo scenes.

Every source yields :class:`Item` s with a stable id (the path, or the index in the dataset) so a
run can be resumed by skipping ids already written. Indexable sources (everything but a
``DataLoader``) can also be opened again by id, which the report and the gallery use to show
the pictures; they are small picklable objects, so a Ray worker can load items itself.

A dataset element may be an image, ``(image, label)``, ``(image, label, extra)`` where ``extra``
is a boolean mask ``(H, W)`` or a dict with ``"mask"``/``"masks"`` and ``"boxes"``, or a dict
with the keys ``image``, ``label``, ``mask``, ``boxes`` and ``id``. Masks and boxes are in the
image's own pixels; boxes are ``(top, left, bottom, right)``, end-exclusive.

Where things live: ``base`` (``Item``, ``Source``, ``IndexedSource``), ``elements`` (dataset
elements and batches -> items), ``files`` (paths, folders), ``datasets`` (torch datasets and
loaders, Ray Datasets), ``scenes`` (the zoo's scenes), ``resolve`` (``as_source``).
"""

from __future__ import annotations

from .base import ACCEPTED as ACCEPTED
from .base import IMAGE_SUFFIXES, IndexedSource, Item, Source
from .datasets import DatasetSource, LoaderSource, RayDatasetSource
from .elements import item_from
from .elements import items_from_columns as items_from_columns
from .files import FolderSource, PathsSource
from .resolve import as_source
from .scenes import ScenesSource

__all__ = [
    "IMAGE_SUFFIXES",
    "DatasetSource",
    "FolderSource",
    "IndexedSource",
    "Item",
    "LoaderSource",
    "PathsSource",
    "RayDatasetSource",
    "ScenesSource",
    "Source",
    "as_source",
    "item_from",
]
