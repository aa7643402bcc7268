"""What the panel shows beyond the numbers: scales, words, busy state, exports, widths."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from camwidgets import Explorer
from camwidgets.engine import GradCAM
from camwidgets.figures.panel import COUNTERFACTUAL_PAPER
from tests.widgets.helpers import R, passes


@pytest.fixture
def explorer(make_engine: Callable[..., GradCAM], images: list[np.ndarray]) -> Explorer:
    ex = Explorer(make_engine(), all_layer_gradients=True)
    ex.show(images[0])
    return ex


def test_shared_scale_spans_the_listed_classes_and_both_signs(
    explorer: Explorer, make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    panel, c = explorer.panel, explorer.panel.controls
    fig = panel.figure
    own = float(explorer.result.heatmap.max())  # type: ignore[union-attr]
    assert fig.data[R.HEATMAP].zmax == pytest.approx(own)
    listed = [value for _, value in c.target.options]
    with passes(explorer.engine, 0, (len(listed) - 1, len(listed) - 1)):
        c.scale.value = "shared"  # each other listed class costs one backward, once
    reference = make_engine()
    heat = coarse = 0.0
    alphas = np.zeros(32)
    for target in listed:
        for counterfactual in (False, True):
            res = reference.explain(images[0], target=target, counterfactual=counterfactual)
            heat = max(heat, float(res.heatmap.max()))
            coarse = max(coarse, float(res.coarse.abs().max()))
            alphas = np.maximum(alphas, res.weights.abs().numpy())
    assert fig.data[R.HEATMAP].zmax == pytest.approx(heat, rel=1e-5)
    assert fig.data[R.COARSE].zmax == pytest.approx(coarse, rel=1e-5)
    k = int(np.argmax(explorer.result.weights.numpy()))  # type: ignore[union-attr]
    bound = alphas[k] * float(explorer.result.activations[k].abs().max())  # type: ignore[union-attr]
    assert fig.data[R.CONTRIBUTION].zmax == pytest.approx(bound, rel=1e-5)
    assert "shared" in fig.data[R.HEATMAP].colorbar.title.text
    with passes(explorer.engine, 0, 0):  # the counterfactual and back: same range, no pass
        c.counterfactual.value = True
        assert fig.data[R.HEATMAP].zmax == pytest.approx(heat, rel=1e-5)
        c.counterfactual.value = False
    c.scale.value = "own"
    assert fig.data[R.HEATMAP].zmax == pytest.approx(own)
    assert "shared" not in fig.data[R.HEATMAP].colorbar.title.text
    assert "shared scale" not in panel.status.value


def test_titles_say_what_is_explained_and_the_counterfactual(explorer: Explorer) -> None:
    fig, c = explorer.panel.figure, explorer.panel.controls
    result = explorer.result
    assert result is not None
    title = fig.layout.title.text
    assert f"<b>{result.target_name}</b> (class {result.target}" in title
    assert "predicted <b>" in title and "layer layer4 4×4" in title and "Grad-CAM" in title
    c.counterfactual.value = True
    assert fig.layout.title.text.startswith("<b>COUNTERFACTUAL</b> · what speaks against")
    assert "counterfactual heat map" in fig.layout.annotations[0].text
    assert fig.layout.paper_bgcolor == COUNTERFACTUAL_PAPER


def test_busy_line_shows_while_the_engine_works(explorer: Explorer) -> None:
    panel = explorer.panel
    engine = explorer.engine
    seen: list[str] = []
    explain = engine.explain

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(panel.busy.value)
        return explain(*args, **kwargs)

    engine.explain = watched  # type: ignore[method-assign]
    panel.controls.layer.value = "layer2"
    assert seen and "explaining" in seen[0] and "fa-spin" in seen[0]
    assert panel.busy.value == ""


def test_blank_panel_says_it_is_loading(make_engine: Callable[..., GradCAM]) -> None:
    ex = Explorer(make_engine())
    assert "Loading" in ex.panel.figure.layout.title.text


def test_show_outside_jupyter_says_where_to_see_the_panel(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], capsys: Any
) -> None:
    ex = Explorer(make_engine())
    ex.show(images[0])
    ex.show(images[1])
    err = capsys.readouterr().err
    assert err.count("no Jupyter kernel") == 1  # said once per Explorer
    assert "JupyterLab" in err and "save_png" in err and "save_html" in err


def test_exports_carry_what_is_shown(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], tmp_path: Path
) -> None:
    ex = Explorer(make_engine())
    for export in (ex.save_html, ex.save_png):
        with pytest.raises(RuntimeError, match=r"call explorer.show\(image\) first"):
            export(tmp_path / "early")
    assert not (tmp_path / "early").exists()
    ex.show(images[0])
    ex.panel.controls.counterfactual.value = True
    result = ex.result
    assert result is not None
    text = ex.save_html(tmp_path / "view.html", include_plotlyjs=False).read_text()
    for words in (
        "COUNTERFACTUAL",
        f"{result.target_name}",
        f"class {result.target}",
        "predicted",
        "layer layer4",
        "Grad-CAM",
    ):
        assert words in text, words
    assert "click a bar" not in text
    png = ex.save_png(tmp_path / "view.png").read_bytes()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size[0] >= 1400 and image.getpixel((2, 2)) == (0xEE, 0xF4, 0xFB)


def test_mime_bundle_has_a_static_picture_once_something_is_shown(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    ex = Explorer(make_engine())
    before = ex._repr_mimebundle_()
    assert before is not None and "image/png" not in before
    ex.show(images[0])
    bundle = ex._repr_mimebundle_()
    assert bundle is not None and "application/vnd.jupyter.widget-view+json" in bundle
    picture = Image.open(io.BytesIO(base64.b64decode(bundle["image/png"])))
    assert picture.format == "PNG" and picture.size[0] >= 1400


def test_the_figure_follows_the_width_the_front_end_reports(explorer: Explorer) -> None:
    fig = explorer.panel.figure
    four = fig.layout.height
    fig.view_width = 900  # as the front end reports its container
    assert fig.layout.height != four
    assert fig.layout.xaxis2.domain[1] > 0.8  # two maps per row: the second ends at the right
    fig.view_width = 1800
    assert fig.layout.xaxis2.domain[1] < 0.5


def test_show_in_a_kernel_shows_a_busy_line_then_the_panel_with_its_picture(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], monkeypatch: Any
) -> None:
    import IPython
    import IPython.display

    class Handle:
        def __init__(self) -> None:
            self.updates: list[dict[str, Any]] = []

        def update(self, obj: dict[str, Any], raw: bool = False) -> None:
            self.updates.append(obj)

    class Shell:
        execution_count = 3
        kernel = object()

    handle = Handle()
    shown: list[dict[str, Any]] = []

    def display(obj: dict[str, Any], raw: bool = False, **kwargs: Any) -> Handle:
        shown.append(obj)
        return handle

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell)
    monkeypatch.setattr(IPython.display, "display", display)
    ex = Explorer(make_engine())
    ex.show(images[0])
    assert len(shown) == 1 and "running the model" in shown[0]["text/plain"]  # at once
    assert "fa-spin" in shown[0]["text/html"]
    assert len(handle.updates) == 1 and "image/png" in handle.updates[0]  # then the panel
    view = handle.updates[0]["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == ex.panel.root.model_id


def test_a_converted_notebook_shows_the_static_picture(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    """nbconvert drops a widget view whose state was not saved and falls back to the PNG."""
    nbformat = pytest.importorskip("nbformat")
    nbconvert = pytest.importorskip("nbconvert")
    ex = Explorer(make_engine())
    ex.show(images[0])
    bundle = ex._repr_mimebundle_()
    assert bundle is not None
    cell = nbformat.v4.new_code_cell("ex.show(img)")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    body, _ = nbconvert.HTMLExporter().from_notebook_node(notebook)
    assert f'src="data:image/png;base64,{bundle["image/png"][:40]}' in body
