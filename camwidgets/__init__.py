"""camwidgets: see why a convolutional network decides what it decides.

``GradCAM`` is the cached engine; ``Explorer`` the Jupyter panel built on it. Imports are lazy so
that ``import camwidgets`` stays cheap and the engine never pulls in widget code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import CamResult, GradCAM, Prediction
    from .widgets.explorer import Explorer

__all__ = ["CamResult", "Explorer", "GradCAM", "Prediction"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("GradCAM", "CamResult", "Prediction"):
        from . import engine

        return getattr(engine, name)
    if name == "Explorer":
        from .widgets.explorer import Explorer

        return Explorer
    raise AttributeError(f"module 'camwidgets' has no attribute {name!r}")
