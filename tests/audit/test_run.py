"""The local audit: every row against a from-scratch Grad-CAM; resuming; refusals; sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from camwidgets import GradCAM
from camwidgets.audit import Audit, audit
from tests.audit.conftest import (
    CLASSES,
    SIZE,
    SmallNet,
    ToyDataset,
    picture,
    square_mask,
    transform,
)
from tests.conftest import assert_unchanged, snapshot
from tests.engine.reference import reference_gradcam


def _expected(model: SmallNet, image: np.ndarray, target: int | None) -> dict[str, object]:
    """What one row must hold, computed with the reference Grad-CAM and plain numpy."""
    x = transform()(Image.fromarray(image))[None]
    with torch.no_grad():
        logits = model.eval()(x)[0].double()
    cls = int(logits.argmax()) if target is None else target
    heat, coarse, _, _ = reference_gradcam(model, x, "conv2", cls)
    return {
        "target": cls,
        "logits": logits,
        "heat": heat.double().numpy(),
        "coarse": coarse.numpy(),
    }


@pytest.mark.parametrize("target", ["label", "pred", 2])
def test_rows_match_the_reference_gradcam(tmp_path: Path, model: SmallNet, target: object) -> None:
    data = ToyDataset(7, side=48)  # pictures larger than the input: masks must be rescaled
    model.train()  # the audit explains in eval mode and must restore this
    before = snapshot(model)
    result = audit(
        data,
        model,
        tmp_path / "a.parquet",
        classes=CLASSES,
        transform=transform(),
        layer="conv2",
        target=target,  # type: ignore[arg-type]
        regions=2,
        tolerance=0,
        batch_size=3,
        top_k=3,
        progress=False,
    )
    assert_unchanged(model, before)
    model.eval()
    rows = result.frame(maps=True)
    assert list(rows["id"]) == [str(i) for i in range(7)]
    for i, row in rows.iterrows():
        want_target = {"label": i % 4, "pred": None, 2: 2}[target]  # type: ignore[index]
        ref = _expected(model, picture(i, 48), want_target)
        heat = ref["heat"]
        assert isinstance(heat, np.ndarray)
        assert row["target"] == ref["target"] and row["target_name"] == CLASSES[row["target"]]
        assert row["label"] == i % 4 and row["label_name"] == CLASSES[i % 4]
        logits = ref["logits"]
        assert isinstance(logits, torch.Tensor)
        probs = logits.softmax(0)
        assert row["score"] == pytest.approx(float(logits[row["target"]]), abs=1e-4)
        assert row["probability"] == pytest.approx(float(probs[row["target"]]), abs=1e-5)
        assert list(row["top_classes"]) == probs.argsort(descending=True)[:3].tolist()
        assert row["correct"] == (int(probs.argmax()) == i % 4)
        coarse = np.asarray(row["coarse"], dtype=np.float32).reshape(
            row["coarse_h"], row["coarse_w"]
        )
        np.testing.assert_allclose(coarse, ref["coarse"], rtol=2e-3, atol=2e-3 * abs(coarse).max())
        assert (row["input_h"], row["input_w"], row["coarse_h"], row["coarse_w"]) == (
            SIZE,
            SIZE,
            8,
            8,
        )
        total = heat.sum()
        assert row["mass"] == pytest.approx(total / SIZE**2, rel=1e-4)
        if total == 0:
            assert row["peak_row"] is None or np.isnan(row["peak_row"])
            continue
        assert heat[int(row["peak_row"]), int(row["peak_col"])] == pytest.approx(
            heat.max(), rel=1e-5
        )
        quads = [heat[:16, :16], heat[:16, 16:], heat[16:, :16], heat[16:, 16:]]
        np.testing.assert_allclose(row["regions"], [q.sum() / total for q in quads], atol=1e-4)
        # The 48 px mask, scaled to the 32 px input: each input pixel takes the mask value at
        # its centre's position in the original picture.
        big = square_mask(i, 48)
        centres = ((np.arange(SIZE) + 0.5) * 48 / SIZE).astype(int)
        small = big[centres[:, None], centres[None, :]]
        assert row["in_mask"] == pytest.approx((heat * small).sum() / total, abs=1e-4)
        assert row["hit_mask"] == bool(small[int(row["peak_row"]), int(row["peak_col"])])
        assert row["in_boxes"] is None or np.isnan(row["in_boxes"])


def test_resume_explains_only_what_is_missing(tmp_path: Path, model: SmallNet) -> None:
    out = tmp_path / "a.parquet"
    common = {"classes": CLASSES, "transform": transform(), "batch_size": 4, "progress": False}
    crashing = ToyDataset(15, fail_at=9)
    with pytest.raises(RuntimeError, match="simulated crash"):
        audit(crashing, model, out, seconds_per_part=0.0, **common)  # type: ignore[arg-type]
    first = pq.read_table(out).column("id").to_pylist()
    assert sorted(first, key=int) == [str(i) for i in range(8)]  # two whole batches of 4
    with pytest.raises(FileExistsError):
        audit(ToyDataset(15), model, out, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layer"):
        audit(ToyDataset(15), model, out, resume=True, layer="conv1", **common)  # type: ignore[arg-type]
    rest = ToyDataset(15)
    resumed = audit(rest, model, out, resume=True, **common)  # type: ignore[arg-type]
    assert rest.loaded == list(range(8, 15))  # written items are neither loaded nor explained
    fresh = audit(ToyDataset(15), model, tmp_path / "b.parquet", **common)  # type: ignore[arg-type]
    assert resumed.table.equals(fresh.table)
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_overwrite_replaces_an_audit_but_never_a_foreign_folder(
    tmp_path: Path, model: SmallNet
) -> None:
    kwargs = {"classes": CLASSES, "transform": transform(), "progress": False}
    out = tmp_path / "a.parquet"
    audit(ToyDataset(3), model, out, **kwargs)  # type: ignore[arg-type]
    again = audit(ToyDataset(5), model, out, overwrite=True, **kwargs)  # type: ignore[arg-type]
    assert len(again) == 5
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an audit"):
        audit(ToyDataset(3), model, foreign, overwrite=True, **kwargs)  # type: ignore[arg-type]
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer": "fc"}, "layer"),
        ({"method": "nope"}, "method"),
        ({"target": 9}, "out of range"),
        ({"target": "seven"}, "target"),
        ({"regions": (0, 2)}, "positive"),
        ({"batch_size": 0}, "batch_size"),
        ({"backend": "spark"}, "backend"),
        ({"concurrency": 2}, "Ray"),
        ({"resume": True, "overwrite": True}, "contradict"),
    ],
)
def test_bad_arguments_fail_before_any_model_pass(
    tmp_path: Path, model: SmallNet, kwargs: dict[str, object], match: str
) -> None:
    engine = GradCAM(model, classes=CLASSES, transform=transform())
    passes = engine.cache_info()
    with pytest.raises((ValueError, TypeError), match=match):
        audit(ToyDataset(3), engine, tmp_path / "a.parquet", progress=False, **kwargs)  # type: ignore[arg-type]
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (passes.forwards, passes.backwards)
    assert not (tmp_path / "a.parquet").exists() or kwargs.get("target") is None


def test_label_target_needs_labels(tmp_path: Path, model: SmallNet) -> None:
    engine = GradCAM(model, classes=CLASSES, transform=transform())
    before = engine.cache_info().forwards
    images = [picture(i) for i in range(3)]
    with pytest.raises(ValueError, match="has no label"):
        audit(images, engine, tmp_path / "a.parquet", target="label", progress=False)
    assert engine.cache_info().forwards == before


def test_folder_paths_and_loader_sources(tmp_path: Path, model: SmallNet) -> None:
    root = tmp_path / "images"
    for i in range(6):
        folder = root / CLASSES[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture(i)).save(folder / f"{i}.png")
    kwargs = {"classes": CLASSES, "transform": transform(), "progress": False}
    by_folder = audit(root, model, tmp_path / "f.parquet", target="label", **kwargs)  # type: ignore[arg-type]
    frame = by_folder.frame()
    assert sorted(frame["id"]) == sorted(str(p) for p in root.rglob("*.png"))
    assert all(
        CLASSES[lab] == Path(i).parent.name
        for i, lab in zip(frame["id"], frame["label"], strict=True)
    )
    assert (frame["target"] == frame["label"]).all()

    listing = tmp_path / "list.txt"
    listing.write_text("# two of them\nimages/zero/0.png\n\nimages/one/1.png\n")
    by_list = audit(listing, model, tmp_path / "l.parquet", **kwargs)  # type: ignore[arg-type]
    assert [Path(i).name for i in by_list.frame()["id"]] == ["0.png", "1.png"]
    same = by_folder.frame().set_index("id").loc[list(by_list.frame()["id"])]
    assert [list(t) for t in same["top_classes"]] == [
        list(t) for t in by_list.frame()["top_classes"]
    ]

    # A loader of preprocessed tensors in dicts, with masks: default_collate batches them.
    items = [
        {"image": transform()(Image.fromarray(picture(i))), "label": i % 4, "mask": square_mask(i)}
        for i in range(5)
    ]
    loader = DataLoader(items, batch_size=2)  # type: ignore[arg-type,var-annotated]
    by_loader = audit(loader, model, tmp_path / "d.parquet", **kwargs)  # type: ignore[arg-type]
    direct = audit(ToyDataset(5), model, tmp_path / "t.parquet", **kwargs)  # type: ignore[arg-type]
    for column in ("id", "label", "target", "peak_row", "peak_col", "in_mask", "hit_mask"):
        assert by_loader.table.column(column).equals(direct.table.column(column)), column


def test_zoo_scenes_reopen_and_give_masks_and_boxes(tmp_path: Path) -> None:
    result = audit(
        "zoo:scenes:6:seed=3:mark=correct", "zoo:shortcut", tmp_path / "z.parquet", progress=False
    )
    again = Audit(tmp_path / "z.parquet")
    from camwidgets.zoo.scenes import make_scene

    scene = make_scene(3, 4, mark="correct")
    np.testing.assert_array_equal(again.image("4"), scene.image)
    frame = result.frame()
    assert frame["in_mask"].notna().all() and frame["in_boxes"].notna().all()
    assert (frame["in_boxes"] >= frame["in_mask"] - 1e-6).all()  # a box contains its mask
    assert list(frame["label"]) == [make_scene(3, i, mark="correct").labels[0] for i in range(6)]


def test_a_mask_of_the_wrong_size_fails_before_the_model_pass(
    tmp_path: Path, model: SmallNet
) -> None:
    engine = GradCAM(model, classes=CLASSES, transform=transform())
    before = engine.cache_info().forwards
    data = [(picture(0), 1, np.zeros((10, 10), bool))]
    with pytest.raises(ValueError, match="mask of item '0' is 10x10 but the image is 32x32"):
        audit(data, engine, tmp_path / "a.parquet", progress=False)
    assert engine.cache_info().forwards == before


def test_loader_threads_give_the_same_rows_and_pass_errors_on(
    tmp_path: Path, model: SmallNet
) -> None:
    kwargs = {"classes": CLASSES, "transform": transform(), "progress": False, "batch_size": 4}
    plain = audit(ToyDataset(11), model, tmp_path / "a.parquet", **kwargs)  # type: ignore[arg-type]
    threaded = audit(ToyDataset(11), model, tmp_path / "b.parquet", workers=3, **kwargs)  # type: ignore[arg-type]
    assert threaded.table.equals(plain.table)
    items = [(transform()(Image.fromarray(picture(i))), i % 4) for i in range(6)]
    loader = DataLoader(items, batch_size=4)  # type: ignore[arg-type,var-annotated]
    by_loader = audit(loader, model, tmp_path / "c.parquet", workers=2, **kwargs)  # type: ignore[arg-type]
    assert by_loader.frame()["id"].tolist() == [str(i) for i in range(6)]
    out = tmp_path / "d.parquet"
    with pytest.raises(RuntimeError, match="simulated crash at item 9"):
        audit(ToyDataset(11, fail_at=9), model, out, workers=2, seconds_per_part=0.0, **kwargs)  # type: ignore[arg-type]
    resumed = audit(ToyDataset(11), model, out, workers=2, resume=True, **kwargs)  # type: ignore[arg-type]
    assert resumed.table.equals(plain.table)
