"""camwidgets: see why a neural network decides what it decides.

``GradCAM`` is the cached engine; ``Explorer`` the Jupyter panel built on it; ``zoo`` the teaching
models and scenes that ship. Imports are lazy so that ``import camwidgets`` stays cheap and the
engine never pulls in widget code; ``dir(camwidgets)`` lists every public name all the same.

>>> import camwidgets
>>> "GradCAM" in dir(camwidgets) and "Explorer" in dir(camwidgets)
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import attacks, audit, metrics, naming, targets, zoo
    from .audit.results import Audit
    from .engine import CamResult, GradCAM, Prediction
    from .naming import ChannelNames, describe, dissect
    from .widgets.compare import Compare
    from .widgets.explorer import Explorer

__version__ = "0.1.0"

# public name -> (module to import, attribute in it, or None for the module itself)
_LAZY: dict[str, tuple[str, str | None]] = {
    "GradCAM": (".engine", "GradCAM"),
    "CamResult": (".engine", "CamResult"),
    "Prediction": (".engine", "Prediction"),
    "Explorer": (".widgets.explorer", "Explorer"),
    "Compare": (".widgets.compare", "Compare"),
    "zoo": (".zoo", None),
    "attacks": (".attacks", None),
    "targets": (".targets", None),
    "naming": (".naming", None),
    "metrics": (".metrics", None),
    "audit": (".audit", None),
    "Audit": (".audit.results", "Audit"),
    "dissect": (".naming", "dissect"),
    "describe": (".naming", "describe"),
    "ChannelNames": (".naming", "ChannelNames"),
}

__all__ = [
    "Audit",
    "CamResult",
    "ChannelNames",
    "Compare",
    "Explorer",
    "GradCAM",
    "Prediction",
    "attacks",
    "audit",
    "describe",
    "dissect",
    "metrics",
    "naming",
    "targets",
    "zoo",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'camwidgets' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
