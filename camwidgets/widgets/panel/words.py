"""The map in words: ``camwidgets.describe`` of the view, when channel names are loaded."""

from __future__ import annotations

import html

import ipywidgets as w

from ..controls import method_name
from .base import Section, Shown


class WordsSection(Section):
    """A line under the chart saying what the map's strongest named channels detect; hidden
    when no names are loaded for the layer (or they are switched off)."""

    name = "words"

    def __init__(self) -> None:
        self.widget = w.HTML(layout=w.Layout(display="none"))

    def show(self, shown: Shown) -> None:
        """Describe the result with the layer's names, or hide the line."""
        said = words_html(shown)
        self.widget.value = said
        self.widget.layout.display = None if said else "none"


def words_html(shown: Shown) -> str:
    """``describe`` of the view as a line of HTML, when names for the layer are loaded."""
    state, result = shown.state, shown.result
    table = shown.names.get(state.layer)
    if table is None or not state.names:
        return ""
    if result.weights is None:
        return (
            f"<i>{html.escape(method_name(result.method))} has no channel weights: no "
            "explanation in words for this method.</i>"
        )
    from ...naming import describe

    said = describe(result, table, k=3, classes=shown.engine.classes)
    return f'<span style="font-size:13px">💬 {html.escape(said.sentence)}</span>'
