"""One voice: the same wrong input gets the same message from the engine, the panel and the CLI.

Each case is typed three ways: to ``GradCAM`` in code, to the Explorer (its settable properties
and its class box) and to ``camwidgets explain``; the messages must be the same text.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pytest

from camwidgets import Explorer, GradCAM, zoo
from camwidgets.cli import main

# ImageNet-like names for the six outputs of the shapes model (given to all three front ends).
NAMES = ["tench", "tabby", "tiger cat", "Persian cat", "Egyptian cat", "great white shark"]


@pytest.fixture(scope="module")
def shapes() -> Any:
    return zoo.load("shapes")


@pytest.fixture(scope="module")
def scene() -> Any:
    return zoo.sample_scenes(1, seed=4)[0].image


@pytest.fixture
def engine(shapes: Any) -> GradCAM:
    return GradCAM(shapes.model, classes=NAMES, transform=shapes.transform)


@pytest.fixture
def explorer(engine: GradCAM, scene: Any) -> Explorer:
    ex = Explorer(engine)
    ex.show(scene)
    return ex


@pytest.fixture
def names_file(tmp_path: Path) -> Path:
    path = tmp_path / "names.txt"
    path.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    return path


def _engine_says(call: Any) -> str:
    with pytest.raises((ValueError, TypeError)) as caught:
        call()
    return str(caught.value)


def _cli_says(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["explain", *argv]) == 2
    err = capsys.readouterr().err.strip()
    prefix = "camwidgets explain: error: "
    assert err.startswith(prefix) and "\n" not in err, err
    return err.removeprefix(prefix)


@pytest.mark.parametrize("query", ["strr", "Tabby Cat", "cat", "Star", "17", "-1"])
def test_a_class_is_refused_in_the_same_words_everywhere(
    query: str,
    engine: GradCAM,
    explorer: Explorer,
    scene: Any,
    names_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    said = _engine_says(lambda: engine.explain(scene, target=query))
    assert said == _engine_says(lambda: setattr(explorer, "target", query))
    explorer.panel.controls.search.value = query  # typed into the class box
    assert html.escape(said) in explorer.panel.error.value
    assert said == _cli_says(capsys, "--classes", str(names_file), "--target", query)
    if query == "Tabby Cat":  # no class is 'tabby cat': 'tabby' first, 'tiger cat' among the rest
        assert "did you mean 'tabby' (1), " in said and "'tiger cat' (2)" in said
    if query == "cat":
        assert said.startswith("'cat' matches several classes")


@pytest.mark.parametrize(("query", "index"), [("TABBY", 1), ("tiger  Cat", 2), ("persian", 3)])
def test_a_class_is_found_the_same_way_everywhere(
    query: str, index: int, engine: GradCAM, explorer: Explorer, scene: Any
) -> None:
    assert engine.explain(scene, target=query).target == index
    explorer.target = query
    assert explorer.target == index


def test_zoo_names_are_case_insensitive_in_the_engine(shapes: Any, scene: Any) -> None:
    engine = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
    assert engine.explain(scene, target="Star").target == shapes.classes.index("star")


def test_a_layer_is_refused_in_the_same_words_everywhere(
    engine: GradCAM, explorer: Explorer, scene: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    said = _engine_says(lambda: engine.explain(scene, layer="layer5"))
    assert said.startswith("unknown layer 'layer5'; did you mean") and "'layer4'" in said
    assert said == _engine_says(lambda: setattr(explorer, "layer", "layer5"))
    assert said == _cli_says(capsys, "--layer", "layer5")


def test_a_method_is_refused_in_the_same_words_everywhere(
    engine: GradCAM, explorer: Explorer, scene: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    said = _engine_says(lambda: engine.explain(scene, method="grad-cam"))
    assert said.startswith("unknown method 'grad-cam'; available: gradcam, ")
    assert said == _engine_says(lambda: setattr(explorer, "method", "grad-cam"))
    assert said == _cli_says(capsys, "--method", "grad-cam")


def test_a_missing_image_is_named_once(
    engine: GradCAM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "no such.png")
    said = _engine_says(lambda: engine.explain(missing))
    assert said.count(missing) == 1 and "does not exist" in said
    assert said == _cli_says(capsys, missing)


def test_save_html_names_the_explained_class(explorer: Explorer, tmp_path: Path) -> None:
    explorer.target = "tiger cat"
    page = explorer.save_html(tmp_path / "view.html").read_text(encoding="utf-8")
    title = page[page.index("<title>") + len("<title>") : page.index("</title>")]
    assert "tiger cat" in title and "<" not in title
