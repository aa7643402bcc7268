"""The channel weights alpha as a bar chart: the top channels by |alpha|, sorted by value."""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .part import TICK_FONT, TICK_FORMAT, Part, compose

POSITIVE, NEGATIVE = "#d6604d", "#4393c3"


def top_channels(weights: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` channels with the largest |alpha|, sorted by alpha, largest first."""
    if weights.ndim != 1:
        raise ValueError(f"weights must be (K,), got shape {weights.shape}")
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    count = min(count, weights.size)
    strongest = np.argpartition(-np.abs(weights), count - 1)[:count]
    # Stable order on ties: by value, then by channel index.
    return strongest[np.lexsort((strongest, -weights[strongest]))]


def weights_part(
    weights: np.ndarray,
    count: int = 20,
    selected: int | None = None,
    hint: str = "",
    names: Sequence[str] | None = None,
) -> Part:
    """Bars of alpha for the top ``count`` channels; ``selected`` gets an outline.

    Each bar's ``customdata`` is its channel index, so a click handler knows the channel.

    Args:
        hint: added to the title (e.g. "click a bar" where clicking does something).
        names: one name per channel ("" for unnamed), shown when hovering a bar.
    """
    if names is not None and len(names) != weights.size:
        raise ValueError(f"got {len(names)} channel names for {weights.size} channels")
    channels = top_channels(weights, count)
    values = np.ascontiguousarray(weights[channels], dtype=np.float32)
    # Arrays rather than lists: numeric ones travel as binary, and updates skip re-validating
    # them element by element (see ``part.apply``).
    trace = {
        "type": "bar",
        "x": np.array([f"#{k}" for k in channels]),
        "y": values,
        "customdata": channels.astype(np.int32),
        "marker": {
            "color": np.where(values >= 0, POSITIVE, NEGATIVE),
            "line": {
                "width": np.where(channels == selected, 2.5, 0).astype(np.float32),
                "color": "black",
            },
        },
        "hovertemplate": "channel %{customdata}<br>α = %{y:.4g}%{hovertext}<extra></extra>",
        # Always present (empty without names) so the trace keeps one shape across updates.
        "hovertext": np.array(
            [f"<br><i>{html.escape(names[k])}</i>" if names and names[k] else "" for k in channels]
        ),
    }
    hinted = f" · {hint}" if hint else ""
    return Part(
        traces=[trace],
        xaxis={"type": "category", "tickfont": {"size": TICK_FONT}},
        yaxis={
            "title": {"text": "α<sub>k</sub>"},
            "zeroline": True,
            "zerolinecolor": "#999",
            "tickformat": TICK_FORMAT,
            "tickfont": {"size": TICK_FONT},
        },
        title=f"channel weights α · top {channels.size} of {weights.size} by |α|{hinted}",
    )


def weights_figure(weights: np.ndarray, count: int = 20, selected: int | None = None) -> go.Figure:
    """A standalone figure of ``weights_part``."""
    return compose([weights_part(weights, count, selected)], top=1)
