"""The faithfulness figure and its words, from hand-made curves (no torch, no model)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from camwidgets.figures.faithfulness import (
    CurveBand,
    FaithfulnessView,
    FaithRole,
    faithfulness_figure,
    faithfulness_words,
    judge,
    update_faithfulness,
)

X = np.linspace(0, 1, 11)


def band(kind: str, auc: float, random_aucs: list[float], seed: int = 0) -> CurveBand:
    rng = np.random.default_rng(seed)
    return CurveBand(
        kind=kind,  # type: ignore[arg-type]
        fractions=X,
        scores=rng.uniform(0, 1, X.size),
        random=rng.uniform(0, 1, (len(random_aucs), X.size)),
        auc=auc,
        random_aucs=np.array(random_aucs),
    )


def test_the_demo_case_reads_as_worse_at_deletion_with_the_numbers() -> None:
    # The demo's first scene: deletion AUC 0.188 against random 0.048 (lower is better).
    deletion = band("deletion", 0.188, [0.041, 0.048, 0.055])
    insertion = band("insertion", 0.70, [0.40, 0.45, 0.50])
    assert judge(deletion) == "worse" and judge(insertion) == "better"
    words = faithfulness_words(FaithfulnessView(deletion, insertion, "Grad-CAM", "star"))
    assert "Mixed: worse than all 3 random maps at deletion" in words
    assert "better than all 3 random maps at insertion" in words
    assert "<b>deletion</b> (lower is better): this map <b>0.188</b>" in words
    assert "random maps 0.048 (range 0.041–0.055)" in words
    assert "a deletion AUC above random's is worse at deletion" in words
    assert "<b>insertion</b> (higher is better)" in words and "Why a map can lose" in words


@pytest.mark.parametrize(
    ("kind", "auc", "verdict"),
    [
        ("deletion", 0.01, "better"),
        ("deletion", 0.30, "worse"),
        ("deletion", 0.15, "within"),
        ("insertion", 0.30, "better"),
        ("insertion", 0.01, "worse"),
        ("insertion", 0.15, "within"),
    ],
)
def test_judge_compares_with_every_random_map(kind: str, auc: float, verdict: str) -> None:
    assert judge(band(kind, auc, [0.1, 0.2])) == verdict


def test_figure_draws_the_band_mean_and_map_by_role_and_updates_in_place() -> None:
    view = FaithfulnessView(
        band("deletion", 0.1, [0.2, 0.3, 0.25]), band("insertion", 0.8, [0.5, 0.4, 0.45], 1),
        "Grad-CAM", "star",
    )  # fmt: skip
    fig = faithfulness_figure(view)
    assert fig.layout.width is None and fig.layout.autosize is True  # the container's width
    pairs = ((view.deletion, FaithRole.DELETION_LOW), (view.insertion, FaithRole.INSERTION_LOW))
    for b, first in pairs:
        low, high, mean, drawn = (fig.data[first + k] for k in range(4))
        np.testing.assert_allclose(low.y, b.random.min(axis=0))
        np.testing.assert_allclose(high.y, b.random.max(axis=0))
        np.testing.assert_allclose(mean.y, b.random.mean(axis=0))
        np.testing.assert_allclose(drawn.y, b.scores)
        assert high.fill == "tonexty" and mean.line.dash == "dash"
    assert "lower is better" in fig.layout.annotations[0].text
    assert "higher is better" in fig.layout.annotations[1].text
    widget = go.Figure(fig)
    other = FaithfulnessView(
        band("deletion", 0.5, [0.2, 0.3], 5), band("insertion", 0.1, [0.5, 0.4], 6), "HiResCAM",
        "ring",
    )  # fmt: skip
    traces = [id(t) for t in widget.data]
    update_faithfulness(widget, other)
    assert [id(t) for t in widget.data] == traces
    np.testing.assert_allclose(widget.data[FaithRole.INSERTION_MAP].y, other.insertion.scores)
    np.testing.assert_allclose(widget.data[FaithRole.DELETION_HIGH].y, other.deletion.random.max(0))
    assert "0.500" in widget.layout.annotations[0].text
    assert widget.layout.yaxis.title.text == "p(ring)"


def test_bad_bands_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one random map"):
        CurveBand("deletion", X, X, np.zeros((0, X.size)), 0.1, np.zeros(0))
    with pytest.raises(ValueError, match="same steps"):
        CurveBand("deletion", X, X, np.zeros((2, 3)), 0.1, np.zeros(2))
