"""Where audited images come from: folders, path lists, torch datasets and loaders, zoo scenes.

Every source yields :class:`Item` s with a stable id (the path, or the index in the dataset) so a
run can be resumed by skipping ids already written. Indexable sources (everything but a
``DataLoader``) can also be opened again by id, which the report and the gallery use to show
the pictures; they are small picklable objects, so a Ray worker can load items itself.

A dataset element may be an image, ``(image, label)``, ``(image, label, extra)`` where ``extra``
is a boolean mask ``(H, W)`` or a dict with ``"mask"``/``"masks"`` and ``"boxes"``, or a dict
with the keys ``image``, ``label``, ``mask``, ``boxes`` and ``id``. Masks and boxes are in the
image's own pixels; boxes are ``(top, left, bottom, right)``, end-exclusive.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

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

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")

ACCEPTED = (
    "a folder of images (class sub-folders give labels), an image file, a .txt file listing "
    "image paths, 'zoo:scenes[:N][:seed=S][:mark=none|correct|swapped][:objects=1|2]"
    "[:label=none|largest|first]', a list of paths, a torch Dataset or DataLoader, or a Ray Dataset"
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
        places: named boolean (H, W) masks of what the picture holds, in its pixels, when known:
            objects named by their class name, a mark as ``"mark:<class name>"``; the audit
            says on which of them the maps of a mistake lie (see ``camwidgets.audit.mistakes``).
    """

    id: str
    image: Any
    index: int | None = None
    label: int | str | None = None
    mask: np.ndarray | None = None
    boxes: np.ndarray | None = None
    places: dict[str, np.ndarray] | None = None


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


class ScenesSource(IndexedSource):
    """The zoo's synthetic scenes, with object masks and boxes (see ``camwidgets.zoo.scenes``).

    Args:
        n: number of scenes.
        seed: collection seed (the shipped models were trained on collection 0).
        mark: corner mark: "none", "correct" (the class's own, as the shortcut model was
            trained) or "swapped".
        objects: 1 or 2 shapes per scene.
        size: side of the scenes in pixels.
        label: which class a two-object scene is labelled with: "none" (no label), "largest"
            (the shape with more pixels, as a photo is labelled with its main object) or
            "first". Single-object scenes are labelled with their shape.

    Example:
        >>> from camwidgets.audit import ScenesSource
        >>> scenes = ScenesSource(4, seed=1, mark="correct")
        >>> item = scenes.load(2)
        >>> item.id, item.image.shape, item.mask.shape, item.boxes.shape
        ('2', (96, 96, 3), (96, 96), (1, 4))
    """

    def __init__(
        self,
        n: int,
        seed: int = 1,
        mark: str = "none",
        objects: int = 1,
        size: int = 96,
        label: str = "none",
    ) -> None:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"the number of scenes must be a positive int, got {n!r}")
        if mark not in ("none", "correct", "swapped"):
            raise ValueError(f"mark must be 'none', 'correct' or 'swapped', got {mark!r}")
        if objects not in (1, 2):
            raise ValueError(f"objects must be 1 or 2, got {objects!r}")
        if mark != "none" and objects != 1:
            raise ValueError("corner marks exist only on single-object scenes (objects=1)")
        if label not in ("none", "largest", "first"):
            raise ValueError(f"label must be 'none', 'largest' or 'first', got {label!r}")
        self.n, self.seed, self.mark, self.objects, self.size = n, seed, mark, objects, size
        self.label = label

    def __len__(self) -> int:
        return self.n

    def load(self, index: int) -> Item:
        from camwidgets.zoo.scenes import make_scene

        scene = make_scene(
            self.seed,
            index,
            n_objects=self.objects,
            size=self.size,
            mark=self.mark,  # type: ignore[arg-type]
        )
        from camwidgets.zoo.scenes import SHAPE_CLASSES, mark_box

        mask = np.logical_or.reduce(scene.masks)
        boxes = np.array([_mask_box(m) for m in scene.masks], dtype=np.float64)
        label: int | None = scene.labels[0]
        if self.objects == 2:
            sizes = [int(m.sum()) for m in scene.masks]
            chosen = {"largest": int(np.argmax(sizes)), "first": 0}.get(self.label)
            label = None if chosen is None else scene.labels[chosen]
        places = {name: m for name, m in zip(scene.class_names, scene.masks, strict=True)}
        if scene.mark is not None:
            top, left, bottom, right = mark_box(self.size)
            box = np.zeros((self.size, self.size), dtype=bool)
            box[top:bottom, left:right] = True
            places[f"mark:{SHAPE_CLASSES[scene.mark]}"] = box
        return Item(
            str(index), scene.image, index=index, label=label, mask=mask, boxes=boxes,
            places=places,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "zoo-scenes",
            "n": self.n,
            "seed": self.seed,
            "mark": self.mark,
            "objects": self.objects,
            "size": self.size,
            "label": self.label,
        }

    @classmethod
    def parse(cls, spec: str) -> ScenesSource:
        """``zoo:scenes[:N][:seed=S][:mark=M][:objects=K][:size=P][:label=L]`` -> a source."""
        parts = spec.split(":")
        if len(parts) < 2 or parts[0] != "zoo" or parts[1] != "scenes":
            raise ValueError(f"unknown zoo data {spec!r}; accepted: {ACCEPTED}")
        options: dict[str, Any] = {"n": 1000}
        for part in parts[2:]:
            key, sep, value = part.partition("=")
            if not sep:
                key, value = "n", part
            if key not in ("n", "seed", "mark", "objects", "size", "label"):
                raise ValueError(
                    f"unknown option {key!r} in {spec!r}; use n, seed, mark, objects, size, label"
                )
            if key in ("mark", "label"):
                options[key] = value
            else:
                try:
                    options[key] = int(value)
                except ValueError:
                    raise ValueError(
                        f"option {key!r} in {spec!r} must be an int, got {value!r}"
                    ) from None
        return cls(**options)


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
            for element in _uncollate(batch) if batched else [batch]:
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


def items_from_columns(batch: Mapping[str, Any]) -> list[Item]:
    """Items from a columnar batch (Ray's numpy batch format)."""
    key = "image" if "image" in batch else "path"
    count = len(batch[key])
    items = []
    for i in range(count):
        image = batch[key][i]
        if (
            isinstance(image, np.ndarray)
            and image.dtype.kind == "f"
            and image.ndim == 3
            and image.shape[0] in (1, 3, 4)
            and image.shape[-1] not in (1, 3, 4)
        ):
            # Ray hands tensors over as numpy: a float (C, H, W) array is a preprocessed tensor.
            image = torch.from_numpy(np.ascontiguousarray(image))
        element: dict[str, Any] = {"image": str(image) if key == "path" else image}
        for name in ("label", "mask", "boxes"):
            if name in batch:
                element[name] = batch[name][i]
        identifier = batch["id"][i] if "id" in batch else batch["path"][i]
        element["id"] = identifier
        label = element.get("label")
        if isinstance(label, np.ndarray) and label.dtype.kind in "US":
            element["label"] = str(label)
        if isinstance(label, np.str_):
            element["label"] = str(label)
        items.append(item_from(element, -1))
    return [Item(it.id, it.image, None, it.label, it.mask, it.boxes) for it in items]


def as_source(data: Any) -> Source:
    """Turn what the user passed as data into a source.

    Raises:
        ValueError: a path that does not exist or holds no images, an empty list, a bad spec.
        TypeError: something that is not a kind of data the audit reads.
    """
    if isinstance(data, (IndexedSource, LoaderSource, RayDatasetSource)):
        return data
    kind = type(data)
    if kind.__module__.startswith("ray.data") and hasattr(data, "map_batches"):
        return RayDatasetSource(data)
    if isinstance(data, (str, Path)):
        text = str(data)
        if text.startswith("zoo:"):
            return ScenesSource.parse(text)
        path = Path(text)
        if path.is_dir():
            return FolderSource(path)
        if path.is_file() and path.suffix.lower() == ".txt":
            lines = [ln.strip() for ln in path.read_text().splitlines()]
            base = path.parent
            listed = [ln for ln in lines if ln and not ln.startswith("#")]
            return PathsSource([p if Path(p).is_absolute() else str(base / p) for p in listed])
        if path.is_file():
            return PathsSource([path])
        raise ValueError(f"data {text!r} does not exist; accepted: {ACCEPTED}")
    if isinstance(data, Sequence) and data and all(isinstance(p, (str, Path)) for p in data):
        return PathsSource(list(data))
    if isinstance(data, Sequence) and not data:
        raise ValueError(f"got no data to audit (an empty list); accepted: {ACCEPTED}")
    if isinstance(data, torch.utils.data.DataLoader):
        return LoaderSource(data)
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, Mapping):
        return DatasetSource(data)
    raise TypeError(f"cannot audit a {type(data).__name__}; accepted: {ACCEPTED}")


def item_from(element: Any, index: int) -> Item:
    """An ``Item`` from one dataset element (see the module docstring for the accepted forms)."""
    mask: Any = None
    boxes: Any = None
    label: Any = None
    item_id = str(index)
    if isinstance(element, Mapping):
        if "image" not in element:
            raise ValueError(f"dataset element {index} is a dict without an 'image' key")
        image = element["image"]
        label = element.get("label")
        mask = element.get("mask", element.get("masks"))
        boxes = element.get("boxes")
        if element.get("id") is not None:
            item_id = str(element["id"])
    elif isinstance(element, (tuple, list)):
        if not 1 <= len(element) <= 3:
            raise ValueError(
                f"dataset element {index} has {len(element)} parts; expected (image,), "
                "(image, label) or (image, label, mask-or-dict)"
            )
        image = element[0]
        label = element[1] if len(element) > 1 else None
        extra = element[2] if len(element) > 2 else None
        if isinstance(extra, Mapping):
            mask = extra.get("mask", extra.get("masks"))
            boxes = extra.get("boxes")
        else:
            mask = extra
    else:
        image = element
    return Item(
        id=item_id,
        image=image,
        index=index,
        label=_label(label, index),
        mask=_mask(mask, index),
        boxes=_boxes(boxes, index),
    )


def _label(label: Any, index: int) -> int | str | None:
    """A label as an int or a name; None when unknown (None, or a negative 'ignore' index)."""
    if label is None or isinstance(label, str):
        return label
    if isinstance(label, torch.Tensor) and label.numel() == 1:
        label = label.item()
    if isinstance(label, np.ndarray) and label.size == 1:
        label = label.item()
    try:
        value = operator.index(label)
    except TypeError:
        raise TypeError(
            f"label of dataset element {index} must be an int or a class name, "
            f"got {type(label).__name__}"
        ) from None
    return value if value >= 0 else None


def _mask(mask: Any, index: int) -> np.ndarray | None:
    """A boolean (H, W) mask; a stack of masks (M, H, W) is merged into their union."""
    if mask is None:
        return None
    array = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if array.ndim == 3:
        array = np.asarray(array.any(axis=0))
    if array.ndim != 2:
        raise ValueError(f"mask of element {index} must be (H, W) or (M, H, W), got {array.shape}")
    return array.astype(bool)


def _boxes(boxes: Any, index: int) -> np.ndarray | None:
    """Boxes as float (M, 4)."""
    if boxes is None:
        return None
    array = boxes.detach().cpu().numpy() if isinstance(boxes, torch.Tensor) else np.asarray(boxes)
    array = array.astype(np.float64).reshape(-1, array.shape[-1] if array.ndim else 0)
    if array.shape[-1] != 4 or not np.isfinite(array).all():
        raise ValueError(
            f"boxes of element {index} must be (M, 4) (top, left, bottom, right) pixels, "
            f"got shape {np.shape(boxes)}"
        )
    return array


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight end-exclusive box around a mask's pixels."""
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def _uncollate(batch: Any) -> list[Any]:
    """Split a loader batch into elements: collated columns, or a plain list of elements."""
    if isinstance(batch, torch.Tensor):
        return list(batch.unbind(0))
    if isinstance(batch, Mapping):
        keys = list(batch)
        columns = [_column(batch[k]) for k in keys]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]
    if isinstance(batch, (tuple, list)) and batch:
        # default_collate stacks the images into one (N, ...) tensor; a loader whose
        # collate_fn keeps the elements as they are gives a list of elements instead.
        if isinstance(batch[0], torch.Tensor) and batch[0].dim() >= 3:
            columns = [_column(c) for c in batch]
            if len({len(c) for c in columns}) == 1:
                return [tuple(row) for row in zip(*columns, strict=True)]
        return list(batch)
    raise TypeError(f"cannot split a DataLoader batch of type {type(batch).__name__} into images")


def _column(values: Any) -> list[Any]:
    """One collated column as a list of per-element values."""
    if isinstance(values, torch.Tensor):
        return list(values.unbind(0))
    if isinstance(values, Mapping):
        return _uncollate(values)
    return list(values)
