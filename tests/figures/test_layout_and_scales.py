"""The panel figure at different widths, its colour bars and fonts, and honest scales."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from camwidgets.figures import PanelView, TraceRole, panel_figure
from camwidgets.figures.panel import (
    COUNTERFACTUAL_PAPER,
    MARGIN,
    WRAP_BELOW,
    panel_layout,
    relayout_panel,
)
from camwidgets.figures.scales import NEAR_EMPTY, emptiness
from camwidgets.figures.static import colormap, plain, render_png

RNG = np.random.default_rng(3)


def view(**changes: object) -> PanelView:
    base = PanelView(
        picture=RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8),
        heatmap=RNG.random((40, 40)).astype(np.float32),
        coarse=RNG.standard_normal((7, 7)).astype(np.float32),
        weights=RNG.standard_normal(16).astype(np.float32),
        activations=RNG.random((16, 7, 7)).astype(np.float32),
        caption="explaining <b>cat</b> (class 3, p 40.0%) · layer layer4 7×7 · Grad-CAM",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("width", [800, 1000, WRAP_BELOW, 1280, 1920, 2600])
def test_maps_fit_the_width_with_room_for_their_colour_bars(width: int) -> None:
    layout = panel_layout(width)
    assert layout.columns == (4 if width >= WRAP_BELOW else 2)
    inner = width - MARGIN["l"] - MARGIN["r"]
    plot = layout.height - MARGIN["t"] - MARGIN["b"]
    maps = layout.boxes[:4]
    for box in layout.boxes:
        assert 0.0 <= box.x0 < box.x1 <= 1.0 and 0.0 <= box.y0 < box.y1 <= 1.0
    for box in maps:  # square in pixels
        assert (box.x1 - box.x0) * inner == pytest.approx((box.y1 - box.y0) * plot, rel=1e-6)
    rows: dict[float, list[float]] = {}
    for box in maps:
        rows.setdefault(round(box.y1, 6), []).append(box.x0)
    for box in maps:  # 80 px right of each map for its bar, ticks and title: no neighbour there
        right = box.x1 + 80 / inner
        same_row = [b for b in maps if round(b.y1, 6) == round(box.y1, 6) and b.x0 > box.x0]
        assert all(right <= b.x0 for b in same_row) and right <= 1.0 + 1e-9
    bars = layout.boxes[4]
    assert bars.y1 < min(b.y0 for b in maps)  # the bar chart is below every map


def test_colour_bars_are_titled_beside_their_maps_with_readable_ticks() -> None:
    fig = panel_figure(view())
    scaled = [t for t in fig.data if t.type == "heatmap" and t.showscale is not False]
    assert [t.name for t in scaled] == ["heatmap", "coarse", "activation", "contribution"]
    for trace in scaled:
        bar = trace.colorbar
        axis = fig.layout[trace.xaxis.replace("x", "xaxis")]
        assert bar.title.text and bar.tickfont.size >= 11
        assert bar.tickformat == ".3~g"  # "5e-05", never plotly's SI "50µ"
        assert axis.domain[1] < bar.x < axis.domain[1] + 0.02  # just right of its map
    sizes = [a.font.size for a in fig.layout.annotations] + [fig.layout.font.size]
    assert min(sizes) >= 12
    assert fig.layout.width is None  # sized by the front end
    assert panel_figure(view(), width=1300, fixed=True).layout.width == 1300


def test_relayout_for_a_narrow_front_end_wraps_the_maps() -> None:
    fig = go.FigureWidget(panel_figure(view()))
    wide = fig.layout.height
    layout = relayout_panel(fig, 900)
    assert layout.columns == 2 and fig.layout.height == layout.height != wide
    fresh = panel_figure(view(), width=900)
    for name in ("xaxis", "yaxis2", "xaxis4", "yaxis5"):
        assert tuple(fig.layout[name].domain) == pytest.approx(tuple(fresh.layout[name].domain))
    heat = fig.data[TraceRole.HEATMAP]
    assert heat.colorbar.x == pytest.approx(fresh.data[TraceRole.HEATMAP].colorbar.x)


def test_counterfactual_is_in_the_titles_and_colours() -> None:
    normal = panel_figure(view())
    flipped = panel_figure(view(counterfactual=True, caption="<b>COUNTERFACTUAL</b> · cat"))
    assert "counterfactual heat map" in flipped.layout.annotations[0].text
    assert "counterfactual" not in normal.layout.annotations[0].text
    assert flipped.layout.paper_bgcolor == COUNTERFACTUAL_PAPER != normal.layout.paper_bgcolor
    assert flipped.layout.title.font.color != normal.layout.title.font.color


def test_shared_ranges_are_used_and_said() -> None:
    fig = panel_figure(view(heat_max=5.0, coarse_max=3.0, contribution_max=2.0))
    heat = fig.data[TraceRole.HEATMAP]
    coarse = fig.data[TraceRole.COARSE]
    contribution = fig.data[TraceRole.CONTRIBUTION]
    assert (heat.zmin, heat.zmax) == (0.0, 5.0) and (coarse.zmin, coarse.zmax) == (-3.0, 3.0)
    assert (contribution.zmin, contribution.zmax) == (-2.0, 2.0)
    assert all("shared" in t.colorbar.title.text for t in (heat, coarse, contribution))
    plain_view = view()
    own = panel_figure(plain_view).data[TraceRole.HEATMAP]
    assert own.zmax == pytest.approx(float(plain_view.heatmap.max()))
    assert "shared" not in str(own.colorbar.title.text)


def test_empty_and_near_empty_maps_say_so() -> None:
    assert emptiness(0.0, 1.0) == "empty: every value is 0"
    assert emptiness(0.5, 1.0) is None and emptiness(0.5, 0.0) is None
    low = NEAR_EMPTY / 2
    assert emptiness(low, 1.0, "x").startswith("near-empty: peak 0.01 is 1.0% of x")  # type: ignore[union-attr]
    zero = panel_figure(view(heatmap=np.zeros((40, 40), np.float32)))
    assert "empty: every value is 0" in zero.layout.annotations[0].text
    assert zero.data[TraceRole.HEATMAP].zmax == 1.0
    faint = view(heatmap=np.full((40, 40), 0.003, np.float32), heat_max=0.2)
    assert "near-empty" in panel_figure(faint).layout.annotations[0].text
    assert faint.heat_note is not None and "1.5% of the shared range" in faint.heat_note


def test_static_png_draws_the_view_with_its_colours() -> None:
    image = Image.open(io.BytesIO(render_png(view())))
    assert image.format == "PNG" and image.size[0] == 1480 and image.size[1] > 600
    flipped = Image.open(io.BytesIO(render_png(view(counterfactual=True)))).convert("RGB")
    assert flipped.getpixel((3, 3)) == (0xEE, 0xF4, 0xFB)  # the counterfactual's paper colour
    assert Image.open(io.BytesIO(render_png(view()))).convert("RGB").getpixel((3, 3)) == (
        255,
        255,
        255,
    )
    # The overlay's colours come from the colour scale: Jet runs from dark blue to dark red.
    table = colormap("Jet")
    assert (
        table.shape == (256, 3)
        and tuple(table[0]) == (0, 0, 131)
        and tuple(table[-1])
        == (
            128,
            0,
            0,
        )
    )
    assert plain("coarse Σ α<sub>k</sub>A<sup>k</sup><br>x &amp; y") == "coarse Σ α_kA^k\nx & y"
