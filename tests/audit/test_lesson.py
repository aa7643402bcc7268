"""The lesson at scale (a reduced run of the issue's check): the audit finds the corner mark.

Without being told about the mark, the shortcut model's class-average maps peak next to it for
every class (within two layer4 cells, 16 px: the model's own maps peak ~11 px from the 6 px
box), while the shapes model's maps put most of their mass on the objects' boxes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from camwidgets.audit import audit
from camwidgets.zoo.scenes import SHAPE_CLASSES, mark_box

pytestmark = pytest.mark.slow

DATA = "zoo:scenes:480:seed=11:mark=correct"
REACH = 16.0  # two layer4 cells of 8 px


def distance_to_box(row: int, col: int, box: tuple[int, int, int, int]) -> float:
    top, left, bottom, right = box  # end-exclusive
    dy = max(top - row, 0, row - (bottom - 1))
    dx = max(left - col, 0, col - (right - 1))
    return float(np.hypot(dy, dx))


def test_shortcut_looks_at_the_mark_and_shapes_at_the_objects(tmp_path: Path) -> None:
    shortcut = audit(DATA, "zoo:shortcut", tmp_path / "s.parquet", progress=False)
    summaries = shortcut.summary()
    assert [s.name for s in summaries] == list(SHAPE_CLASSES)
    box = mark_box(96)
    for s in summaries:
        assert distance_to_box(*s.peak, box) <= REACH, (s.name, s.peak)
        assert s.regions[0] > 0.4  # the top-left cell of the 4x4 grid holds the most mass
        assert s.in_boxes is not None and s.in_boxes < 0.25

    shapes = audit(DATA, "zoo:shapes", tmp_path / "p.parquet", progress=False)
    frame = shapes.frame()
    assert frame["in_boxes"].mean() > 0.5
    for s in shapes.summary():
        assert s.in_boxes is not None and s.in_boxes > 0.5, s.name
        assert s.regions[0] < 0.3
