"""Batched, KV-keeping decoding on llama.cpp's low-level API: the embedded fast path.

One llama context holds ``parallel`` KV *streams* (``kv_unified = False``: each sequence
attends only to its own cells, laid out from cell 0 as a cold evaluation lays them out).
A tick's requests run as continuous batches: each request takes a free stream, evaluates
only the part of its prompt whose KV is not already there (the agent's own last view,
resident or restored from a saved state, or a prefix it shares with other requests of
the tick), and then every unfinished sequence advances one token per ``llama_decode``.

Why the output does not depend on what else ran: with flash attention off, llama.cpp's
CPU kernels give a token's KV and logits bit for bit whatever the split of its prompt
into calls, the other rows in its batch, or its stream (measured: logits differ by 0.0;
with flash attention on, re-splitting a prompt moves them by up to 1.2). So keeping KV
changes no text: the same request and seed give the same text in any order, alone or
batched (``tests/test_llamacpp_batch.py`` checks it on the machine it runs on).

Saved states (``llama_state_seq_get_data``) live in host memory under a byte cap with
LRU eviction; :class:`KVStats` counts reuse, restores and evictions.

Checked against llama-cpp-python 0.3.36 (:data:`CHECKED_VERSIONS`); this module,
:mod:`~simlab.backends.llamacpp_sampling` and :mod:`~simlab.backends.llamacpp_adapter`
(which lists what they need: ``batch_supported``) are all that touch llama_cpp beneath
``Llama``.
"""

from __future__ import annotations

import ctypes
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simlab.backends.llamacpp_adapter import batch_supported as supported
from simlab.backends.llamacpp_kv import (
    KVStats,
    Saved,
    SavedStates,
    SeqRequest,
    SeqResult,
    common_prefix,
    reusable_prefix,
)
from simlab.backends.llamacpp_sampling import Sampler

CHECKED_VERSIONS = ("0.3.36",)
@dataclass(slots=True)
class _Stream:
    """A KV stream: whose tokens it holds, and whether they are also saved."""

    sid: int
    key: str | None = None
    tokens: list[int] = field(default_factory=list)
    batched: int = 0  # leading tokens computed as a cold prompt evaluation computes them
    saved: bool = True  # nothing unsaved (an empty stream has nothing to lose)
    used_at: int = 0


@dataclass(slots=True)
class _Live:
    """A sequence being decoded."""

    index: int
    request: SeqRequest
    stream: _Stream
    sampler: Sampler
    evaluated: int
    out: list[int] = field(default_factory=list)
    pieces: bytearray = field(default_factory=bytearray)
    last_logit_row: int = -1
    done: str = ""


class BatchEngine:
    """Continuous batched decoding over per-agent KV streams on one llama context.

    Args:
        llama_cpp: the imported ``llama_cpp`` package.
        model: a loaded ``llama_model`` pointer (shared with a ``Llama`` for tokenizing).
        n_ctx: context per sequence (each stream has this many cells).
        parallel: sequences decoded together (KV streams).
        n_batch: most tokens per ``llama_decode`` while evaluating a prompt.
        n_threads: CPU threads.
        cache_bytes: cap on saved agent states in host memory (LRU beyond it).
        share_prefix: evaluate a prefix several requests share once (tokens, 0: off).
    """

    def __init__(self, llama_cpp: Any, model: Any, *, n_ctx: int, parallel: int,
                 n_batch: int, n_threads: int, cache_bytes: int,
                 share_prefix: int = 64) -> None:
        missing = supported(llama_cpp)
        if missing:
            raise RuntimeError(
                f"llama-cpp-python {getattr(llama_cpp, '__version__', '?')} lacks {missing}; "
                f"the batch engine was checked against {CHECKED_VERSIONS} "
                "(set backend.batched=false for the one-at-a-time path)")
        self._ll = ll = llama_cpp
        self.n_ctx, self.parallel, self.n_batch = n_ctx, parallel, n_batch
        self.cache_bytes, self.share_prefix = cache_bytes, share_prefix
        params = ll.llama_context_default_params()
        params.n_ctx = n_ctx * parallel
        params.n_batch = params.n_ubatch = max(self.n_batch, parallel)
        params.n_seq_max = parallel
        params.kv_unified = False
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        # Flash attention's CPU kernel tiles queries by batch shape, so splitting a prompt
        # differently moves logits by up to ~1.2; the plain path is exact under any split.
        params.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = ll.llama_init_from_model(model, params)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not create a context of {params.n_ctx} cells "
                               f"for {parallel} sequences")
        self._mem = ll.llama_get_memory(self._ctx)
        self._vocab = ll.llama_model_get_vocab(model)
        self._n_vocab = ll.llama_vocab_n_tokens(self._vocab)
        self._batch = ll.llama_batch_init(params.n_batch, 0, 1)
        self._streams = [_Stream(i) for i in range(parallel)]
        self.stats = KVStats()
        self._saved = SavedStates(cache_bytes, self.stats)
        self._clock = 0
        self._last_row = 0
        self._piece = ctypes.create_string_buffer(256)

    # ------------------------------------------------------------------ public

    def run(self, requests: Sequence[SeqRequest]) -> list[SeqResult]:
        """Complete every request; per-request failures come back as results."""
        results: list[SeqResult | None] = [None] * len(requests)
        pending = list(range(len(requests)))
        shared = self._shared_prefixes(requests)
        live: list[_Live] = []
        busy: set[int] = set()
        while pending or live:
            while pending and len(live) < self.parallel:
                i = pending.pop(0)
                try:
                    live.append(self._start(i, requests[i], busy, shared))
                except Exception as exc:  # this request fails; the others go on
                    results[i] = SeqResult("", [], "error", len(requests[i].tokens), 0,
                                           f"{type(exc).__name__}: {exc}")
            for seq in [s for s in live if s.done]:
                results[seq.index] = self._finish(seq, busy)
                live.remove(seq)
            if live:
                try:
                    t0 = time.perf_counter()
                    self._step([s for s in live if not s.done])
                    self.stats.step_s += time.perf_counter() - t0
                except Exception as exc:  # the context is in doubt: fail what is live
                    for seq in live:
                        seq.sampler.free()
                        results[seq.index] = SeqResult(
                            "", [], "error", len(seq.request.tokens), seq.evaluated,
                            f"{type(exc).__name__}: {exc}")
                        self._forget(seq.stream)
                        busy.discard(seq.stream.sid)
                    live = []
                for seq in [s for s in live if s.done]:
                    results[seq.index] = self._finish(seq, busy)
                    live.remove(seq)
        return [r for r in results if r is not None]

    def _forget(self, stream: _Stream) -> None:
        """Empty ``stream`` (its KV is in doubt after a failure)."""
        self._ll.llama_memory_seq_rm(self._mem, stream.sid, -1, -1)
        stream.key, stream.tokens, stream.batched, stream.saved = None, [], 0, True

    def close(self) -> None:
        if self._ctx:
            self._ll.llama_batch_free(self._batch)
            self._ll.llama_free(self._ctx)
            self._ctx = None
        self._saved.clear()

    # ------------------------------------------------------------------ KV sources

    def _shared_prefixes(self, requests: Sequence[SeqRequest]) -> dict[int, tuple[int, ...]]:
        """For each request, a prefix it shares with another of this tick that is longer
        (by ``share_prefix`` tokens) than any KV it could keep of its own."""
        if not self.share_prefix or len(requests) < 2:
            return {}
        own = [self._own_reuse(r) for r in requests]
        out: dict[int, tuple[int, ...]] = {}
        order = sorted(range(len(requests)), key=lambda i: requests[i].tokens)
        for a, b in itertools.pairwise(order):
            n = common_prefix(requests[a].tokens, requests[b].tokens)
            prefix = requests[a].tokens[:n]
            for i in (a, b):
                usable = self._keep(prefix, n, requests[i].tokens)
                if usable >= own[i] + self.share_prefix and n > len(out.get(i, ())):
                    out[i] = prefix
        return out

    def _keep(self, tokens: Sequence[int], batched: int, prompt: Sequence[int]) -> int:
        return reusable_prefix(tokens, batched, prompt, self.n_batch) if tokens else 0

    def _own_reuse(self, r: SeqRequest) -> int:
        if r.key is None:
            return 0
        for s in self._streams:
            if s.key == r.key:
                return self._keep(s.tokens, s.batched, r.tokens)
        saved = self._saved.peek(r.key)
        return self._keep(saved.tokens, saved.batched, r.tokens) if saved else 0

    def _save(self, stream: _Stream) -> None:
        if stream.saved or stream.key is None or not stream.tokens:
            stream.saved = True
            return
        ll = self._ll
        size = ll.llama_state_seq_get_size(self._ctx, stream.sid)
        buf = (ctypes.c_uint8 * size)()
        n = ll.llama_state_seq_get_data(self._ctx, buf, size, stream.sid)
        self._saved.put(stream.key, Saved(tuple(stream.tokens), ctypes.string_at(buf, n),
                                              stream.batched))
        stream.saved = True

    def _restore(self, stream: _Stream, saved: Saved) -> bool:
        ll = self._ll
        ll.llama_memory_seq_rm(self._mem, stream.sid, -1, -1)
        buf = (ctypes.c_uint8 * len(saved.data)).from_buffer_copy(saved.data)
        if ll.llama_state_seq_set_data(self._ctx, buf, len(saved.data), stream.sid) == 0:
            ll.llama_memory_seq_rm(self._mem, stream.sid, -1, -1)
            stream.tokens, stream.batched = [], 0
            return False
        stream.tokens, stream.batched = list(saved.tokens), saved.batched
        return True

    def _claim(self, key: str | None, busy: set[int]) -> _Stream:
        """The stream for ``key``: its own if resident, else the least recently used
        free one (whose unsaved KV is saved first)."""
        self._clock += 1
        if any(s.key == key for s in self._streams if s.sid in busy):
            key = None  # the same agent twice in a batch: the second keeps nothing
        free = [s for s in self._streams if s.sid not in busy]
        mine = next((s for s in free if key is not None and s.key == key), None)
        stream = mine or min(free, key=lambda s: (s.key is not None, s.used_at))
        if mine is None:
            self._save(stream)
            stream.key, stream.tokens, stream.batched, stream.saved = key, [], 0, True
            self._ll.llama_memory_seq_rm(self._mem, stream.sid, -1, -1)
        stream.used_at = self._clock
        busy.add(stream.sid)
        return stream

    # ------------------------------------------------------------------ one sequence

    def _start(self, index: int, r: SeqRequest, busy: set[int],
               shared: dict[int, tuple[int, ...]]) -> _Live:
        n = len(r.tokens)
        if n < 1:
            raise ValueError("empty prompt")
        if n + r.max_tokens > self.n_ctx:
            raise ValueError(f"prompt of {n} tokens + max_tokens {r.max_tokens} exceeds "
                             f"n_ctx {self.n_ctx}")
        stream = self._claim(r.key, busy)
        try:
            return self._prefill(index, r, stream, shared)
        except Exception:
            self._forget(stream)
            busy.discard(stream.sid)
            raise

    def _prefill(self, index: int, r: SeqRequest, stream: _Stream,
                 shared: dict[int, tuple[int, ...]]) -> _Live:
        """Evaluate what ``stream`` lacks of ``r``'s prompt and sample its first token."""
        n = len(r.tokens)
        keep = self._keep(stream.tokens, stream.batched, r.tokens)
        saved = self._saved.get(r.key)
        if saved is not None and self._keep(saved.tokens, saved.batched, r.tokens) > keep:
            if self._restore(stream, saved):
                keep = self._keep(stream.tokens, stream.batched, r.tokens)
                self.stats.restores += 1
        elif keep:
            self.stats.resident_hits += 1
        prefix = shared.get(index, ())
        if prefix and self._keep(prefix, len(prefix), r.tokens) > keep:
            self._from_shared(stream, prefix)
            keep = self._keep(prefix, len(prefix), r.tokens)
        self._ll.llama_memory_seq_rm(self._mem, stream.sid, keep, -1)
        del stream.tokens[keep:]
        stream.saved = False
        self._evaluate(stream, list(r.tokens[keep:]))
        stream.batched = n
        self.stats.requests += 1
        self.stats.prompt_tokens += n
        self.stats.evaluated_tokens += n - keep
        seq = _Live(index, r, stream, self._sampler(r), n - keep)
        seq.last_logit_row = self._last_row
        self._sample(seq)
        return seq

    def _from_shared(self, stream: _Stream, prefix: tuple[int, ...]) -> None:
        """Put ``prefix``'s KV in ``stream``: from the saved shared state, or evaluated
        now and saved for the other requests that share it."""
        key = f"\0prefix:{hash(prefix)}:{len(prefix)}"
        saved = self._saved.get(key)
        if saved is not None and saved.tokens == prefix and self._restore(stream, saved):
            return
        self._ll.llama_memory_seq_rm(self._mem, stream.sid, -1, -1)
        stream.tokens = []
        self._evaluate(stream, list(prefix), logits=False)
        stream.batched = len(prefix)
        self.stats.shared_prefixes += 1
        self.stats.evaluated_tokens += len(prefix)
        owner, stream.key = stream.key, key
        stream.saved = False
        self._save(stream)
        stream.key = owner

    def _evaluate(self, stream: _Stream, tokens: list[int], logits: bool = True) -> None:
        """Append ``tokens`` to ``stream``'s KV in calls of up to ``n_batch``; with
        ``logits``, the last token's row is kept for sampling (``self._last_row``).

        A prompt's tail is cut where :func:`reusable_prefix` says, so its calls isolate
        what a cold evaluation isolates; a shared prefix (no logits) never leaves a token
        alone in a call, as no cold evaluation of a longer prompt would.
        """
        start, i = len(stream.tokens), 0
        while i < len(tokens):
            n = min(self.n_batch, len(tokens) - i)
            if not logits and len(tokens) - i - n == 1:
                n -= 1
            chunk = tokens[i:i + n]
            last = i + n == len(tokens)
            self._decode([(t, start + i + j, stream.sid, logits and last and j == n - 1)
                          for j, t in enumerate(chunk)])
            self._last_row = n - 1
            i += n
        stream.tokens.extend(tokens)

    # ------------------------------------------------------------------ decoding

    def _decode(self, rows: list[tuple[int, int, int, bool]]) -> None:
        """One ``llama_decode`` of ``rows``: (token, position, sequence, wants logits)."""
        b = self._batch
        b.n_tokens = len(rows)
        for k, (tok, pos, sid, want) in enumerate(rows):
            b.token[k], b.pos[k], b.n_seq_id[k] = tok, pos, 1
            b.seq_id[k][0] = sid
            b.logits[k] = want
        t0 = time.perf_counter()
        rc = self._ll.llama_decode(self._ctx, b)
        self.stats.decode_calls += 1
        self.stats.decode_s += time.perf_counter() - t0
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")

    def _sampler(self, r: SeqRequest) -> Sampler:
        return Sampler(self._ll, self._vocab, self._n_vocab, temperature=r.temperature,
                       top_p=r.top_p, top_k=r.top_k, min_p=r.min_p,
                       repeat_penalty=r.repeat_penalty, seed=r.seed, grammar=r.grammar)

    def _sample(self, seq: _Live) -> None:
        """Sample ``seq``'s next token from its logits row and decide whether it is done."""
        ll, r = self._ll, seq.request
        t0 = time.perf_counter()
        tok = seq.sampler.sample(self._ctx, seq.last_logit_row)
        self.stats.sample_s += time.perf_counter() - t0
        if ll.llama_vocab_is_eog(self._vocab, tok):
            seq.done = "stop"
            return
        seq.out.append(tok)
        n = ll.llama_token_to_piece(self._vocab, tok, self._piece, 256, 0, False)
        seq.pieces += self._piece.raw[:max(n, 0)]
        if r.stop:
            text = seq.pieces.decode("utf-8", errors="ignore")
            if any(s and s in text for s in r.stop):
                seq.done = "stop"
                return
        if len(seq.out) >= r.max_tokens:
            seq.done = "length"

    def _step(self, live: list[_Live]) -> None:
        """Advance every unfinished sequence by its last sampled token, in one call, in
        stream order: llama.cpp splits a call into ubatches wherever the stream ids step
        back (8 streams shuffled: 78 ms a step here; in order: 57 ms; same numbers)."""
        live = sorted(live, key=lambda s: s.stream.sid)
        self._decode([(s.out[-1], len(s.stream.tokens), s.stream.sid, True) for s in live])
        for k, s in enumerate(live):
            s.stream.tokens.append(s.out[-1])
            s.last_logit_row = k
            self._sample(s)

    def _finish(self, seq: _Live, busy: set[int]) -> SeqResult:
        self.stats.grammar_redraws += seq.sampler.redraws
        seq.sampler.free()
        busy.discard(seq.stream.sid)
        if seq.request.key is None:  # nobody will extend this view: free the stream
            self._ll.llama_memory_seq_rm(self._mem, seq.stream.sid, -1, -1)
            seq.stream.tokens, seq.stream.batched, seq.stream.saved = [], 0, True
        text = seq.pieces.decode("utf-8", errors="ignore")
        for s in seq.request.stop:
            if s and s in text:
                text = text[:text.index(s)]
        self.stats.generated_tokens += len(seq.out)
        return SeqResult(text, seq.out, seq.done, len(seq.request.tokens), seq.evaluated)
