"""Helpers shared by the widget tests (and only them): reading the panel figure, clicking a
bar as plotly's front end does, counting the engine's model passes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from plotly.callbacks import Points

from camwidgets.engine import GradCAM
from camwidgets.figures import TraceRole, to_grid

R = TraceRole


def grid_of(trace: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, values) of a heat-map trace drawn from (x, y, z) columns."""
    return to_grid(np.asarray(trace.x), np.asarray(trace.y), np.asarray(trace.z))


def strongest(weights: np.ndarray, count: int) -> list[int]:
    """Independently: the ``count`` channels with the largest |alpha|, by alpha, largest first."""
    chosen = sorted(range(weights.size), key=lambda k: -abs(float(weights[k])))[:count]
    return sorted(chosen, key=lambda k: -float(weights[k]))


def assert_figure_shows(fig: Any, result: Any, channel: int | None, bars: int) -> None:
    """The panel figure draws ``result`` (a CamResult from a separate engine) exactly."""
    assert [t.name for t in fig.data] == [r.label for r in TraceRole]
    close = {"rtol": 1e-5, "atol": 1e-6}
    heat = result.heatmap.numpy()
    rows, cols, drawn = grid_of(fig.data[R.HEATMAP])
    assert rows[0] == 0 and rows[-1] == heat.shape[0] - 1
    assert cols[0] == 0 and cols[-1] == heat.shape[1] - 1
    np.testing.assert_allclose(drawn, heat[np.ix_(rows, cols)], **close)
    _, _, coarse = grid_of(fig.data[R.COARSE])
    np.testing.assert_allclose(coarse, result.coarse.numpy(), **close)
    weights = result.weights.numpy()
    k = int(np.argmax(weights)) if channel is None else channel
    activation = result.activations.numpy()[k]
    np.testing.assert_allclose(grid_of(fig.data[R.ACTIVATION])[2], activation, **close)
    contribution = grid_of(fig.data[R.CONTRIBUTION])[2]
    np.testing.assert_allclose(contribution, weights[k] * activation, **close)
    expected = strongest(weights, bars)
    bar = fig.data[R.BARS]
    drawn_channels = [int(c) for c in bar.customdata]
    if len(set(np.abs(weights).tolist())) == weights.size:  # no ties: the very channels
        assert drawn_channels == expected
    else:  # ties in |alpha| (e.g. zeros) may pick other channels with the same values
        assert sorted(weights[drawn_channels].tolist()) == sorted(weights[expected].tolist())
        assert list(weights[drawn_channels]) == sorted(weights[drawn_channels], reverse=True)
    np.testing.assert_allclose(bar.y, weights[drawn_channels], **close)
    assert list(bar.marker.line.width) == [2.5 if c == k else 0 for c in drawn_channels]


def click(fig: Any, bar: int) -> None:
    """Click bar number ``bar`` the way plotly's front-end message handler dispatches it."""
    points = Points(point_inds=[bar], xs=[None], ys=[None], trace_name=None, trace_index=R.BARS)
    fig.data[R.BARS]._dispatch_on_click(points, None)


@contextmanager
def passes(engine: GradCAM, forwards: int, backwards: int | tuple[int, int]) -> Iterator[None]:
    """Assert the block ran ``forwards`` model forwards and ``backwards`` (or a range) backwards."""
    before = engine.cache_info()
    yield
    after = engine.cache_info()
    ran = (after.forwards - before.forwards, after.backwards - before.backwards)
    low, high = backwards if isinstance(backwards, tuple) else (backwards, backwards)
    assert ran[0] == forwards and low <= ran[1] <= high, f"ran {ran} (forwards, backwards)"
