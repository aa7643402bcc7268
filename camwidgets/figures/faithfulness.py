"""The faithfulness readout: a map's deletion and insertion curves against random maps' band,
and the verdict in words.

Deletion removes the pixels the map ranks highest first and watches the class probability
fall: the lower the area under that curve, the more the map's pixels mattered. Insertion
starts from a blurred picture and puts the map's pixels back first: the higher the area, the
better. A map is judged against random maps of the same image (the band spans their curves,
min to max, with their mean dashed): "better" means better than every random map, "worse"
worse than every one, anything else is within the random maps' range.

Pure numpy + plotly (no torch): the panel turns ``camwidgets.metrics`` results into
``FaithfulnessView`` and draws it with ``faithfulness_figure`` / ``update_faithfulness``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = [
    "CurveBand",
    "FaithRole",
    "FaithfulnessView",
    "faithfulness_figure",
    "faithfulness_words",
    "judge",
    "update_faithfulness",
]

Verdict = Literal["better", "within", "worse"]

MAP_COLOUR = {"deletion": "#c0392b", "insertion": "#1f5fbf"}
BAND_COLOUR = "rgba(120,120,120,0.28)"
HEIGHT = 300


@dataclass(frozen=True)
class CurveBand:
    """One kind of curve of a map, and the same curve of each random map.

    Attributes:
        kind: "deletion" or "insertion".
        fractions: share of pixels changed at each step, (S + 1,).
        scores: the map's class probability at each step, (S + 1,).
        random: each random map's probability at each step, (R, S + 1).
        auc: the map's area under the curve.
        random_aucs: each random map's area, (R,).
    """

    kind: Literal["deletion", "insertion"]
    fractions: np.ndarray
    scores: np.ndarray
    random: np.ndarray
    auc: float
    random_aucs: np.ndarray

    def __post_init__(self) -> None:
        steps = np.shape(self.fractions)
        if np.shape(self.scores) != steps or np.ndim(self.random) != 2:
            raise ValueError("scores must match fractions, and random be (runs, steps)")
        if np.shape(self.random)[1:] != steps or len(self.random_aucs) != len(self.random):
            raise ValueError("every random curve needs the same steps and one AUC")
        if len(self.random) == 0:
            raise ValueError("need at least one random map to compare with")

    @property
    def lower_is_better(self) -> bool:
        """Deletion: lower is better; insertion: higher is better."""
        return self.kind == "deletion"


@dataclass(frozen=True)
class FaithfulnessView:
    """What the readout shows: both curves of one map, the method and the class explained."""

    deletion: CurveBand
    insertion: CurveBand
    method: str
    target: str


class FaithRole(IntEnum):
    """Trace roles of the faithfulness figure, in trace order."""

    DELETION_LOW = 0
    DELETION_HIGH = 1
    DELETION_MEAN = 2
    DELETION_MAP = 3
    INSERTION_LOW = 4
    INSERTION_HIGH = 5
    INSERTION_MEAN = 6
    INSERTION_MAP = 7


def judge(band: CurveBand) -> Verdict:
    """``better`` than every random map, ``worse`` than every one, or ``within`` their range."""
    low, high = float(np.min(band.random_aucs)), float(np.max(band.random_aucs))
    if band.lower_is_better:
        return "better" if band.auc < low else "worse" if band.auc > high else "within"
    return "better" if band.auc > high else "worse" if band.auc < low else "within"


def _title(band: CurveBand) -> str:
    """A subplot's title: the kind, which way is better, the AUCs."""
    which = "lower is better" if band.lower_is_better else "higher is better"
    return (
        f"<b>{band.kind}</b> ({which}): map AUC <b>{band.auc:.3f}</b>, "
        f"random {float(np.mean(band.random_aucs)):.3f}"
    )


def _traces(band: CurveBand, first: bool) -> list[go.Scatter]:
    """Band low, band high (filled down to low), random mean, the map: one subplot's traces."""
    x = np.asarray(band.fractions, dtype=np.float64)
    random = np.asarray(band.random, dtype=np.float64)
    runs = len(random)
    group = {"legendgroup": "random", "showlegend": False}
    return [
        go.Scatter(x=x, y=random.min(axis=0), mode="lines", line={"width": 0},
                   hoverinfo="skip", name="random maps, lowest", **group),
        go.Scatter(x=x, y=random.max(axis=0), mode="lines", line={"width": 0},
                   fill="tonexty", fillcolor=BAND_COLOUR, legendgroup="random",
                   showlegend=first, name=f"random maps (min–max of {runs})",
                   hovertemplate="random maps up to %{y:.3f}<extra></extra>"),
        go.Scatter(x=x, y=random.mean(axis=0), mode="lines",
                   line={"color": "#666", "dash": "dash", "width": 1.5},
                   legendgroup="mean", showlegend=first, name="random maps, mean",
                   hovertemplate="random mean %{y:.3f}<extra></extra>"),
        go.Scatter(x=x, y=np.asarray(band.scores, dtype=np.float64), mode="lines",
                   line={"color": MAP_COLOUR[band.kind], "width": 2.5},
                   name=f"this map ({band.kind})",
                   hovertemplate="%{x:.0%} changed: p %{y:.3f}<extra>this map</extra>"),
    ]  # fmt: skip


def faithfulness_figure(view: FaithfulnessView, width: int | None = None) -> go.Figure:
    """Deletion (left) and insertion (right) curves of the map over the random maps' band.

    Built whole (every trace and title present) so it can be wrapped in a FigureWidget and
    later updated in place with :func:`update_faithfulness`. Without ``width`` it follows its
    container's width.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(_title(view.deletion), _title(view.insertion)),
        horizontal_spacing=0.09,
    )
    for col, band in ((1, view.deletion), (2, view.insertion)):
        for trace in _traces(band, first=col == 1):
            fig.add_trace(trace, row=1, col=col)
        verb = "removed" if band.kind == "deletion" else "restored"
        fig.update_xaxes(title_text=f"share of pixels {verb}, map's highest first",
                         tickformat=".0%", range=[0, 1], row=1, col=col)  # fmt: skip
        fig.update_yaxes(title_text=f"p({view.target})" if col == 1 else None,
                         range=[0, 1.02], row=1, col=col)  # fmt: skip
    for annotation in fig.layout.annotations:
        annotation.font = {"size": 13}
    fig.update_layout(
        height=HEIGHT,
        width=width,
        autosize=width is None,
        margin={"l": 60, "r": 20, "t": 40, "b": 90},
        legend={"orientation": "h", "x": 0.0, "y": -0.32, "xanchor": "left"},
        font={"size": 12},
        hovermode="x",
        template="plotly_white",
    )
    return fig


def update_faithfulness(fig: Any, view: FaithfulnessView) -> None:
    """Show ``view`` in a figure built by :func:`faithfulness_figure`, in place."""
    with fig.batch_update():
        for band, first, offset in ((view.deletion, True, 0), (view.insertion, False, 4)):
            for k, trace in enumerate(_traces(band, first)):
                target = fig.data[offset + k]
                target.x, target.y, target.name = trace.x, trace.y, trace.name
        fig.layout.annotations[0].text = _title(view.deletion)
        fig.layout.annotations[1].text = _title(view.insertion)
        fig.layout.yaxis.title.text = f"p({view.target})"


_SAYS = {
    ("deletion", "better"): (
        "removing the pixels this map ranks highest lowers the probability faster than "
        "removing random pixels: they matter to the model"
    ),
    ("deletion", "worse"): (
        "removing the pixels this map ranks highest lowers the probability <b>more slowly</b> "
        "than removing random pixels: a deletion AUC above random's is worse at deletion"
    ),
    ("deletion", "within"): "no clearer than removing random pixels",
    ("insertion", "better"): (
        "restoring this map's pixels first brings the probability back faster than "
        "restoring random pixels"
    ),
    ("insertion", "worse"): (
        "restoring this map's pixels first brings the probability back <b>more slowly</b> "
        "than restoring random pixels"
    ),
    ("insertion", "within"): "no clearer than restoring random pixels",
}

_SUMMARY = {
    ("better", "better"): "More faithful than every random map on both curves.",
    ("worse", "worse"): "Less faithful than every random map on both curves.",
    ("within", "within"): "Not distinguishable from random maps on either curve.",
}


def faithfulness_words(view: FaithfulnessView) -> str:
    """The per-image verdict as HTML: a summary, then each curve's AUCs and what they mean."""
    verdicts = (judge(view.deletion), judge(view.insertion))
    runs = len(view.deletion.random)
    summary = _SUMMARY.get(verdicts)
    if summary is None:
        parts = [
            f"{word} than all {runs} random maps at {kind}"
            if word != "within"
            else f"within the random maps' range at {kind}"
            for kind, word in zip(("deletion", "insertion"), verdicts, strict=True)
        ]
        summary = "Mixed: " + "; ".join(parts) + "."
    lines = []
    for band, verdict in zip((view.deletion, view.insertion), verdicts, strict=True):
        aucs = band.random_aucs
        which = "lower is better" if band.lower_is_better else "higher is better"
        lines.append(
            f"<li><b>{band.kind}</b> ({which}): this map <b>{band.auc:.3f}</b>, random maps "
            f"{float(np.mean(aucs)):.3f} (range {float(np.min(aucs)):.3f}–"
            f"{float(np.max(aucs)):.3f}) · {_SAYS[(band.kind, verdict)]}.</li>"
        )
    note = ""
    if verdicts[0] == "worse":
        note = (
            "<div style='color:#555'>Why a map can lose at deletion: random maps scatter the "
            "removed pixels over the whole picture, which can wreck it for the model sooner "
            "than removing one compact region; compare with insertion before trusting either."
            "</div>"
        )
    return (
        f"<div style='font-size:13px;line-height:1.45'>"
        f"<b>Faithfulness of this {html.escape(view.method)} map for "
        f"{html.escape(view.target)}</b>, against {runs} random maps: {summary}"
        f"<ul style='margin:2px 0 2px 1.2em;padding:0'>{''.join(lines)}</ul>{note}</div>"
    )
