"""On the shipped zoo models: the names describe finds, the evaluate command, the layering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from camwidgets import GradCAM, zoo
from camwidgets.naming import ChannelNames, describe, dissect
from camwidgets.naming.evaluate import main
from camwidgets.zoo.concepts import MARKS


def _engine(name: str) -> GradCAM:
    model = zoo.load(name)
    return GradCAM(model.model, model.classes, model.transform)


@pytest.mark.slow
def test_shapes_channels_are_named_after_the_explained_shape() -> None:
    engine = _engine("shapes")
    names = dissect(engine, "layer4", zoo.concepts(300, seed=21), progress=False)
    scenes = [zoo.make_scene(31, i) for i in range(30)]
    res = engine.explain([s.image for s in scenes], "layer4", cache=False)
    hits = sum(r.target_name in describe(r, names).names() for r in res)
    assert hits >= 24  # 100% with 1000 concept scenes and 300 scenes (docs/explanation/naming.md)
    assert set(names.summary()) >= set(zoo.SHAPE_CLASSES)


@pytest.mark.slow
def test_shortcut_channels_are_corner_mark_detectors() -> None:
    engine = _engine("shortcut")
    names = dissect(engine, "layer4", zoo.concepts(300, seed=21), progress=False)
    scenes = [zoo.make_scene(31, i, mark="correct") for i in range(30)]
    res = engine.explain([s.image for s in scenes], "layer4", cache=False)
    said = [describe(r, names) for r in res]
    marks = sum(any(names.category(n) == "mark" for n in d.names()) for d in said)
    assert marks >= 24
    # The named channels detect one colour of mark each: the scene's own colour shows up.
    own = sum(MARKS[s.mark] in d.names() for s, d in zip(scenes, said, strict=True))  # type: ignore[index]
    assert own >= 15
    assert all(names.category(n) == "mark" for n in names.summary())


@pytest.mark.slow
def test_evaluate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval.json"
    results = main(
        ["--models", "shapes", "--concepts", "80", "--scenes", "12", "--threads", "1",
         "--json", str(out), "--names-dir", str(tmp_path)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "explained 12 scenes (seed 31)" in printed and "the explained shape" in printed
    data = json.loads(out.read_text())
    assert data[0]["model"] == "shapes" and data[0]["scenes"] == 12
    assert data[0]["rate"] == results[0].hits / 12 and 0 <= data[0]["chance"] <= 1
    names = ChannelNames.load(tmp_path / "shapes-layer4.json")
    assert names.images == 80 and len(names) == 128


def test_evaluate_refuses_dissecting_on_the_evaluation_scenes() -> None:
    with pytest.raises(SystemExit):
        main(["--concept-seed", "5", "--scene-seed", "5"])


def test_naming_imports_no_widget_code() -> None:
    code = (
        "import sys, camwidgets.naming, camwidgets.naming.evaluate; "
        "bad = [m for m in ('ipywidgets', 'plotly') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
