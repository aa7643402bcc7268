"""One re-entrant lock per model, shared by every engine that explains it.

An engine call flips the model's train/eval flags, registers forward hooks for one forward
and reads the layers' outputs back: two such calls interleaved on one model (two threads, or
two engines in two threads) would record each other's forwards and restore each other's
flags in the wrong order. Holding the model's lock around those sections makes them atomic;
the lock is re-entrant so an engine method may call another, and weakly keyed so it dies with
the model. The lock does not protect against *other* code training the same model at the same
time: the model is in eval mode while an engine call runs.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from torch import nn

_locks: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_guard = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The process-wide re-entrant lock of ``model`` (created on first use).

    Example:
        >>> from torch import nn
        >>> net = nn.Linear(2, 2)
        >>> with model_lock(net):
        ...     assert model_lock(net) is model_lock(net)
    """
    lock = _locks.get(model)
    if lock is None:
        with _guard:
            lock = _locks.get(model)
            if lock is None:
                lock = _locks[model] = threading.RLock()
    return lock


P = ParamSpec("P")
R = TypeVar("R")


class _HasLock(Protocol):
    _lock: threading.RLock


S = TypeVar("S", bound=_HasLock)


def serialized(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Run a method while holding ``self._lock`` (an engine's model lock)."""

    @functools.wraps(method)
    def locked(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked
