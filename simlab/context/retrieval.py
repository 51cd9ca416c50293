"""The ``retrieval`` memory policy: the newest events, plus the older ones worth recalling.

After Generative Agents' memory stream. The newest messages are kept as ``window``
keeps them, in ``1 - memory.retrieval_share`` of the budget. Each older event the agent
perceived is scored

    score = w_r · recency + w_i · importance + w_v · relevance

with each term min-max normalised over the candidates (as Park et al. do):

- recency: ``memory.recency_decay ** (step - event.step)``;
- importance, by rule (:func:`rule_importance`): what the environment announced and the
  agent's own reflections count most, then what others said, then the agent's own
  words; or rated 1–10 by the agent's model (``memory.importance=model``,
  :mod:`simlab.context.importance`);
- relevance: Okapi BM25 of the event's text against the agent's newest message (its
  current situation), from a per-agent lexical index, or the cosine of their
  embeddings when ``memory.embedding.model`` is set (:mod:`simlab.context.relevance`).

The best-scoring events that fit ``retrieval_share`` of the budget are recalled, in the
order they happened, at the head of the newest message, so the prefix before it stays
append-only between cuts. Model ratings and reflections are ``memory`` events in the
log (their agent the only audience); everything else is a pure function of the log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.context.budget import Budget, ContextOverflow, TokenCounter
from simlab.context.importance import (
    EVENT_CHARS,
    IMPORTANCE_PROMPT,
    REFLECTION_PROMPT,
    REFLECTION_SCHEMA,
    importance_schema,
    numbered,
    parse_insights,
    parse_scores,
)
from simlab.context.memory import Importance, MemoryConfig, Note, WindowMemory
from simlab.context.relevance import EmbeddingIndex, LexicalIndex
from simlab.events import ENV, MEMORY, NARRATION, Event, EventLog

if TYPE_CHECKING:
    from simlab.backends.embeddings import Embedder
    from simlab.context.base import Projector

#: Heads the recalled events in the newest message.
HEADER = "(You remember from earlier:)"
#: A reflection's reply: three one-sentence conclusions as JSON.
REFLECTION_TOKENS = 192  # 3 x 160 characters, and the JSON around them

def rule_importance(agent: str, event: Event) -> float:
    """Importance without a model: announcements and reflections 1.0, others' words 0.6,
    one's own 0.3."""
    if event.speaker == ENV or event.kind in (NARRATION, MEMORY):
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
        self._embedder: Embedder | None = None
        self._index: dict[str, LexicalIndex | EmbeddingIndex] = {}
        self._cursor: dict[str, int] = {}  # agent -> position in its perceived list
        self._texts: dict[str, dict[int, str]] = {}  # agent -> seq -> line in a view
        self._rated: dict[str, dict[int, int]] = {}  # agent -> seq -> model importance
        self._asked: dict[str, dict[str, list[int]]] = {}  # agent -> request tag -> seqs
        self._reflected: dict[str, tuple[int, int]] = {}  # agent -> (step, seq) of last
        self._requests = 0  # for unique tags

    def bind(self, projector: Projector, log: Callable[[], EventLog],
             embedder: Embedder | None = None) -> None:
        self._projector, self._log, self._embedder = projector, log, embedder
        for index in self._index.values():
            if isinstance(index, EmbeddingIndex):
                index.embedder = embedder

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        # re-bound by the engine on restore
        state["_projector"] = state["_log"] = state["_embedder"] = None
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

    def importance(self, agent: str, event: Event) -> float:
        """The model's rating / 10 where there is one, else the rule's."""
        rated = self._rated.get(agent, {}).get(event.seq)
        return rated / 10 if rated is not None else rule_importance(agent, event)

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
        importance = normalised([self.importance(agent, e) for e in events])
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
        """Index the events ``agent`` perceived since the last call (each once), and its
        own reflections."""
        assert self._log is not None and self._projector is not None
        events, self._cursor[agent] = self._log().perceived(agent, self._cursor.get(agent, 0))
        index = self._index.get(agent)
        if index is None:
            index = self._index[agent] = (
                EmbeddingIndex(self._embedder) if self.config.embedding.model
                and self._embedder is not None else LexicalIndex())
        texts = self._texts.setdefault(agent, {})
        for e in events:
            if e.kind == MEMORY:
                if e.speaker == agent and json.loads(e.data or "{}").get("reflection"):
                    text = " ".join(e.content.split("\n"))
                    texts[e.seq] = f"- (tick {e.step}) You concluded: {text}"
                    index.add(e.seq, text)
                continue
            placed = self._projector.place(agent, e)
            if placed is None:
                continue
            role, text = placed
            texts[e.seq] = f"- (tick {e.step}) {text if role == 'user' else 'You: ' + text}"
            index.add(e.seq, text)

    # -- what the policy asks the model (memory.importance=model, memory.reflect_every)
    def prepare(self, agent: str, step: int, view: tuple[Message, ...], budget: Budget,
                seed: Callable[[], int]) -> list[ChatRequest]:
        if self._projector is None or not view:
            return []
        self._index_new(agent)
        out: list[ChatRequest] = []
        if self.counter.count_tokens(view) <= budget.prompt:
            return out  # nothing is recalled while the whole view fits
        if self.config.importance == Importance.model:
            out += self._rating_requests(agent, view[0], budget, seed)
        every = self.config.reflect_every
        last_step, last_seq = self._reflected.get(agent, (0, -1))
        if every and step - last_step >= every:
            request = self._reflection_request(agent, view[0], last_seq, budget, seed)
            if request is not None:
                out.append(request)
        return out

    def _room(self, system: Message, budget: Budget, prompt: str, reply: int,
              schema: dict) -> int:
        """Tokens left for event lines in a request of ``system`` and ``prompt``; the
        schema is reserved too (a backend may write it into the prompt)."""
        return (budget.window - budget.margin - reply - 8
                - self.counter.count_text(json.dumps(schema))
                - self.counter.count_tokens((system, Message("user", prompt))))

    def _tag(self, agent: str, what: str) -> str:
        self._requests += 1
        return f"{agent}:{what}:{self._requests}"

    def _rating_requests(self, agent: str, system: Message, budget: Budget,
                         seed: Callable[[], int]) -> list[ChatRequest]:
        asked = self._asked.setdefault(agent, {})
        pending = {s for tag, seqs in asked.items() if ":importance:" in tag for s in seqs}
        rated = self._rated.setdefault(agent, {})
        texts = self._texts.get(agent, {})
        todo = [s for s in texts if s not in rated and s not in pending]
        out = []
        batch = self.config.importance_batch
        while todo:
            chunk, reply = todo[:batch], 4 * min(batch, len(todo)) + 16
            room = self._room(system, budget, IMPORTANCE_PROMPT.format(events=""), reply,
                              importance_schema(len(chunk)))
            while len(chunk) > 1 and self.counter.count_text(numbered(
                    [texts[s] for s in chunk])) > room:
                chunk = chunk[:len(chunk) // 2]
            if self.counter.count_text(numbered([texts[chunk[0]]])) > room:
                assert self._log is not None  # one event too long to ask about: by rule
                rated[chunk[0]] = round(rule_importance(agent, self._log()[chunk[0]]) * 10)
                todo = todo[1:]
                continue
            todo = todo[len(chunk):]
            tag = self._tag(agent, "importance")
            asked[tag] = chunk
            prompt = IMPORTANCE_PROMPT.format(events=numbered([texts[s] for s in chunk]))
            out.append(ChatRequest(messages=(system, Message("user", prompt)),
                                   max_tokens=4 * len(chunk) + 16, temperature=0.0,
                                   top_p=1.0, seed=seed(), tag=tag,
                                   json_schema=importance_schema(len(chunk))))
        return out

    def _reflection_request(self, agent: str, system: Message, after: int, budget: Budget,
                            seed: Callable[[], int]) -> ChatRequest | None:
        texts = self._texts.get(agent, {})
        recent = [s for s in texts if s > after]
        if len(recent) < 3:
            return None  # too little new to reflect on; asked again next tick
        reply = REFLECTION_TOKENS
        room = self._room(system, budget, REFLECTION_PROMPT.format(events=""), reply,
                          REFLECTION_SCHEMA)
        lines: list[str] = []
        for seq in reversed(recent):  # the newest that fit
            line = texts[seq][:EVENT_CHARS]
            cost = self.counter.count_text(line) + 1
            if cost > room:
                break
            lines.append(line)
            room -= cost
        if not lines:
            return None
        tag = self._tag(agent, "reflection")
        self._asked.setdefault(agent, {})[tag] = recent
        prompt = REFLECTION_PROMPT.format(events="\n".join(reversed(lines)))
        return ChatRequest(messages=(system, Message("user", prompt)), max_tokens=reply,
                           temperature=0.2, top_p=0.9, seed=seed(), tag=tag,
                           json_schema=REFLECTION_SCHEMA)

    def absorb(self, agent: str, step: int, request: ChatRequest,
               response: ChatResponse) -> Note | None:
        seqs = self._asked.get(agent, {}).pop(request.tag, None)
        if seqs is None:
            return None
        if ":reflection:" in request.tag:
            self._reflected[agent] = (step, max(seqs))
            insights = parse_insights(response)
            return Note("\n".join(insights), {"reflection": True, "about": [min(seqs),
                        max(seqs)]}) if insights else None
        scores, repaired = parse_scores(response, len(seqs))
        assert self._log is not None
        log, rated = self._log(), self._rated.setdefault(agent, {})
        by_rule = [s for s, v in zip(seqs, scores, strict=True) if v is None]
        for seq, value in zip(seqs, scores, strict=True):
            rated[seq] = value if value is not None else round(
                rule_importance(agent, log[seq]) * 10)
        content = ", ".join(f"{s}={rated[s]}" for s in seqs)
        return Note(f"importance: {content}",
                    {"importance": {str(s): rated[s] for s in seqs}, "repaired": repaired,
                     "by_rule": by_rule})
