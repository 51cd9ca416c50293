"""The batch engine's data: its requests and results, saved per-agent KV states under a
byte cap, which cached tokens a prompt may keep, and the KV counters.

An agent's view only grows under ECP, so the KV of its last prompt is the best start for
its next one. States not held in a live stream are kept here as the bytes
``llama_state_seq_get_data`` returns; past ``cache_bytes`` the least recently used go
(``KVStats.evictions``), and that agent's next prompt is evaluated from scratch.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SeqRequest:
    """One prompt to complete; ``key`` names whose KV it may keep (the agent), if any."""

    tokens: tuple[int, ...]
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    seed: int
    stop: tuple[str, ...] = ()
    grammar: str | None = None
    key: str | None = None


@dataclass(slots=True)
class SeqResult:
    """What one sequence produced; ``evaluated`` counts prompt tokens actually computed."""

    text: str
    tokens: list[int]
    finish_reason: str
    prompt_tokens: int
    evaluated: int
    error: str = ""


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the common leading run of two token lists."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def reusable_prefix(
    cached: Sequence[int], batched: int, prompt: Sequence[int], n_batch: int
) -> int:
    """How many leading prompt tokens may keep their cached KV, keeping output cold-exact.

    ``batched`` counts the leading cached tokens computed as a cold prompt evaluation
    computes them. llama.cpp on CPU computes a token that is its sequence's only row in a
    call differently, for some weight types (Q8_0: logits off by up to 0.5), from one
    evaluated with others of its sequence; two or more rows agree bit for bit. Generated
    tokens are evaluated alone, and so is a prompt's last token when
    ``len(prompt) % n_batch == 1``. So reuse only batch-computed tokens, and choose the
    cut so the suffix's calls isolate exactly the tokens a cold evaluation isolates.
    Then the same request and seed give the same text whatever ran before.
    """
    n = len(prompt)
    common = 0
    for a, b in zip(cached[:batched], prompt, strict=False):
        if a != b:
            break
        common += 1
    keep = min(common, n - 2)
    if n % n_batch == 1:  # cold evaluates the last token alone: make ours alone too
        keep -= (keep + 1 - n) % n_batch
    elif (n - keep) % n_batch == 1:
        keep -= 1
    return max(keep, 0)


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
    decode_s: float = 0.0  # inside llama_decode (prompt tails and generation steps)
    sample_s: float = 0.0  # inside the samplers (grammar, penalties, top-k ...)
    grammar_redraws: int = 0  # tokens drawn again because the grammar rejected them
    step_s: float = 0.0  # in generation steps (decode and sampling; no prompt evaluation)

    #: Levels, not counts: reported as they are now, not as a difference.
    GAUGES = ("saved_bytes", "peak_saved_bytes")

    def copy(self) -> KVStats:
        return KVStats(*(getattr(self, n) for n in self.__slots__))

    def since(self, base: KVStats) -> KVStats:
        """The counts added after ``base`` was copied (gauges as they are now), so a
        backend reports its own work on an engine other backends share."""
        return KVStats(*(getattr(self, n) if n in self.GAUGES
                         else getattr(self, n) - getattr(base, n) for n in self.__slots__))

    def as_dict(self) -> dict[str, int | float]:
        return {f"kv_{name}": round(v, 3) if isinstance(v := getattr(self, name), float)
                else v for name in self.__slots__}


@dataclass(slots=True)
class _Saved:
    tokens: tuple[int, ...]
    data: bytes


@dataclass(frozen=True, slots=True)
class Saved:
    """One sequence's KV as llama.cpp serialises it, the tokens it holds, and how many of
    them were computed as a cold prompt evaluation computes them (see
    :func:`reusable_prefix`)."""

    tokens: tuple[int, ...]
    data: bytes
    batched: int = 0


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
