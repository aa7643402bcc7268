"""Property-based: any drawn call, good or bad, gets a finite result or a clear error.

Hypothesis picks the family and the random stream each family draws from (so failures
shrink), derandomized so CI runs the same examples every time; ``benchmarks/fuzz.py`` runs
the same families for 10,000 seeded calls and prints the table.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from camwidgets import GradCAM
from tests.conftest import SIZE, assert_unchanged, snapshot
from tests.engine.fuzzcases import FAMILIES, Files, fresh_engine, judge

SETTINGS = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def engine() -> GradCAM:
    return fresh_engine()


@pytest.fixture(scope="module")
def files() -> Iterator[Files]:
    made = Files()
    yield made
    made.close()


@SETTINGS
@given(family=st.sampled_from(FAMILIES), rng=st.randoms(use_true_random=False))
def test_every_family(engine: GradCAM, files: Files, family: object, rng: random.Random) -> None:
    case = family(rng, files)  # type: ignore[operator]
    outcome = judge(case, engine)
    assert outcome.verdict == "right", (case.family, case.form, outcome)
    assert not outcome.model_changed, (case.family, case.form)
    assert not outcome.pass_before_error, (case.family, case.form, outcome.detail)


FLOATS = st.sampled_from([np.float16, np.float32, np.float64])


@SETTINGS
@given(
    array=hnp.arrays(
        FLOATS,
        st.tuples(st.integers(1, 3), st.just(3), st.integers(1, 12), st.integers(1, 12)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=16),
    )
)
def test_any_float_tensor(engine: GradCAM, array: np.ndarray) -> None:
    """Finite values give finite maps; any NaN/inf gives a ValueError, before any pass."""
    model = engine.model
    before = snapshot(model)
    forwards = engine.cache_info().forwards
    tensor = torch.from_numpy(array.copy())
    if np.isfinite(array).all():
        res = engine.explain(tensor, layer="bn2", target=[0] * array.shape[0])
        assert bool(torch.isfinite(res.heatmap).all()) and res.heatmap.shape[-2:] == (
            array.shape[2],
            array.shape[3],
        )
    else:
        with pytest.raises(ValueError, match="NaN or infinite"):
            engine.explain(tensor)
        assert engine.cache_info().forwards == forwards
    assert_unchanged(model, before)


@SETTINGS
@given(
    shape=st.tuples(st.integers(1, 70), st.integers(1, 70)),
    channels=st.sampled_from([None, 1, 3, 4]),
    dtype=st.sampled_from([np.uint8, np.float32]),
)
def test_any_numpy_picture(
    engine: GradCAM, shape: tuple[int, int], channels: int | None, dtype: type
) -> None:
    size = shape if channels is None else (*shape, channels)
    array = np.random.default_rng(sum(size)).random(size)
    array = (array * 255).astype(np.uint8) if dtype is np.uint8 else array.astype(np.float32)
    long, short = max(shape), min(shape)
    if long > 32 * short:
        with pytest.raises(ValueError, match="proportions"):
            engine.explain(array)
    else:
        res = engine.explain(array, target=1)
        assert res.heatmap.shape == (SIZE, SIZE) and bool(torch.isfinite(res.heatmap).all())
