"""The ``camwidgets`` command: explain prints the engine's own top classes and map."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from camwidgets import GradCAM, zoo
from camwidgets.cli import main


def test_explain_prints_what_the_engine_computes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_png = tmp_path / "overlay.png"
    assert main(["explain", "--seed", "2", "--top", "3", "--save", str(out_png)]) == 0
    printed = capsys.readouterr().out.splitlines()
    shapes = zoo.load("shapes")
    engine = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
    image = zoo.sample_scenes(1, seed=2)[0].image
    top = engine.predict(image, k=3)
    for line, p in zip(printed[1:4], top, strict=True):
        assert line.split()[0] == p.name  # type: ignore[union-attr]
        assert f"p={p.probability:.3f}" in line  # type: ignore[union-attr]
    res = engine.explain(image)
    assert f"map max {float(res.heatmap.max()):.4f}" in printed[4]
    assert Image.open(out_png).size == (res.heatmap.shape[1], res.heatmap.shape[0])


def test_explain_rejects_unknown_model() -> None:
    with pytest.raises(ValueError, match="unknown"):
        main(["explain", "--model", "nope"])
