"""Sources: what the audit accepts as data, split into items with stable ids; what it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from camwidgets.audit.sources import ScenesSource, as_source, item_from


def test_loader_forms_all_give_the_same_items() -> None:
    items = [(torch.full((3, 4, 4), float(i)), i % 3, np.eye(4, dtype=bool)) for i in range(5)]
    for loader in (
        DataLoader(items, batch_size=None),  # type: ignore[arg-type,var-annotated]
        DataLoader(items, batch_size=2),  # type: ignore[arg-type]
        DataLoader(items, batch_size=2, collate_fn=lambda x: x),  # type: ignore[arg-type]
    ):
        got = list(as_source(loader).items())
        assert [it.id for it in got] == ["0", "1", "2", "3", "4"]
        assert [it.label for it in got] == [0, 1, 2, 0, 1]
        assert all(float(it.image[0, 0, 0]) == i for i, it in enumerate(got))
        assert all(it.mask is not None and (it.mask == np.eye(4)).all() for it in got)
    skipped = list(as_source(DataLoader(items, batch_size=2)).items(skip=frozenset({"1", "3"})))  # type: ignore[arg-type]
    assert [it.id for it in skipped] == ["0", "2", "4"]


def test_element_forms() -> None:
    image = np.zeros((6, 6, 3), np.uint8)
    boxes = [[1, 1, 3, 4], [0, 0, 2, 2]]
    item = item_from({"image": image, "label": "cat", "boxes": boxes, "id": "a/b.png"}, 3)
    assert (item.id, item.index, item.label) == ("a/b.png", 3, "cat")
    assert item.boxes is not None and item.boxes.shape == (2, 4)
    stacked = item_from((image, torch.tensor(2), {"masks": np.ones((2, 6, 6), bool)}), 0)
    assert stacked.label == 2 and stacked.mask is not None and stacked.mask.shape == (6, 6)
    assert item_from((image, -1), 0).label is None  # a negative label means "unknown"
    assert item_from(image, 5).id == "5"


@pytest.mark.parametrize(
    ("element", "error", "match"),
    [
        ({"label": 1}, ValueError, "'image'"),
        ((1, 2, 3, 4), ValueError, "4 parts"),
        ((np.zeros((2, 2, 3)), 1.5), TypeError, "label"),
        ((np.zeros((2, 2, 3)), 1, {"boxes": [[1, 2, 3]]}), ValueError, "boxes"),
        ((np.zeros((2, 2, 3)), 1, np.zeros((2, 2, 2, 2))), ValueError, "mask"),
    ],
)
def test_bad_elements(element: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        item_from(element, 0)


def test_bad_data(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no images"):
        as_source(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        as_source(tmp_path / "missing")
    with pytest.raises(ValueError, match="empty list"):
        as_source([])
    with pytest.raises(ValueError, match="do not exist"):
        as_source([str(tmp_path / "nope.png")])
    with pytest.raises(TypeError, match="accepted"):
        as_source(42)
    with pytest.raises(ValueError, match="unknown option"):
        as_source("zoo:scenes:10:colour=red")
    with pytest.raises(ValueError, match="only on single-object"):
        as_source("zoo:scenes:10:objects=2:mark=correct")
    spec = as_source("zoo:scenes:7:seed=2:objects=2")
    assert isinstance(spec, ScenesSource) and (spec.n, spec.seed, spec.objects) == (7, 2, 2)
    two = spec.load(0)
    assert two.label is None and two.boxes is not None and len(two.boxes) == 2
