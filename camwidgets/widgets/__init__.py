"""ipywidgets composition: the Explorer panel around the engine and the figures."""

from .explorer import Explorer

__all__ = ["Explorer"]
