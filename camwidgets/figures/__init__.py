"""Plotly figures of Grad-CAM results: numpy arrays in, ``go.Figure`` out (never torch).

Each figure is made of ``Part``s; ``compose`` lays parts out and ``apply`` updates a figure (or a
``go.FigureWidget``) built from parts of the same shape in place.
"""

from .channels import activation_part, channel_figure, contribution_part, default_channel
from .coarse import coarse_figure, coarse_part
from .grid import columns, positions, to_grid
from .overlay import COLORSCALES, overlay_figure, overlay_part
from .panel import PanelView, TraceRole, panel_figure, panel_parts, update_panel
from .part import Part, apply, compose
from .png import png_data_uri
from .weights import top_channels, weights_figure, weights_part

__all__ = [
    "COLORSCALES",
    "PanelView",
    "Part",
    "TraceRole",
    "activation_part",
    "apply",
    "channel_figure",
    "coarse_figure",
    "coarse_part",
    "columns",
    "compose",
    "contribution_part",
    "default_channel",
    "overlay_figure",
    "overlay_part",
    "panel_figure",
    "panel_parts",
    "png_data_uri",
    "positions",
    "to_grid",
    "top_channels",
    "update_panel",
    "weights_figure",
    "weights_part",
]
