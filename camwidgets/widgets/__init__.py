"""ipywidgets composition: the Explorer panel around the engine and the figures, and the
gallery that opens an audit's images in it."""

from .explorer import Explorer
from .gallery import Gallery

__all__ = ["Explorer", "Gallery"]
