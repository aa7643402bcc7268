"""Each figure: the values drawn are the values given; colour ranges never change them."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from camwidgets.figures import (
    channel_figure,
    coarse_figure,
    default_channel,
    overlay_figure,
    png_data_uri,
    to_grid,
    top_channels,
    weights_figure,
)

RNG = np.random.default_rng(0)
PICTURE = RNG.integers(0, 256, (40, 50, 3), dtype=np.uint8)
HEAT = RNG.random((40, 50)).astype(np.float32) * 3
COARSE = RNG.standard_normal((5, 6)).astype(np.float32)
ACTIVATIONS = RNG.random((12, 5, 6)).astype(np.float32)
WEIGHTS = RNG.standard_normal(12).astype(np.float32)


def drawn(trace: go.Heatmap) -> np.ndarray:
    return to_grid(np.asarray(trace.x), np.asarray(trace.y), np.asarray(trace.z))[2]


def heat_of(fig: go.Figure) -> go.Heatmap:
    """The heat-map trace of an overlay figure (picture first, then the heat map)."""
    _, heat = fig.data
    return heat


def test_overlay_draws_the_heat_map_over_the_picture() -> None:
    fig = overlay_figure(PICTURE, HEAT, opacity=0.4, colorscale="Turbo")
    image, heat = fig.data
    assert image.type == "image" and image.source == png_data_uri(PICTURE)
    np.testing.assert_array_equal(drawn(heat), HEAT)
    assert heat.opacity == 0.4 and heat.zmin == 0 and heat.zmax == pytest.approx(HEAT.max())
    assert "%{z" in heat.hovertemplate and heat.showscale is not False
    assert list(fig.layout.yaxis.range) == [39.5, -0.5]  # image rows go down
    assert fig.layout.yaxis.scaleanchor == "x"


def test_overlay_normalises_only_the_colour_range() -> None:
    small, big = heat_of(overlay_figure(PICTURE, HEAT)), heat_of(overlay_figure(PICTURE, HEAT * 10))
    np.testing.assert_allclose(np.asarray(big.z), np.asarray(small.z) * 10, rtol=1e-6)
    assert big.zmax == pytest.approx(small.zmax * 10)
    flat = heat_of(overlay_figure(PICTURE, np.zeros_like(HEAT)))
    assert flat.zmax == 1.0 and not np.asarray(flat.z).any()


def test_overlay_sampling_keeps_exact_values_at_the_drawn_pixels() -> None:
    heat = heat_of(overlay_figure(PICTURE, HEAT, max_side=8))
    rows, cols, values = to_grid(np.asarray(heat.x), np.asarray(heat.y), np.asarray(heat.z))
    assert values.shape == (8, 8) and rows[-1] == 39 and cols[-1] == 49
    np.testing.assert_array_equal(values, HEAT[np.ix_(rows, cols)])
    assert heat.zsmooth == "best"
    with pytest.raises(ValueError, match="differ in size"):
        overlay_figure(PICTURE[:10], HEAT)


def test_coarse_map_shows_signed_values_cell_by_cell() -> None:
    (trace,) = coarse_figure(COARSE).data
    np.testing.assert_array_equal(drawn(trace), COARSE)
    limit = float(np.abs(COARSE).max())  # symmetric range: 0 is white, red and blue comparable
    assert trace.zmin == pytest.approx(-limit) and trace.zmax == pytest.approx(limit)
    assert trace.texttemplate == "%{z:.2g}" and trace.colorbar.title.text == "Σ α·A"
    assert "Σ α·A = %{z" in trace.hovertemplate
    (big,) = coarse_figure(np.zeros((14, 14), np.float32)).data
    assert big.texttemplate == ""


def test_top_channels_by_magnitude_sorted_by_value() -> None:
    weights = np.array([0.1, -3.0, 2.0, -0.5, 1.0, 0.0], np.float32)
    assert top_channels(weights, 3).tolist() == [2, 4, 1]
    assert top_channels(weights, 99).tolist() == [2, 4, 0, 5, 3, 1]
    with pytest.raises(ValueError, match="positive"):
        top_channels(weights, 0)


def test_weight_bars_carry_channel_values_and_sign_colours() -> None:
    (bars,) = weights_figure(WEIGHTS, count=5, selected=int(np.argmax(WEIGHTS))).data
    chosen = sorted(
        sorted(range(12), key=lambda k: -abs(WEIGHTS[k]))[:5], key=lambda k: -WEIGHTS[k]
    )
    assert list(bars.customdata) == chosen and list(bars.x) == [f"#{k}" for k in chosen]
    np.testing.assert_array_equal(bars.y, WEIGHTS[chosen])
    assert [c == "#d6604d" for c in bars.marker.color] == [WEIGHTS[k] >= 0 for k in chosen]
    assert list(bars.marker.line.width) == [2.5 if k == chosen[0] else 0 for k in chosen]
    assert "channel %{customdata}" in bars.hovertemplate


def test_channel_view_shows_activation_and_contribution() -> None:
    k = 7
    fig = channel_figure(ACTIVATIONS, WEIGHTS, k)
    activation, contribution = fig.data
    np.testing.assert_array_equal(drawn(activation), ACTIVATIONS[k])
    np.testing.assert_array_equal(drawn(contribution), WEIGHTS[k] * ACTIVATIONS[k])
    assert activation.xaxis == "x" and contribution.xaxis == "x2"
    assert f"α<sub>{k}</sub>" in fig.layout.annotations[1].text
    assert default_channel(WEIGHTS) == int(np.argmax(WEIGHTS))
    with pytest.raises(ValueError, match="out of range"):
        channel_figure(ACTIVATIONS, WEIGHTS, 12)
    with pytest.raises(ValueError, match="do not match"):
        channel_figure(ACTIVATIONS, WEIGHTS[:3], 1)
