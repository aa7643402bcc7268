"""The gallery widget: outliers first, and "open" shows that very image in the Explorer."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest

from camwidgets.audit import audit
from camwidgets.widgets.gallery import Gallery, thumbnail


def test_open_shows_the_chosen_image_in_the_explorer(tmp_path: Path) -> None:
    result = audit("zoo:scenes:10:seed=2:mark=correct", "zoo:shortcut", tmp_path / "a.parquet",
                   progress=False)  # fmt: skip
    gallery = Gallery(result, count=4)
    distances = result.distances()
    order = np.argsort(-np.nan_to_num(distances, nan=-1))[:4]
    assert list(gallery.buttons) == [str(result.frame()["id"][i]) for i in order]

    chosen = list(gallery.buttons)[2]
    gallery.buttons[chosen].click()
    assert gallery.opened == chosen
    shown = gallery.explorer.result
    assert shown is not None
    row = result.frame().set_index("id").loc[chosen]
    assert shown.target == row["target"]  # the panel explains the same top-1
    assert shown.score == pytest.approx(row["score"], abs=1e-4)
    coarse = np.asarray(result.frame(maps=True).set_index("id").loc[chosen]["coarse"], np.float32)
    np.testing.assert_allclose(shown.coarse.numpy().reshape(-1), coarse, rtol=1e-2, atol=1e-3)
    gallery.explorer.close()


def test_thumbnail_is_a_png_and_needs_a_zoo_model_or_an_explorer(tmp_path: Path) -> None:
    png = thumbnail(np.zeros((20, 30, 3), np.uint8), np.ones((4, 5)), side=60)
    assert png.startswith(b"\x89PNG")
    images = [np.full((32, 32, 3), 90 + i, np.uint8) for i in range(3)]
    from tests.audit.conftest import CLASSES, small_net, transform

    result = audit(images, small_net(), tmp_path / "b.parquet", classes=CLASSES,
                   transform=transform(), progress=False)  # fmt: skip
    gallery = Gallery(result, count=2)
    with pytest.raises(ValueError, match="explorer="):
        gallery.explorer  # noqa: B018


def test_mistakes_gallery_groups_by_pattern_and_opens_in_the_explorer(tmp_path: Path) -> None:
    result = audit("zoo:scenes:12:seed=2:mark=swapped", "zoo:shortcut", tmp_path / "m.parquet",
                   progress=False)  # fmt: skip
    gallery = Gallery(result, count=3, show="mistakes")
    frame = result.frame()
    wrong = frame[frame["correct"] == False]  # noqa: E712 (a pandas mask)
    patterns = result.mistake_patterns()
    assert sum(p.count for p in patterns) == len(wrong) > 0
    assert list(gallery.buttons) == [i for p in patterns for i in p.ids[:3]]
    texts = [c.value for c in gallery.root.children if hasattr(c, "value")]
    assert any(html.escape(patterns[0].pattern) in t for t in texts)
    chosen = next(iter(gallery.buttons))
    gallery.buttons[chosen].click()
    shown = gallery.explorer.result
    assert shown is not None
    row = frame.set_index("id").loc[chosen]
    assert shown.target == row["top_classes"][0] != row["label"]  # the wrong top-1
    gallery.explorer.close()
    with pytest.raises(ValueError, match="show must be"):
        Gallery(result, show="errors")
