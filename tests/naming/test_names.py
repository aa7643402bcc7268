"""ChannelNames: lookups read from the IoU matrix, the JSON file format, bad tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from camwidgets.naming import ChannelNames
from camwidgets.naming.names import FORMAT, VERSION

IOU = np.array(
    [
        [0.20, 0.05, 0.01],  # named circle, runner-up red
        [0.01, 0.03, 0.02],  # best red but below 0.04: unnamed
        [0.04, 0.04, 0.00],  # a tie exactly at the threshold: the earlier concept, named
        [0.00, 0.10, 0.12],  # named lines, runner-up red
    ]
)


def table(threshold: float = 0.04) -> ChannelNames:
    return ChannelNames(
        layer="layer4",
        concepts=["circle", "red", "lines"],
        iou=IOU,
        thresholds=np.array([1.5, 0.25, 3.0, 0.0]),
        quantile=0.005,
        iou_threshold=threshold,
        categories={"circle": "shape", "red": "colour"},
        images=12,
        concept_pixels=np.array([100, 200, 300]),
        fired_pixels=np.array([10, 20, 30, 40]),
    )


def test_lookups() -> None:
    names = table()
    assert [names.name(k) for k in range(4)] == ["circle", None, "circle", "lines"]
    assert names.iou(0) == 0.20 and names.iou(1) == 0.03 and names.iou(3, "red") == 0.10
    assert names.channels("circle") == [0, 2] and names.channels("red") == []
    assert names.named() == [0, 2, 3]
    assert names.summary() == {"circle": 2, "lines": 1}
    assert names.category("circle") == "shape" and names.category("lines") is None
    assert names.category(None) is None
    row = names[3]
    assert (row.concept, row.best, row.runner_up, row.runner_up_iou) == (
        "lines",
        "lines",
        "red",
        0.10,
    )
    assert row.threshold == 0.0 and row.iou == 0.12
    unnamed = names[1]
    assert unnamed.concept is None and unnamed.best == "red" and unnamed.iou == 0.03
    assert len(names) == 4 and [r.channel for r in names] == [0, 1, 2, 3]
    assert "named=3" in repr(names)


def test_threshold_can_change_without_dissecting_again() -> None:
    stricter = table().with_threshold(0.1)
    assert [stricter.name(k) for k in range(4)] == ["circle", None, None, "lines"]
    assert table().with_threshold(0.0).name(1) == "red"


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    names = table()
    path = names.save(tmp_path / "sub" / "names.json")
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT and data["version"] == VERSION == 1
    assert data["concepts"] == ["circle", "red", "lines"] and data["iou"][3] == [0.0, 0.1, 0.12]
    back = ChannelNames.load(path)
    assert back.layer == "layer4" and back.concepts == names.concepts
    np.testing.assert_array_equal(back.matrix, names.matrix)
    np.testing.assert_array_equal(back.thresholds, names.thresholds)
    np.testing.assert_array_equal(back.concept_pixels, [100, 200, 300])
    np.testing.assert_array_equal(back.fired_pixels, [10, 20, 30, 40])
    assert back.categories == names.categories and back.images == 12
    assert [back.name(k) for k in range(4)] == [names.name(k) for k in range(4)]


def test_float32_values_survive_json(tmp_path: Path) -> None:
    iou = np.float32([[0.1234567, 0.7654321]]).astype(np.float64)
    names = ChannelNames("l", ["a", "b"], iou, np.array([np.float32(0.3)]), 0.005, 0.04)
    back = ChannelNames.load(names.save(tmp_path / "n.json"))
    np.testing.assert_array_equal(back.matrix, iou)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ({"format": "something else", "version": 1}, "not a channel-names table"),
        ({"format": FORMAT, "version": 99}, "version 99 is not supported"),
        ({"format": FORMAT, "version": "1"}, "not supported"),
        ({"format": FORMAT, "version": 1, "layer": "x"}, "lacks quantile"),
    ],
)
def test_bad_files(tmp_path: Path, content: dict[str, object], match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        ChannelNames.load(path)


def test_not_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{nope")
    with pytest.raises(ValueError, match="not a channel-names JSON file"):
        ChannelNames.load(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iou": np.zeros((2, 2))}, ValueError, r"iou must be \(channels, 3 concepts\)"),
        ({"iou": np.full((4, 3), 1.5)}, ValueError, r"in \[0, 1\]"),
        ({"iou": np.full((4, 3), np.nan)}, ValueError, "finite"),
        ({"thresholds": np.zeros(3)}, ValueError, r"thresholds must have shape \(4,\)"),
        ({"concepts": ["a", "a", "b"]}, ValueError, "unique"),
        ({"concepts": ["a", "", "b"]}, TypeError, "non-empty"),
        ({"quantile": 0}, ValueError, "quantile"),
        ({"iou_threshold": 2}, ValueError, "iou_threshold"),
        ({"layer": ""}, TypeError, "layer"),
    ],
)
def test_bad_tables(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {
        "layer": "l",
        "concepts": ["circle", "red", "lines"],
        "iou": IOU,
        "thresholds": np.zeros(4),
        "quantile": 0.005,
        "iou_threshold": 0.04,
    }
    args.update(kwargs)
    with pytest.raises(error, match=match):
        ChannelNames(**args)  # type: ignore[arg-type]


def test_bad_lookups() -> None:
    names = table()
    with pytest.raises(IndexError, match="channel 4 out of range"):
        names.name(4)
    with pytest.raises(TypeError, match="channel must be an int"):
        names.iou(True)
    with pytest.raises(ValueError, match="unknown concept 'square'"):
        names.channels("square")
    assert not names.matrix.flags.writeable
