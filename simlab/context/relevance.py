"""Relevance for retrieval memory: how well an event matches the agent's situation.

Two indexes with one interface (``add`` an event's text once, when it is first
perceived; ``scores`` of a query against some of them):

- :class:`LexicalIndex`, Okapi BM25 over the agent's own events (the default: local,
  deterministic, no model);
- :class:`EmbeddingIndex`, the cosine similarity of embeddings from an
  :class:`~simlab.backends.embeddings.Embedder` (``memory.embedding.model``). An
  embedding call that fails after its retries falls back to BM25 for that turn, logged,
  so a run never dies for its memory.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from simlab.backends.base import BackendError

if TYPE_CHECKING:
    from simlab.backends.embeddings import Embedder

log = logging.getLogger(__name__)

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


class EmbeddingIndex:
    """Cosine similarity of embeddings; each event embedded once, the query per call."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder
        self.lexical = LexicalIndex()
        self.texts: dict[int, str] = {}
        self.vectors: dict[int, list[float]] = {}
        self.fallbacks = 0  # turns scored by BM25 because embedding failed

    def __getstate__(self) -> dict:
        return {**self.__dict__, "embedder": None}  # re-bound on restore

    def add(self, doc: int, text: str) -> None:
        self.texts[doc] = text
        self.lexical.add(doc, text)

    def scores(self, query: str, docs: Sequence[int]) -> list[float]:
        missing = [d for d in docs if d not in self.vectors]
        try:
            if self.embedder is None:
                raise BackendError("no embedder is bound")
            vectors = self.embedder.embed([query, *(self.texts[d] for d in missing)])
            self.vectors.update(zip(missing, vectors[1:], strict=True))
            return [cosine(vectors[0], self.vectors[d]) for d in docs]
        except (BackendError, ValueError) as exc:  # ValueError: vectors of another size
            self.fallbacks += 1
            log.warning("retrieval relevance falls back to BM25 this turn: %s", exc)
            return self.lexical.scores(query, docs)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """The cosine of two vectors; 0 when either is zero."""
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(math.fsum(x * x for x in a)), math.sqrt(math.fsum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
