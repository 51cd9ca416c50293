"""Saved per-agent llama.cpp KV states under a byte cap, and the KV counters.

An agent's view only grows under ECP, so the KV of its last prompt is the best start for
its next one. States not held in a live stream are kept here as the bytes
``llama_state_seq_get_data`` returns; past ``cache_bytes`` the least recently used go
(``KVStats.evictions``), and that agent's next prompt is evaluated from scratch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common leading run of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass(slots=True)
class KVStats:
    """Counters of the KV cache, for the manifest and the benchmarks."""

    requests: int = 0
    prompt_tokens: int = 0
    evaluated_tokens: int = 0  # prompt tokens computed (the rest came from kept KV)
    generated_tokens: int = 0
    resident_hits: int = 0  # the agent's KV was still in a stream
    restores: int = 0  # the agent's KV came back from a saved state
    shared_prefixes: int = 0  # prefixes evaluated once for several requests
    saves: int = 0
    evictions: int = 0  # saved states dropped to stay under the cap
    saved_bytes: int = 0
    peak_saved_bytes: int = 0
    decode_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f"kv_{name}": getattr(self, name) for name in self.__slots__}


@dataclass(slots=True)
class _Saved:
    tokens: tuple[int, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Saved:
    """One sequence's KV as llama.cpp serialises it, and the tokens it holds."""

    tokens: tuple[int, ...]
    data: bytes


class SavedStates:
    """Saved states by key, least recently used first, within ``cap`` bytes."""

    def __init__(self, cap: int, stats: KVStats) -> None:
        self.cap, self.stats = cap, stats
        self._items: OrderedDict[str, Saved] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str | None) -> Saved | None:
        """The state saved for ``key`` (now the most recently used), if any."""
        if key is None or key not in self._items:
            return None
        self._items.move_to_end(key)
        return self._items[key]

    def peek(self, key: str | None) -> Saved | None:
        """Like :meth:`get`, without touching the recency order."""
        return None if key is None else self._items.get(key)

    def put(self, key: str, saved: Saved) -> None:
        old = self._items.pop(key, None)
        if old is not None:
            self.stats.saved_bytes -= len(old.data)
        self.stats.saves += 1
        if len(saved.data) > self.cap:
            self.stats.evictions += 1
            return
        self._items[key] = saved
        self.stats.saved_bytes += len(saved.data)
        while self.stats.saved_bytes > self.cap:
            _, dropped = self._items.popitem(last=False)
            self.stats.saved_bytes -= len(dropped.data)
            self.stats.evictions += 1
        self.stats.peak_saved_bytes = max(self.stats.peak_saved_bytes, self.stats.saved_bytes)

    def clear(self) -> None:
        self._items.clear()
        self.stats.saved_bytes = 0
