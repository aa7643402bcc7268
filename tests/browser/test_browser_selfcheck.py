"""The suite checks itself: a page with a Python error must fail a wait at once, with the error.

A small notebook made here shows an ipywidgets VBox (a Dropdown and a plotly FigureWidget built
whole, updated in place by the dropdown's observer), then raises in a later cell. It is served
by Voila as the demo is (no --show_tracebacks: the page only says that a cell failed, the
traceback is in the server's log, which the failure message quotes). Afterwards the plain widget
stack must still update in place: the baseline for the Explorer's own checks.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import Voila, start_voila
from tests.browser.helpers import (
    PAGE_TIMEOUT,
    BrowserError,
    PageWatch,
    free_port,
    open_page,
    read_plots,
    wait_for,
)

pytestmark = pytest.mark.browser

WIDGET_CELL = """\
import ipywidgets as w
import numpy as np
import plotly.graph_objects as go

def values(k):
    return (np.arange(12, dtype=np.float32).reshape(3, 4) * (k + 1)).ravel()

x, y = np.meshgrid(np.arange(4), np.arange(3))
figure = go.FigureWidget(
    go.Figure([go.Heatmap(x=x.ravel(), y=y.ravel(), z=values(0)), go.Bar(y=[1, 2, 3])])
)
pick = w.Dropdown(options=[("one", 0), ("two", 1), ("three", 2)], value=0, description="k")

def on_pick(change):
    with figure.batch_update():
        figure.data[0].z = values(change["new"])
        figure.data[1].y = [change["new"] + 1] * 3

pick.observe(on_pick, names="value")
w.VBox([pick, figure])
"""

FAILING_CELL = 'raise RuntimeError("selfcheck: this error must be reported by the suite")'


@pytest.fixture(scope="module")
def failing_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Voila]:
    """Voila serving the self-made notebook."""
    base = tmp_path_factory.mktemp("selfcheck")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(c) for c in (WIDGET_CELL, FAILING_CELL)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)"}
    path: Path = base / "selfcheck.ipynb"
    nbformat.write(notebook, path)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "voila",
        str(path),
        "--no-browser",
        f"--port={port}",
        "--Voila.ip=127.0.0.1",
    ]
    server = start_voila(command, port, "voila-selfcheck", base)
    try:
        yield Voila(server)
    finally:
        server.stop()


def test_a_failing_cell_fails_the_wait_with_its_error(
    failing_app: Voila, new_page: Callable[..., tuple[Any, PageWatch]]
) -> None:
    page, watch = new_page("selfcheck", failing_app.server)
    open_page(watch, failing_app.url)
    started = time.monotonic()
    with pytest.raises(BrowserError) as failure:
        wait_for(watch, "something that never comes", lambda: False, timeout=PAGE_TIMEOUT)
    elapsed = time.monotonic() - started
    message = str(failure.value)
    print(f"the suite reported, after {elapsed:.1f} s:\n{message}")
    assert "not seen within" not in message, message
    assert "There was an error when executing cell" in message, message
    assert "must be reported by the suite" in message, message  # the traceback, from the log
    assert elapsed < PAGE_TIMEOUT / 2, f"the error took {elapsed:.0f} s to be reported"

    # The widget above the failing cell renders and redraws in place.
    watch.accept("There was an error when executing cell")
    plots = wait_for(watch, "the self-made plot", lambda: read_plots(page))
    assert plots[0]["traces"][0]["z"][:4] == [0, 1, 2, 3]
    page.locator(".widget-dropdown select").first.select_option(label="three")
    wait_for(
        watch,
        "the heat map and the bars to show k=2",
        lambda: (lambda t: t[0]["z"][:4] == [0, 3, 6, 9] and t[1]["y"] == [3, 3, 3])(
            read_plots(page)[0]["traces"]
        ),
        describe=lambda: str(read_plots(page)[0]["traces"]),
    )
    watch.check("after the update")
