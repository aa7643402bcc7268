"""Maps as (x, y, z) columns: exact values, compact dtypes, and the way back."""

from __future__ import annotations

import numpy as np
import pytest

from camwidgets.figures import columns, positions, to_grid


def test_positions_keep_both_ends_and_are_evenly_spread() -> None:
    assert positions(5).tolist() == [0, 1, 2, 3, 4]
    assert positions(5, 10).tolist() == [0, 1, 2, 3, 4]
    picked = positions(224, 80)
    assert picked.size == 80 and picked[0] == 0 and picked[-1] == 223
    assert set(np.diff(picked)) <= {2, 3}
    with pytest.raises(ValueError, match="positive"):
        positions(0)
    with pytest.raises(ValueError, match="at least 2"):
        positions(10, 1)


def test_columns_copy_values_exactly_in_row_major_order() -> None:
    values = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    x, y, z = columns(values)
    assert x.tolist() == [0, 1, 2, 3] * 3 and y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    np.testing.assert_array_equal(z, values.ravel())
    # 1-D float32 and small unsigned ints: plotly sends these as binary buffers.
    assert (x.ndim, y.ndim, z.ndim) == (1, 1, 1)
    assert z.dtype == np.float32 and x.dtype == y.dtype == np.uint8


def test_columns_sample_and_round_trip() -> None:
    values = np.arange(300 * 200, dtype=np.float64).reshape(300, 200)
    rows, cols = positions(300, 7), positions(200, 5)
    x, y, z = columns(values, rows, cols)
    assert x.dtype == np.uint16 and z.dtype == np.float32
    back_rows, back_cols, grid = to_grid(x, y, z)
    np.testing.assert_array_equal(back_rows, rows)
    np.testing.assert_array_equal(back_cols, cols)
    np.testing.assert_array_equal(grid, values[np.ix_(rows, cols)].astype(np.float32))
    with pytest.raises(ValueError, match="2-D"):
        columns(np.zeros(3))
