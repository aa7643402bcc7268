"""The panel's layout: what sits where in its outer box, top to bottom."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as w

from ..controls import Controls
from ..figure_widget import FigureWidget
from .base import Section
from .status import Lines


def arrange(
    controls: Controls, lines: Lines, figure: FigureWidget, sections: Sequence[Section]
) -> list[w.Widget]:
    """Controls, the busy and error lines, the chart, each section in order, the status line."""
    return [
        controls.box(),
        lines.busy,
        lines.error,
        figure,
        *(section.widget for section in sections),
        lines.status,
    ]


def root_layout() -> w.Layout:
    """The outer box spans the output's width and may shrink below its content's."""
    return w.Layout(width="100%", min_width="0")
