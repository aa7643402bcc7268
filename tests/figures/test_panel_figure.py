"""The composed panel figure, and in-place updates that equal a fresh build."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from camwidgets.figures import (
    PanelView,
    TraceRole,
    apply,
    compose,
    panel_figure,
    panel_parts,
    update_panel,
)


def view(seed: int, channel: int | None = None, side: int = 6) -> PanelView:
    rng = np.random.default_rng(seed)
    return PanelView(
        picture=rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
        heatmap=rng.random((32, 32)).astype(np.float32),
        coarse=rng.standard_normal((side, side)).astype(np.float32),
        weights=rng.standard_normal(9).astype(np.float32),
        activations=rng.random((9, side, side)).astype(np.float32),
        channel=channel,
        top=4,
    )


def test_panel_figure_layout() -> None:
    fig = panel_figure(view(0))
    assert [t.name for t in fig.data] == [r.label for r in TraceRole]
    assert [t.type for t in fig.data] == [
        "image",
        "heatmap",
        "heatmap",
        "heatmap",
        "heatmap",
        "bar",
    ]
    assert fig.data[TraceRole.BARS].type == "bar" and fig.data[TraceRole.BARS].xaxis == "x5"
    axes = {r: fig.data[r].xaxis for r in TraceRole}
    assert axes[TraceRole.PICTURE] == axes[TraceRole.HEATMAP] == "x"
    assert [axes[TraceRole.COARSE], axes[TraceRole.ACTIVATION], axes[TraceRole.CONTRIBUTION]] == [
        "x2",
        "x3",
        "x4",
    ]
    assert len(fig.layout.annotations) == 5
    assert sum(t.type == "heatmap" and t.showscale is not False for t in fig.data) == 4


@pytest.mark.parametrize("known", [True, False])
def test_update_in_place_equals_a_fresh_build(known: bool) -> None:
    first, second = view(1), view(2, channel=3, side=4)
    widget = go.FigureWidget(panel_figure(first))
    ids = [id(t) for t in widget.data]
    shown = update_panel(widget, second, shown=panel_parts(first) if known else None)
    fresh = panel_figure(second)
    assert [id(t) for t in widget.data] == ids
    for got, want in zip(widget.data, fresh.data, strict=True):
        for key in ("x", "y", "z", "customdata", "source", "zmax", "texttemplate"):
            if key in want:
                assert np.array_equal(np.asarray(got[key]), np.asarray(want[key])), key
    assert widget.layout.xaxis2.range == fresh.layout.xaxis2.range
    assert [a.text for a in widget.layout.annotations] == [a.text for a in fresh.layout.annotations]
    assert len(shown) == 5


def test_apply_checks_the_figure_shape() -> None:
    parts = panel_parts(view(0))
    with pytest.raises(ValueError, match="figure has 6 traces"):
        apply(panel_figure(view(0)), parts[:4])
    with pytest.raises(ValueError, match="top must be"):
        compose(parts, top=6)


def test_blank_view_builds() -> None:
    fig = panel_figure(PanelView.blank())
    assert len(fig.data) == 6
