"""ipywidgets composition: the Explorer panel around the engine and the figures, the Compare
panel around several engines, and the gallery that opens an audit's images in it."""

from .compare import Compare
from .explorer import Explorer
from .gallery import Gallery

__all__ = ["Compare", "Explorer", "Gallery"]
