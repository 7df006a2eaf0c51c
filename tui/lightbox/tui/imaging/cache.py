"""Byte-budgeted LRU caches for thumbnails (JPEG bytes) and encoded images.

Two levels, because they answer different questions: the bytes cache saves a round trip to
the daemon when the same photo is shown at another size or in another mode, the encoded
cache saves the encoding (the expensive part) when a photo comes back into view. Budgets are
in bytes, so a folder of 10,000 photos scrolled end to end keeps memory flat.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, budget: int, weigh: Callable[[V], int]) -> None:
        self.budget = budget
        self._weigh = weigh
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self.used = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        got = self._items.get(key)
        if got is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return got[0]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def put(self, key: K, value: V) -> None:
        weight = self._weigh(value)
        old = self._items.pop(key, None)
        if old is not None:
            self.used -= old[1]
        if weight > self.budget:
            return
        self._items[key] = (value, weight)
        self.used += weight
        while self.used > self.budget and self._items:
            _, (_, w) = self._items.popitem(last=False)
            self.used -= w

    def discard(self, predicate: Callable[[K], bool]) -> int:
        doomed = [k for k in self._items if predicate(k)]
        for k in doomed:
            self.used -= self._items.pop(k)[1]
        return len(doomed)

    def clear(self) -> None:
        self._items.clear()
        self.used = 0

    def keys(self) -> Iterator[K]:
        return iter(list(self._items))
