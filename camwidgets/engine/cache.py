"""A least-recently-used mapping bounded by the bytes its values hold."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class ByteLRU(Generic[K, V]):
    """LRU cache whose bound is a byte budget; sizes are asked of the values when evicting.

    Sizes are read through ``size_of`` at eviction time because entries grow after insertion
    (gradients per class are added to an image's entry). The most recently used entry is never
    evicted, even when it alone exceeds the budget: the caller is still using it.
    """

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        if max_bytes <= 0:
            raise ValueError(f"cache_bytes must be a positive number of bytes, got {max_bytes}")
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[K, V] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        """Return the value for ``key`` (marking it recently used), or None."""
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Insert ``value`` as the most recently used entry, then evict to the budget."""
        self._items[key] = value
        self._items.move_to_end(key)
        self.shrink()

    def shrink(self) -> None:
        """Evict least recently used entries until the total fits (the newest always stays)."""
        while len(self._items) > 1 and self.nbytes > self.max_bytes:
            # Dropping the last reference frees the entry's tensors and its retained graph.
            self._items.popitem(last=False)

    @property
    def nbytes(self) -> int:
        """Total bytes held by all entries."""
        return sum(self._size_of(v) for v in self._items.values())

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items
