"""Broden loader: a tiny Broden-format folder written here, read back exactly, dissected."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from camwidgets.naming import Broden, dissect
from camwidgets.naming.broden import decode_segmentation
from tests.naming.helpers import detector_engine

LABELS = [  # number, name, category field as in Broden's label.csv
    (0, "-", ""),
    (1, "red-c", "color(6)"),
    (2, "blue-c", "color(6)"),
    (300, "car", "object(5);part(1)"),  # above 255: needs the G byte
    (301, "wheel", "part(4)"),
    (400, "kitchen-s", "scene(3)"),
    (401, "striped-t", "texture(2)"),
    (402, "car", "material(1)"),  # a second label called "car"
]


def encode(numbers: np.ndarray) -> Image.Image:
    """Label numbers -> RGB PNG with R = n % 256, G = n // 256, as Broden stores them."""
    rgb = np.zeros((*numbers.shape, 3), dtype=np.uint8)
    rgb[..., 0] = numbers % 256
    rgb[..., 1] = numbers // 256
    return Image.fromarray(rgb)


def write_broden(root: Path, n: int = 6, side: int = 32) -> list[dict[str, np.ndarray]]:
    """Write n pictures (red and blue squares) with color, object, part, scene, texture labels.

    Returns, per image, the masks the loader must give (at the half-size segmentation).
    """
    rng = np.random.default_rng(0)
    (root / "images" / "set").mkdir(parents=True)
    half = side // 2
    expected: list[dict[str, np.ndarray]] = []
    rows = []
    for i in range(n):
        picture = rng.normal(128, 10, size=(side, side, 3))
        colour = np.zeros((half, half), dtype=np.int64)
        red_top, blue_top = rng.integers(0, half - 5, size=2)
        colour[red_top : red_top + 5, 1:6] = 1
        colour[blue_top : blue_top + 5, 9:14] = 2
        big = np.kron(colour, np.ones((2, 2), dtype=np.int64))
        picture[big == 1] = np.array((230, 20, 20)) + rng.normal(
            0, 8, size=(int((big == 1).sum()), 3)
        )
        picture[big == 2] = np.array((20, 20, 230)) + rng.normal(
            0, 8, size=(int((big == 2).sum()), 3)
        )
        name = f"set/img{i}.png"
        Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(root / "images" / name)
        encode(colour).save(root / "images" / f"set/img{i}_color.png")
        obj = np.zeros((half, half), dtype=np.int64)
        obj[:4, :] = 300
        encode(obj).save(root / "images" / f"set/img{i}_object.png")
        part = np.zeros((half, half), dtype=np.int64)
        part[2:4, 2:4] = 301
        part[0, 0] = 300
        encode(part).save(root / "images" / f"set/img{i}_part.png")
        masks = {"red-c": colour == 1, "blue-c": colour == 2, "car (300)": obj == 300}
        masks["car (300)"] = masks["car (300)"] | (part == 300)
        masks["wheel"] = part == 301
        scene = "400" if i % 2 == 0 else ""
        if scene:
            masks["kitchen-s"] = np.ones((half, half), dtype=bool)
        texture = "401" if i == 1 else ""
        if texture:
            masks["striped-t"] = np.ones((half, half), dtype=bool)
        expected.append(masks)
        rows.append(
            {
                "image": name,
                "split": "train" if i < n - 2 else "val",
                "ih": side,
                "iw": side,
                "sh": half,
                "sw": half,
                "color": f"set/img{i}_color.png",
                "object": f"set/img{i}_object.png",
                "part": f"set/img{i}_part.png",
                "material": "",
                "scene": scene,
                "texture": texture,
            }
        )
    with (root / "index.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with (root / "label.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "name", "category", "frequency", "coverage", "syns"])
        for number, label, category in LABELS:
            writer.writerow([number, label, category, 1, 0.1, label])
    with (root / "category.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "first", "last", "count", "frequency"])
        for cat in ("color", "object", "part", "material", "scene", "texture"):
            writer.writerow([cat, 1, 402, 1, 1])
    return expected


@pytest.fixture
def broden(tmp_path: Path) -> tuple[Path, list[dict[str, np.ndarray]]]:
    return tmp_path, write_broden(tmp_path)


def test_reads_every_mask_exactly(broden: tuple[Path, list[dict[str, np.ndarray]]]) -> None:
    root, expected = broden
    data = Broden(root)
    assert len(data) == 6
    assert data.concept_names == (
        "red-c", "blue-c", "car (300)", "wheel", "kitchen-s", "striped-t", "car (402)"
    )  # fmt: skip
    assert data.categories["car (300)"] == "object" and data.categories["wheel"] == "part"
    assert data.categories["kitchen-s"] == "scene" and data.categories["red-c"] == "color"
    for i, masks in enumerate(expected):
        picture, found = data[i]
        assert picture.mode == "RGB" and picture.size == (32, 32)
        assert found.keys() == masks.keys()
        for name, mask in masks.items():
            assert found[name].dtype == bool
            np.testing.assert_array_equal(found[name], mask, err_msg=f"image {i}, {name}")


def test_categories_split_and_limit(broden: tuple[Path, list[dict[str, np.ndarray]]]) -> None:
    root, expected = broden
    colours = Broden(root, categories=["color"], split="val")
    assert len(colours) == 2 and colours.concept_names == ("red-c", "blue-c")
    _, masks = colours[0]
    assert masks.keys() == {"red-c", "blue-c"}
    np.testing.assert_array_equal(masks["red-c"], expected[4]["red-c"])
    assert len(Broden(root, split="train", limit=3)) == 3
    assert len(Broden(root)[1:3]) == 2
    assert "images=6" in repr(Broden(root))


def test_decode_segmentation() -> None:
    numbers = np.array([[0, 1, 255], [256, 300, 65535]])
    rgb = np.asarray(encode(numbers))
    np.testing.assert_array_equal(decode_segmentation(rgb), numbers)
    with pytest.raises(ValueError, match="RGB image"):
        decode_segmentation(np.zeros((4, 4)))


def test_dissect_on_broden_names_the_colour_detectors(
    broden: tuple[Path, list[dict[str, np.ndarray]]],
) -> None:
    root, _ = broden
    data = Broden(root, categories=["color", "object", "part", "scene"])
    names = dissect(detector_engine(), "features.2", data, quantile=0.05, progress=False)
    assert names.name(0) == "red-c" and names.name(1) == "blue-c"
    assert names.category("red-c") == "color" and names.images == 6


def test_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dlbroden\.sh"):
        Broden(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"no index\.csv"):
        Broden(tmp_path)
    write_broden(tmp_path / "b")
    with pytest.raises(ValueError, match="unknown Broden categories"):
        Broden(tmp_path / "b", categories=["colour"])
    bad = tmp_path / "b" / "index.csv"
    bad.write_text(bad.read_text().replace(",16,16,", ",16,x,", 1))
    with pytest.raises(ValueError, match="sh and sw must be integers"):
        Broden(tmp_path / "b")


def test_segmentation_size_must_match_the_index(tmp_path: Path) -> None:
    write_broden(tmp_path)
    encode(np.zeros((8, 8), dtype=np.int64)).save(tmp_path / "images" / "set/img0_color.png")
    with pytest.raises(ValueError, match=r"index\.csv says the segmentation is 16x16"):
        Broden(tmp_path)[0]


def test_a_label_counts_in_every_category_it_occurs_in(
    broden: tuple[Path, list[dict[str, np.ndarray]]],
) -> None:
    root, expected = broden
    parts = Broden(root, categories=["part"])
    # "car (300)" is mostly an object, but also a part: with parts only it comes from part PNGs.
    assert parts.concept_names == ("car (300)", "wheel")
    assert parts.categories == {"car (300)": "part", "wheel": "part"}
    _, masks = parts[0]
    np.testing.assert_array_equal(masks["wheel"], expected[0]["wheel"])
    only_corner = np.zeros((16, 16), dtype=bool)
    only_corner[0, 0] = True
    np.testing.assert_array_equal(masks["car (300)"], only_corner)
