"""The class resolver the panel uses: the engine's own, so both say the same (engine/classnames)."""

from __future__ import annotations

from ..engine.classnames import check_index, resolve_class, suggestions

__all__ = ["check_index", "resolve_class", "suggestions"]
