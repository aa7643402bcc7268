"""A least-recently-used mapping bounded by bytes, and a stamp of a model's parameter versions.

The cache holds forwards and gradients computed with the model's weights *at that time*.
``ModelStamp`` says cheaply whether any parameter or buffer may have changed since: it reads
PyTorch's per-tensor version counters (bumped by every in-place write: ``param.add_``,
``load_state_dict``, optimizer steps) and storage addresses (changed by ``model.to()``,
``.half()``, ``param.data = ...``), and re-lists the tensors only after torch registered a
parameter, buffer or submodule anywhere (``model.fc = nn.Linear(...)``, a new ``Parameter``).
No weight is ever read or hashed, so a check costs microseconds.

Not seen (as by autograd itself): writes through ``.data`` (``p.data.add_(1)``) or a numpy
view, which bypass the version counters; call ``GradCAM.clear_cache()`` after those.
"""

from __future__ import annotations

import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from operator import attrgetter
from typing import Generic, TypeVar

import torch
from torch import nn
from torch.nn.modules import module as torch_module

K = TypeVar("K")
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """LRU cache whose bound is a byte budget; sizes are asked of the values when evicting.

    Sizes are read through ``size_of`` at eviction time because entries grow after insertion
    (gradients per class are added to an image's entry). The most recently used entry is never
    evicted, even when it alone exceeds the budget: the caller is still using it. With a
    ``stamp``, ``validate()`` compares it with the one the entries were made under and drops
    them all when it differs (the owner calls it once per operation, before its lookups).
    Safe to share between threads.

    Example:
        >>> cache = ByteLRU(100, size_of=len)
        >>> cache.put("a", b"x" * 60); cache.put("b", b"y" * 60)
        >>> "a" in cache, "b" in cache
        (False, True)
    """

    def __init__(
        self,
        max_bytes: int,
        size_of: Callable[[V], int],
        stamp: Callable[[], Hashable] | None = None,
    ) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"cache_bytes must be a positive number of bytes, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[K, V] = OrderedDict()
        self._stamp = stamp
        self._stamped: Hashable = stamp() if stamp is not None else None
        self._lock = threading.RLock()
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    def get(self, key: K) -> V | None:
        """Return the value for ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return value

    def validate(self) -> bool:
        """Drop every entry if the stamp changed since they were made; True if they are valid."""
        if self._stamp is None:
            return True
        with self._lock:
            now = self._stamp()
            if now == self._stamped:
                return True
            self._stamped = now
            if self._items:
                self.invalidations += 1
            self._items.clear()
            return False

    def put(self, key: K, value: V) -> None:
        """Insert ``value`` as the most recently used entry, then evict to the budget."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            self.shrink()

    def shrink(self) -> None:
        """Evict least recently used entries until the total fits (the newest always stays)."""
        with self._lock:
            while len(self._items) > 1 and self.nbytes > self.max_bytes:
                # Dropping the last reference frees the entry's tensors and its retained graph.
                self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Total bytes held by all entries."""
        with self._lock:
            return sum(self._size_of(v) for v in self._items.values())

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items


# -- model stamps ------------------------------------------------------------------------------

# Set to a fresh number whenever torch registers a parameter, buffer or submodule on any module
# of the process (Module.__setattr__ and register_* call these global hooks); a stamp then
# re-lists its tensors. Numbers from itertools.count are unique even across threads, so any
# registration after a stamp read the value leaves a different one.
_numbers = itertools.count(1)
_registration = [0]
_hooks_lock = threading.Lock()
_hooks_installed = False


def _registered(*_: object) -> None:
    """Global registration hook: note that some module's parameters or children changed."""
    _registration[0] = next(_numbers)


def _install_hooks() -> None:
    """Install the three global registration hooks once per process (they return None)."""
    global _hooks_installed
    with _hooks_lock:
        if not _hooks_installed:
            torch_module.register_module_parameter_registration_hook(_registered)
            torch_module.register_module_buffer_registration_hook(_registered)
            torch_module.register_module_module_registration_hook(_registered)
            _hooks_installed = True


_version = attrgetter("_version")
_data_ptr = torch.Tensor.data_ptr


class ModelStamp:
    """A value that changes whenever a model's parameters or buffers may have changed.

    ``stamp()`` returns (which list of tensors, sum of version counters, storage addresses).
    Version counters only grow, so their sum changes with any in-place write to any listed
    tensor; the list is numbered anew whenever the tensors' identities differ from the last.

    Example:
        >>> model = nn.Linear(2, 2)
        >>> stamp = ModelStamp(model)
        >>> before = stamp()
        >>> with torch.no_grad():
        ...     _ = model.weight.mul_(2)
        >>> stamp() == before
        False
    """

    def __init__(self, model: nn.Module) -> None:
        _install_hooks()
        self._model = model
        self._seen = -1
        self._tensors: tuple[torch.Tensor, ...] = ()
        self._ids: tuple[int, ...] = ()
        self._listing = 0  # bumped when the listed tensors' identities change
        self._lock = threading.Lock()

    def _relist(self) -> None:
        """List every parameter and buffer (shared ones once), noting their identities."""
        seen = _registration[0]
        tensors: dict[int, torch.Tensor] = {}
        for module in self._model.modules():
            for group in (module._parameters, module._buffers):
                for tensor in group.values():
                    if tensor is not None:
                        tensors.setdefault(id(tensor), tensor)
        ids = tuple(tensors)
        if ids != self._ids:
            self._listing += 1
        self._tensors = tuple(tensors.values())
        self._ids = ids
        self._seen = seen

    def __call__(self) -> Hashable:
        with self._lock:
            if self._seen != _registration[0]:
                self._relist()
            tensors = self._tensors
            return (self._listing, sum(map(_version, tensors)), tuple(map(_data_ptr, tensors)))
