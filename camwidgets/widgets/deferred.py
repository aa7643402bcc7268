"""Defer ``import nbformat`` until nbformat is used: plotly's widget imports it only in case.

plotly's ``FigureWidget`` module imports plotly's renderers, which import nbformat at once,
only to check its version when a figure is later shown as a static mime bundle (never for a
widget). nbformat imports jsonschema, whose format checkers build an RFC 3987 parser with lark:
about 2 s of CPU, more than the rest of the Explorer's imports together, and paid again by every
kernel a class opens. :func:`defer_module` puts a stand-in in ``sys.modules`` that holds the real
module's spec and package path (so the import system can find it and its submodules without
running it) and loads the real module on the first attribute read, for whoever uses it.

(importlib's ``LazyLoader`` does not serve here: the import system itself reads ``__spec__``
when plotly calls ``importlib.import_module("nbformat")``, and that read loads a lazy module.)
A submodule import (``import nbformat.v4``) while the stand-in is in place first imports the
real package, as Python always does, so the package's own imports run in their usual order and
no module is loaded twice (:class:`_PackageFirst`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Sequence
from typing import Any

__all__ = ["defer_module"]

_LOCK = threading.RLock()


class _Deferred(types.ModuleType):
    """Stands in ``sys.modules`` for a module until an attribute it lacks is read."""

    def __getattr__(self, attr: str) -> Any:
        # Called only for attributes the stand-in lacks: everything but the spec, the name,
        # the loader and the package path.
        return getattr(_load(self), attr)


def _load(stand_in: _Deferred) -> types.ModuleType:
    """Import the real module in the stand-in's place, and let the stand-in forward to it."""
    name = stand_in.__name__
    with _LOCK:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        # Copy the real namespace so later reads through the stand-in (a reference that plotly
        # keeps) are plain attribute reads.
        stand_in.__dict__.update(real.__dict__)
    return real


class _Existing(importlib.abc.Loader):
    """Hands the import system a module that is already loaded, unchanged."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set its own spec on the module


class _PackageFirst(importlib.abc.MetaPathFinder):
    """Loads a deferred package before any of its submodules, as a normal import would."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        package, dot, _ = fullname.partition(".")
        stand_in = sys.modules.get(package)
        if not dot or not isinstance(stand_in, _Deferred):
            return None
        _load(stand_in)
        existing = sys.modules.get(fullname)
        if existing is None:  # the package did not import it: the usual finders will
            return None
        return importlib.util.spec_from_loader(fullname, _Existing(existing))


_FINDER = _PackageFirst()


def defer_module(name: str) -> bool:
    """Put a deferred stand-in for top-level package ``name`` in ``sys.modules``.

    Args:
        name: the package, e.g. "nbformat".

    Returns:
        Whether a stand-in was installed (False: already imported, or not installed).

    Example:
        >>> import sys
        >>> defer_module("json") or "json" in sys.modules
        True
    """
    if name in sys.modules:
        return False
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return False
    stand_in = _Deferred(name)
    stand_in.__spec__ = spec
    stand_in.__loader__ = spec.loader
    stand_in.__package__ = spec.parent
    if spec.submodule_search_locations is not None:
        stand_in.__path__ = list(spec.submodule_search_locations)
    with _LOCK:
        if not any(finder is _FINDER for finder in sys.meta_path):
            sys.meta_path.insert(0, _FINDER)
        sys.modules[name] = stand_in
    return True
