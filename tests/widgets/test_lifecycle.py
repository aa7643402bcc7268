"""Showing again, closing, displaying, exporting: no hooks, no growth, one panel per Explorer."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from camwidgets import Explorer
from camwidgets.engine import GradCAM
from camwidgets.figures import TraceRole
from camwidgets.widgets.figure_widget import FigureWidget
from camwidgets.widgets.panel import Panel
from tests.widgets.helpers import click


def live(kind: type) -> int:
    """How many instances of ``kind`` are alive."""
    gc.collect()
    return sum(type(o) is kind for o in gc.get_objects())


def test_show_again_reuses_panel_engine_and_cache(
    model: Any, images: list[np.ndarray], kit: Any
) -> None:
    initial = kit.hooks(model)
    ex = Explorer(
        model, classes=kit.classes, transform=kit.transform(), layers=["layer3", "layer4"]
    )
    root = ex.show(images[0])
    figures = live(FigureWidget)
    for _ in range(4):
        assert ex.show(images[0].copy()) is root
    ex.panel.controls.layer.value = "layer3"
    assert kit.hooks(model) == initial
    info = ex.engine.cache_info()
    assert (info.forwards, info.entries) == (1, 1)
    assert live(FigureWidget) == figures


def test_show_again_does_not_grow_memory(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    ex = Explorer(make_engine())
    for _ in range(3):  # warm up: caches of plotly validators, torch kernels, the engine
        ex.show(images[:2])
        ex.panel.controls.counterfactual.value = not ex.panel.controls.counterfactual.value
    # Two rounds of 6 re-shows, measured after each: one-off growth (first use of a code path
    # after other tests ran, interned strings) lands in the first round; a leak grows both, so
    # the second round is the one that must stay flat.
    traced: list[int] = []
    tracemalloc.start()
    try:
        for _ in range(2):
            for _ in range(6):
                ex.show([images[0].copy(), images[1].copy()])
                value = ex.panel.controls.counterfactual.value
                ex.panel.controls.counterfactual.value = not value
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    grown = traced[1] - traced[0]
    assert grown < 256 * 1024, f"memory grew by {grown} bytes over 6 more re-shows"
    assert ex.engine.cache_info().entries == 1  # the second image is never picked


def test_close_frees_figure_panel_and_engine(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    from ipywidgets.widgets.widget import _instances

    engine = make_engine()
    registered = set(_instances)
    ex = Explorer(engine)
    ex.show(images[0])
    refs = [weakref.ref(x) for x in (ex.panel.figure, ex.panel, ex.panel.root)]
    ex.close()
    del ex
    gc.collect()
    assert [r() is None for r in refs] == [True] * 3
    assert set(_instances) == registered  # every widget of the panel is closed
    ref = weakref.ref(engine)
    del engine
    gc.collect()
    assert ref() is None


def test_plain_plotly_figure_widget_still_leaks() -> None:
    """Why ``FigureWidget`` overrides ``_esm``: if this fails, upstream fixed the leak."""
    fig = go.FigureWidget()
    ref = weakref.ref(fig)
    fig.close()
    del fig
    gc.collect()
    assert ref() is not None


def test_widget_callbacks_do_not_keep_the_panel_alive(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    panel = Panel(make_engine())
    panel.load([images[0]])
    figure, controls = panel.figure, panel.controls
    panel.root.panel = None  # what remains: widgets whose callbacks refer to the panel
    ref = weakref.ref(panel)
    del panel
    gc.collect()
    assert ref() is None
    click(figure, 0)  # a no-op now, not an error
    controls.counterfactual.value = True
    figure.close()


def test_show_displays_once_per_cell(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], monkeypatch: Any
) -> None:
    import IPython
    import IPython.display

    class Shell:
        execution_count = 7
        kernel = object()  # a Jupyter kernel (whose request metadata is unknown here)

    shown: list[Any] = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False, **kw: shown.append(obj))
    ex = Explorer(make_engine())
    root = ex.show(images[0])
    model_id = root.model_id
    views = [s for s in shown if "application/vnd.jupyter.widget-view+json" in s]
    assert [s["application/vnd.jupyter.widget-view+json"]["model_id"] for s in views] == [model_id]
    assert "camwidgets:" in shown[0]["text/plain"]  # a busy line came first
    shown[:] = views
    root._ipython_display_()  # the same cell's last value: already on screen
    assert len(shown) == 1
    Shell.execution_count = 8
    root._ipython_display_()  # a later cell showing it again
    assert len(shown) == 2


def test_explorer_renders_as_a_cells_value(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    ex = Explorer(make_engine())
    bundle = ex._repr_mimebundle_()
    assert bundle is not None
    view = bundle["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == ex.panel.root.model_id
    assert ex.result is None and "show(image)" in ex.panel.status.value


def test_explorer_arguments(model: Any, make_engine: Callable[..., GradCAM], kit: Any) -> None:
    ex = Explorer(model, classes=kit.classes, transform=kit.transform(), layers=["layer2"])
    assert ex.engine.layers == ["layer2"] and ex.engine.classes == kit.classes
    with pytest.raises(TypeError, match="no other arguments"):
        Explorer(make_engine(), classes=kit.classes)


def test_figure_exports_the_current_view_at_full_resolution(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], tmp_path: Path, grid: Any
) -> None:
    ex = Explorer(make_engine())
    ex.show(images[0])
    ex.panel.controls.layer.value = "layer3"
    ex.panel.controls.counterfactual.value = True
    fig = ex.figure()
    assert type(fig) is go.Figure and len(fig.data) == 6
    result = ex.result
    assert result is not None and result.layer == "layer3" and result.counterfactual
    heat = grid(fig.data[TraceRole.HEATMAP])[2]
    assert heat.shape == result.heatmap.shape
    np.testing.assert_array_equal(heat, result.heatmap.numpy())
    path = ex.save_html(tmp_path / "view.html", include_plotlyjs=False)
    text = path.read_text()
    assert 'class="plotly-graph-div"' in text and "heat %{z:.4g}" in text


def test_updates_wait_for_a_new_views_first_draw(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    """An update during a view's first draw would stop plotly attaching its click listeners:
    updates are kept in the kernel until the view reports that draw, then sent once, whole."""
    from camwidgets.widgets.traffic import traffic

    ex = Explorer(make_engine())
    ex.show(images[0])
    fig = ex.panel.figure
    ex._repr_mimebundle_()  # displayed: a view is about to draw
    assert fig.holding
    with traffic() as sent:
        ex.panel.controls.counterfactual.value = True  # a "Run All" cell right after show()
    assert not [m for m in sent.messages if m[0] == "FigureWidget"], "nothing reaches the view"
    expected = ex.engine.explain(images[0], counterfactual=True)
    assert ex.result is not None and ex.result.counterfactual  # the kernel side is current
    assert np.allclose(ex.result.weights.numpy(), expected.weights.numpy())
    drawn_from = fig._last_trace_edit_id
    with traffic() as sent:
        fig._view_count = 1
        fig._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": drawn_from}
    assert not fig.holding and fig.resends == 1
    figure_bytes = sum(j + b for name, j, b in sent.messages if name == "FigureWidget")
    assert figure_bytes > 10_000, "the whole current state went to the view"
    with traffic() as sent:
        ex.panel.controls.counterfactual.value = False
    assert [m for m in sent.messages if m[0] == "FigureWidget"], "later updates flow again"
    ex.close()


class FakeKernel:
    """What ``root.current_cell`` reads from ipykernel: the request being handled."""

    def __init__(self) -> None:
        self.cell = "cell-a"

    def get_parent(self) -> dict[str, Any]:
        return {"metadata": {"cellId": self.cell}, "content": {"code": "..."}}


@pytest.fixture
def kernel(monkeypatch: Any) -> FakeKernel:
    """A kernel-like IPython shell whose displays go nowhere."""
    import IPython
    import IPython.display

    fake = FakeKernel()

    class Shell:
        execution_count = 1
        kernel = fake

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell)
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False, **kw: None)
    return fake


@pytest.mark.slow
def test_rerunning_a_cell_frees_the_previous_panel_and_engine(
    model: Any, images: list[np.ndarray], kit: Any, kernel: FakeKernel
) -> None:
    from ipywidgets.widgets.widget import _instances

    def cell() -> Explorer:  # `ex = Explorer(model, ...); ex.show(img)`, run again and again
        ex = Explorer(model, classes=kit.classes, transform=kit.transform(), layers=["layer4"])
        ex.show(images[0])
        return ex

    engines: list[weakref.ref[GradCAM]] = []
    out = []  # IPython's output history keeps every returned box
    ex = cell()
    registered = len(_instances)
    tracemalloc.start()  # before the runs compared: what they free was traced too
    try:
        for run in range(5):
            engines.append(weakref.ref(ex.engine))
            ex = cell()  # no gc.collect() here: the panel frees what it must itself
            out.append(ex.panel.root)
            if run == 1:
                before = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert [r() is None for r in engines] == [True] * 5  # every replaced engine is gone
    assert len(_instances) == registered  # the old panels' widgets are closed
    assert grown < 3 * 64 * 1024, f"{grown} bytes over 3 re-runs"
    assert ex.result is not None and not ex.panel.closed  # the newest panel is alive


def test_a_panel_shown_in_another_cell_stays(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray], kernel: FakeKernel
) -> None:
    first = Explorer(make_engine())
    first.show(images[0])
    kernel.cell = "cell-b"
    first.show(images[1])  # the same panel, now also shown from cell b
    kernel.cell = "cell-a"
    second = Explorer(make_engine())
    second.show(images[0])  # cell a re-run with a new Explorer: cell b still shows the first
    assert not first.panel.closed and first.panel.root.panel is first.panel
    kernel.cell = "cell-b"
    third = Explorer(make_engine())
    old = first.panel
    third.show(images[2])  # now nothing shows the first panel any more
    assert old.closed and old.root.children == () and old.root.panel is None
    assert first.panel is not old and not first.panel.closed  # a new panel on next use
    first.show(images[0])
    assert first.result is not None
    assert not second.panel.closed and not third.panel.closed


def test_an_undisplayed_explorer_is_freed_with_its_widgets(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    from ipywidgets.widgets.widget import _instances

    registered = set(_instances)
    engine = make_engine()
    ex = Explorer(engine)
    root = ex.show(images[0])  # no kernel: nothing displays it
    ref = weakref.ref(engine)
    del ex, engine
    gc.collect()
    assert ref() is None and set(_instances) == registered
    assert root.panel is None
