"""The Ray Data backend on a real local Ray instance: the same rows as the local run."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from camwidgets.audit import audit
from tests.audit.conftest import CLASSES, picture, square_mask, transform
from tests.conftest import with_random_batchnorm

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as error:  # Ray gives its raylet a fixed 30 s to register
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(error):
                raise
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_rows_equal_local_rows(tmp_path: Path, local_ray: Any) -> None:
    data = "zoo:scenes:24:seed=5:mark=correct"
    local = audit(data, "zoo:shortcut", tmp_path / "l.parquet", batch_size=8, progress=False)
    # Other batch boundaries on purpose: a row must not depend on its batch-mates.
    remote = audit(
        data,
        "zoo:shortcut",
        tmp_path / "r.parquet",
        backend="ray",
        batch_size=5,
        concurrency=1,
        progress=False,
    )
    assert remote.config["backend"] == "ray"
    assert len(local) == len(remote) == 24
    assert remote.table.equals(local.table)  # every column, bit for bit


def sequential_net() -> nn.Module:
    """A seeded CNN of torch modules only: Ray workers unpickle it without this test module."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 12, 3, 2, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, len(CLASSES)),
    )
    return with_random_batchnorm(model)


def test_ray_dataset_resumes_on_ray(tmp_path: Path, local_ray: Any) -> None:
    model = sequential_net()
    rows = [
        {"id": f"img-{i:02d}", "image": picture(i), "label": i % 4, "mask": square_mask(i)}
        for i in range(10)
    ]
    kwargs: dict[str, Any] = {"classes": CLASSES, "transform": transform(), "progress": False}
    out = tmp_path / "a.parquet"
    # The first half locally (rows stream to this process), the rest resumed on Ray actors.
    audit(local_ray.data.from_items(rows[:4]), model, out, **kwargs)
    resumed = audit(
        local_ray.data.from_items(rows),
        model,
        out,
        resume=True,
        backend="ray",
        batch_size=3,
        concurrency=1,
        **kwargs,
    )
    reference = audit(list(rows), model, tmp_path / "b.parquet", **kwargs)
    assert sorted(resumed.frame()["id"]) == [r["id"] for r in rows]
    ours = resumed.table.drop_columns(["index"]).sort_by("id").to_pydict()
    theirs = reference.table.drop_columns(["index"]).sort_by("id").to_pydict()
    # Resuming leaves a batch of one image here, and the convolution kernels round a batch of
    # one differently in the last float32 bits (seen: top probability 0.19652488 vs 0.19652490):
    # every floating column, lists of floats included, agrees to a relative 1e-5 in float32
    # (about 80 ulps) and 2e-3 in float16 (two ulps: a last-bit float32 change can flip a
    # float16 rounding), far below any difference the audit reports; ids, classes, labels,
    # sizes and flags agree exactly. Float columns are read from the schema, so a new one is
    # covered too.
    schema = reference.table.schema
    for column, values in theirs.items():
        kind = schema.field(column).type
        if pa.types.is_list(kind):
            kind = kind.value_type
        if pa.types.is_floating(kind):
            rtol, atol = (2e-3, 1e-4) if kind == pa.float16() else (1e-5, 1e-7)
            got = np.array(ours[column], dtype=float)
            np.testing.assert_allclose(
                got, np.array(values, dtype=float), rtol=rtol, atol=atol, err_msg=column
            )
        else:
            assert ours[column] == values, column
    assert resumed.frame()["in_mask"].notna().all()


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from camwidgets.audit.ray_backend import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"camwidgets\[ray\]"):
        require_ray()
