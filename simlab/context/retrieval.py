"""The ``retrieval`` memory policy: the newest events, plus the older ones worth recalling.

After Generative Agents' memory stream. The newest messages are kept as ``window``
keeps them, in ``1 - memory.retrieval_share`` of the budget. Each older event the agent
perceived is scored

    score = w_r · recency + w_i · importance + w_v · relevance

with each term min-max normalised over the candidates (as Park et al. do):

- recency: ``memory.recency_decay ** (step - event.step)``;
- importance, by rule (:func:`rule_importance`): what the environment announced counts
  most, then what others said, then the agent's own words;
- relevance: Okapi BM25 of the event's text against the agent's newest message (its
  current situation), from a per-agent lexical index (:class:`LexicalIndex`).

The best-scoring events that fit ``retrieval_share`` of the budget are recalled, in the
order they happened, at the head of the newest message, so the prefix before it stays
append-only between cuts. Everything is a pure function of the log: nothing to record.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from simlab.backends.base import Message
from simlab.context.budget import Budget, ContextOverflow, TokenCounter
from simlab.context.memory import MemoryConfig, WindowMemory
from simlab.events import ENV, NARRATION, Event, EventLog

if TYPE_CHECKING:
    from simlab.context.base import Projector

#: Heads the recalled events in the newest message.
HEADER = "(You remember from earlier:)"

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_STOP = ("a an and are as at be but by do for from had has have he her his i if in is it "
         "its me my no not of on or our she so that the their them they this to was we were "
         "what when which who will with you your")
STOPWORDS = frozenset(_STOP.split(" "))


def terms(text: str) -> list[str]:
    """Lower-cased words of ``text`` without stopwords: what the index matches on."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


class LexicalIndex:
    """Okapi BM25 over a growing set of documents (one agent's perceived events).

    ``idf = ln(1 + (N - df + 0.5) / (df + 0.5))`` and
    ``tf' = tf (k1 + 1) / (tf + k1 (1 - b + b · len / avglen))``. Incremental: an event is
    indexed once, when it is first perceived; library BM25s (rank_bm25, bm25s) index a
    fixed corpus, so they would be rebuilt on every turn as the agent's history grows.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs: dict[int, Counter[str]] = {}
        self.lengths: dict[int, int] = {}
        self.df: Counter[str] = Counter()
        self.total = 0

    def add(self, doc: int, text: str) -> None:
        tf = Counter(terms(text))
        self.docs[doc], self.lengths[doc] = tf, sum(tf.values())
        self.df.update(tf.keys())
        self.total += self.lengths[doc]

    def scores(self, query: str, docs: Sequence[int]) -> list[float]:
        n = len(self.docs)
        if not n:
            return [0.0] * len(docs)
        avg = self.total / n or 1.0
        q = set(terms(query))
        idf = {t: math.log(1 + (n - self.df[t] + 0.5) / (self.df[t] + 0.5)) for t in q}
        out = []
        for d in docs:
            tf, dl = self.docs[d], self.lengths[d]
            norm = self.k1 * (1 - self.b + self.b * dl / avg)
            out.append(sum(idf[t] * tf[t] * (self.k1 + 1) / (tf[t] + norm)
                           for t in q if t in tf))
        return out


def rule_importance(agent: str, event: Event) -> float:
    """Importance without a model: announcements 1.0, others' words 0.6, one's own 0.3."""
    if event.speaker == ENV or event.kind == NARRATION:
        return 1.0
    return 0.3 if event.speaker == agent else 0.6


def normalised(values: Sequence[float]) -> list[float]:
    """Min-max to [0, 1]; all zeros when every value is the same."""
    lo, hi = min(values, default=0.0), max(values, default=0.0)
    return [0.0] * len(values) if hi == lo else [(v - lo) / (hi - lo) for v in values]


class RetrievalMemory(WindowMemory):
    """Window memory plus recalled older events, scored Generative Agents style."""

    name = "retrieval"

    def __init__(self, config: MemoryConfig, counter: TokenCounter) -> None:
        super().__init__(config, counter)
        self._projector: Projector | None = None
        self._log: Callable[[], EventLog] | None = None
        self._index: dict[str, LexicalIndex] = {}
        self._cursor: dict[str, int] = {}  # agent -> position in its perceived list
        self._texts: dict[str, dict[int, str]] = {}  # agent -> seq -> line in a view

    def bind(self, projector: Projector, log: Callable[[], EventLog]) -> None:
        self._projector, self._log = projector, log

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_projector"] = state["_log"] = None  # re-bound by the engine on restore
        return state

    def fit(self, agent: str, step: int, view: tuple[Message, ...],
            budget: Budget) -> tuple[Message, ...]:
        if self.counter.count_tokens(view) <= budget.prompt or self._projector is None:
            return view
        seqs = self._projector.message_seqs(agent)
        if len(seqs) != len(view) or len(view) < 3:
            return super().fit(agent, step, view, budget)
        history = budget.prompt - self.counter.count_tokens(view[:1])
        recent = Budget(budget.window, budget.max_tokens,
                        budget.margin + round(history * self.config.retrieval_share))
        try:
            kept = super().fit(agent, step, view, recent)
        except ContextOverflow:  # the newest event needs the recall's share: no recall
            return super().fit(agent, step, view, budget)
        start = self._start.get(agent, 0)
        cut = seqs[1 + start] if start > 0 else 0
        lines = self.recall(agent, step, cut, view[-1].content,
                            budget.prompt - self.counter.count_tokens(kept))
        if not lines or kept[-1].role != "user":
            return kept
        last = Message("user", "\n".join([HEADER, *lines, kept[-1].content]))
        return (*kept[:-1], last)

    def ranked(self, agent: str, step: int, before: int, query: str) -> list[tuple[float, int]]:
        """(score, seq) of every event ``agent`` perceived with ``seq < before``, best
        first (ties: the newer first)."""
        self._index_new(agent)
        candidates = [s for s in self._texts.get(agent, {}) if s < before]
        if not candidates:
            return []
        assert self._log is not None
        log = self._log()
        events = [log[s] for s in candidates]
        w_r, w_i, w_v = self.config.weights
        decay = self.config.recency_decay
        recency = normalised([decay ** (step - e.step) for e in events])
        importance = normalised([rule_importance(agent, e) for e in events])
        relevance = normalised(self._index[agent].scores(query, candidates))
        scored = [(w_r * r + w_i * i + w_v * v, e.seq) for e, r, i, v in
                  zip(events, recency, importance, relevance, strict=True)]
        return sorted(scored, key=lambda x: (-x[0], -x[1]))

    def recall(self, agent: str, step: int, before: int, query: str, room: int) -> list[str]:
        """Lines for the best-ranked events with ``seq < before`` that fit ``room``, in
        the order they happened."""
        if room <= 0:
            return []
        ranked = self.ranked(agent, step, before, query)
        texts = self._texts[agent]
        chosen, used = [], self.counter.count_text(HEADER) + 1
        for _, seq in ranked:
            cost = self.counter.count_text(texts[seq]) + 1
            if used + cost <= room:
                chosen.append(seq)
                used += cost
        return [texts[s] for s in sorted(chosen)]

    def _index_new(self, agent: str) -> None:
        """Index the events ``agent`` perceived since the last call (each once)."""
        assert self._log is not None and self._projector is not None
        events, self._cursor[agent] = self._log().perceived(agent, self._cursor.get(agent, 0))
        index = self._index.setdefault(agent, LexicalIndex())
        texts = self._texts.setdefault(agent, {})
        for e in events:
            placed = self._projector.place(agent, e)
            if placed is None:
                continue
            role, text = placed
            texts[e.seq] = f"- (tick {e.step}) {text if role == 'user' else 'You: ' + text}"
            index.add(e.seq, text)
