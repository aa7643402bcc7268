"""The randomisation sanity check as curves: similarity to the trained model's map after each
randomisation step, head first (Adebayo et al. 2018, their Figure 2 as lines)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from .part import FONT, TICK_FONT, TITLE_FONT

COLORS = ("#c44e52", "#4c72b0", "#55a868", "#8172b3", "#dd8452", "#937860")
MEASURES = {"spearman": "solid", "ssim": "dash", "topk": "dot"}
LABELS = {"spearman": "Spearman", "ssim": "SSIM", "topk": "top-10 % overlap"}


def sanity_figure(
    steps: Sequence[str],
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    title: str = "",
    threshold: float | None = 0.3,
    height: int = 360,
) -> go.Figure:
    """Lines of each method's similarity to its original map, one point per step.

    Args:
        steps: the module groups randomised at each step, head first (the x axis).
        curves: method label -> measure ("spearman", "ssim", "topk") -> values per step.
        title: the figure's title.
        threshold: draw the pass line (mean Spearman below it passes); None: none.
        height: in pixels.

    Returns:
        A complete figure (wrap it in a FigureWidget as it is).
    """
    x = [f"{i + 1}. {name or '(own parameters)'}" for i, name in enumerate(steps)]
    traces = []
    for index, (method, measures) in enumerate(curves.items()):
        color = COLORS[index % len(COLORS)]
        for measure, values in measures.items():
            if len(values) != len(steps):
                raise ValueError(f"{method} {measure}: {len(values)} values for {len(steps)} steps")
            traces.append(
                go.Scatter(
                    x=x,
                    y=list(values),
                    mode="lines+markers",
                    name=f"{method} · {LABELS.get(measure, measure)}",
                    line={"color": color, "dash": MEASURES.get(measure, "solid"), "width": 2},
                    marker={"size": 6},
                    hovertemplate=(
                        f"{method}<br>after %{{x}}<br>{measure} %{{y:.3f}}<extra></extra>"
                    ),
                )
            )
    fig = go.Figure(data=traces)
    if threshold is not None:
        fig.add_hline(
            y=threshold,
            line={"color": "#999", "dash": "dot", "width": 1},
            annotation_text=f"pass line {threshold:g} (mean Spearman)",
            annotation_font_size=TICK_FONT,
        )
    fig.update_layout(
        title={
            "text": title,
            "font": {"size": TITLE_FONT},
            "x": 0.5,
            "xanchor": "center",
            "y": 0.98,
            "yref": "container",
            "yanchor": "top",
        },
        height=height,
        margin={"l": 56, "r": 24, "t": 88, "b": 96},
        font={"size": FONT},
        plot_bgcolor="white",
        xaxis={
            "title": {"text": "randomised up to (head first, cascading)"},
            "tickangle": -30,
            "tickfont": {"size": TICK_FONT},
            "showgrid": False,
        },
        yaxis={
            "title": {"text": "similarity to the trained model's map"},
            "range": [-1.05, 1.05],
            "zeroline": True,
            "zerolinecolor": "#ccc",
            "gridcolor": "#eee",
            "tickfont": {"size": TICK_FONT},
        },
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 11}},
    )
    return fig
