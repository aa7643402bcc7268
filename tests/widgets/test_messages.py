"""What reaches the front end: bytes per update at 224x224, and re-sends to late views."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torchvision

from camwidgets import Explorer
from camwidgets.engine import default_transform
from camwidgets.figures import TraceRole
from camwidgets.widgets.figure_widget import FigureWidget
from camwidgets.widgets.panel import WIRE_MAX_SIDE
from camwidgets.widgets.traffic import Traffic, traffic
from tests.widgets.helpers import click

BUDGET = 64 * 1024


@pytest.fixture(scope="module")
def explorer(kit: Any) -> Iterator[Explorer]:
    """ResNet-18 (random weights, 10 classes) at 224x224, restricted to two layers for speed."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    ex = Explorer(model, transform=default_transform(224), layers=["layer3", "layer4"])
    ex.show(kit.picture(5, (240, 260)))
    yield ex
    ex.close()


def measure(action: Any) -> Traffic:
    with traffic() as sent:
        action()
    return sent


def test_updates_fit_the_budget_and_send_the_map_as_binary(explorer: Explorer) -> None:
    c = explorer.panel.controls
    fig = explorer.panel.figure
    assert explorer.panel.error.value == ""

    def click_second() -> None:
        click(fig, 1)

    second = c.target.options[1][1]
    actions = {
        "counterfactual": lambda: setattr(c.counterfactual, "value", True),
        "class": lambda: setattr(c.target, "value", second),
        "layer": lambda: setattr(c.layer, "value", "layer3"),
        "click": click_second,
        "bars": lambda: setattr(c.bars, "value", 40),
        "opacity": lambda: setattr(c.opacity, "value", 0.3),
    }
    sizes = {name: measure(action) for name, action in actions.items()}
    assert explorer.panel.error.value == ""
    for name, sent in sizes.items():
        assert sent.bytes <= BUDGET, f"{name}: {sent.bytes} bytes {sent.by_widget()}"
    heat = 4 * WIRE_MAX_SIDE * WIRE_MAX_SIDE  # float32 values of the drawn heat map
    for name in ("counterfactual", "class", "layer"):
        assert sizes[name].binary >= heat, name  # the map travels as binary float32 ...
        assert sizes[name].bytes - sizes[name].binary < 8 * 1024, name  # ... not as JSON text
    assert sizes["click"].bytes < 4 * 1024 and sizes["opacity"].bytes < 2 * 1024


def test_a_2d_map_would_be_sent_as_json(explorer: Explorer) -> None:
    """The reason for (x, y, z) columns: plotly serialises a 2-D array as nested lists."""
    import plotly.graph_objects as go

    fig = FigureWidget(go.Figure(go.Heatmap(z=np.zeros((224, 224), np.float32))))
    (heat,) = fig.data
    sent = measure(lambda: setattr(heat, "z", np.random.rand(224, 224).astype(np.float32)))
    assert sent.binary == 0 and sent.bytes > 500_000
    fig.close()


def test_a_view_that_drew_an_old_state_gets_it_again(explorer: Explorer) -> None:
    fig = explorer.panel.figure
    c = explorer.panel.controls
    start = fig._last_trace_edit_id
    fig._view_count = (fig._view_count or 0) + 1  # as the front end reports a new view
    c.counterfactual.value = not c.counterfactual.value  # an update while that view draws
    assert fig._last_trace_edit_id > start
    resends = fig.resends
    # The view reports, after its first draw, the edit it drew from: an older one.
    sent = measure(
        lambda: setattr(fig, "_js2py_traceDeltas", {"trace_deltas": [], "trace_edit_id": start})
    )
    assert fig.resends == resends + 1
    restyle = [m for m in sent.messages if m[0] == "FigureWidget"]
    assert sent.binary > 4 * WIRE_MAX_SIDE**2 and len(restyle) >= 1  # the whole state again
    # Acknowledgements lagging behind a stream of updates cause no re-send (no new view).
    c.counterfactual.value = not c.counterfactual.value
    c.counterfactual.value = not c.counterfactual.value
    stale = {"trace_deltas": [], "trace_edit_id": fig._last_trace_edit_id - 1}
    fig._js2py_traceDeltas = stale
    assert fig.resends == resends + 1


def test_a_late_front_end_gets_the_current_figure(explorer: Explorer, grid: Any) -> None:
    """Voila asks for the widgets' state after the notebook ran: it must see the update."""
    from ipywidgets.widgets.widget import _remove_buffers

    fig = explorer.panel.figure
    explorer.panel.controls.layer.value = "layer3"
    state, paths, buffers = _remove_buffers(fig.get_state())
    coarse_z = ["_widget_data", TraceRole.COARSE, "z"]
    z = next(b for p, b in zip(paths, buffers, strict=True) if p[:3] == coarse_z)
    drawn = np.asarray(fig.data[TraceRole.COARSE].z)
    np.testing.assert_array_equal(np.frombuffer(z, np.float32), drawn)
    assert explorer.result is not None and explorer.result.layer == "layer3"
    _, _, coarse = grid(fig.data[TraceRole.COARSE])
    np.testing.assert_array_equal(coarse, explorer.result.coarse.numpy())
    titles = [a["text"] for a in state["_widget_layout"]["annotations"]]
    assert titles == [a.text for a in fig.layout.annotations]
    assert state["_last_trace_edit_id"] == fig._last_trace_edit_id


def test_a_view_that_drew_the_latest_state_gets_nothing_more(explorer: Explorer) -> None:
    fig = explorer.panel.figure
    resends = fig.resends
    fig._view_count = (fig._view_count or 0) + 1
    latest = fig._last_trace_edit_id
    fig._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": latest}  # its first draw
    c = explorer.panel.controls
    c.counterfactual.value = not c.counterfactual.value
    fig._js2py_traceDeltas = {"trace_deltas": [], "trace_edit_id": latest}  # a lagging ack
    assert fig.resends == resends
