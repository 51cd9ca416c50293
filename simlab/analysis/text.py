"""Shared text plumbing for the metrics: the turn table, persona texts and TF-IDF.

Every lexical metric works on one matrix: character 4-gram TF-IDF (Eval4Sim's profile)
of all utterances and all persona texts of a run, built once. The counts are hashed
(scikit-learn's ``HashingVectorizer``, stateless, so chunks vectorise in parallel) and
weighted by ``TfidfTransformer``; this is the ``TfidfVectorizer(analyzer="char",
ngram_range=(4, 4))`` pipeline up to hash collisions, which at 2**20 features do not
move a cosine. Keeping the raw counts lets authorship profiles be the TF-IDF of the
concatenated utterances (sum counts, then weight), without vectorising twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from simlab.events import FAILURE, UTTERANCE
from simlab.store import RunTables

N_FEATURES = 2**20
_CHUNK = 20_000
WORD_RE = re.compile(r"[a-z0-9']+")

#: Persona fields that describe a person (the name is left out on purpose: partners say
#: each other's names, which would make a partner's turn look like "my" persona).
PERSONA_FIELDS = ("description", "occupation", "location", "temperament", "speaking_style")
PERSONA_LIST_FIELDS = ("goals_json", "hobbies_json")


def _vectorizer() -> HashingVectorizer:
    return HashingVectorizer(analyzer="char", ngram_range=(4, 4), lowercase=True,
                             alternate_sign=False, norm=None, n_features=N_FEATURES,
                             dtype=np.float32)


def char_counts(docs: Sequence[str], n_jobs: int = 1) -> sp.csr_matrix:
    """Character 4-gram counts of ``docs`` (rows), hashed; chunks run on ``n_jobs``."""
    vec = _vectorizer()
    docs = list(docs)
    if n_jobs == 1 or len(docs) <= _CHUNK:
        return vec.transform(docs).tocsr()
    from joblib import Parallel, delayed

    chunks = [docs[i:i + _CHUNK] for i in range(0, len(docs), _CHUNK)]
    parts = Parallel(n_jobs=n_jobs)(delayed(vec.transform)(c) for c in chunks)
    return sp.vstack(parts, format="csr")


@dataclass(frozen=True)
class TfidfSpace:
    """Raw counts and IDF weights of one corpus; rows are L2-normalised TF-IDF vectors."""

    counts: sp.csr_matrix
    idf: np.ndarray

    @classmethod
    def fit(cls, docs: Sequence[str], n_jobs: int = 1) -> TfidfSpace:
        counts = char_counts(docs, n_jobs)
        tf = TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True).fit(counts)
        return cls(counts, tf.idf_.astype(np.float32))

    def vectors(self, counts: sp.spmatrix | None = None) -> sp.csr_matrix:
        """TF-IDF rows (of ``counts``, default: the corpus), each of unit length."""
        c = sp.csr_matrix(self.counts if counts is None else counts, copy=True)
        c.data *= self.idf[c.indices]  # column scaling on the stored values: no broadcast
        return normalize(c, norm="l2", copy=False)

    def profiles(self, groups: np.ndarray, n_groups: int, rows: np.ndarray) -> sp.csr_matrix:
        """TF-IDF of each group's concatenated docs: ``rows[i]`` belongs to ``groups[i]``."""
        ind = sp.csr_matrix((np.ones(len(rows), np.float32), (groups, rows)),
                            shape=(n_groups, self.counts.shape[0]))
        return self.vectors(ind @ self.counts)


def rowwise_cos(a: sp.csr_matrix, b: sp.csr_matrix) -> np.ndarray:
    """Cosine of row i of ``a`` with row i of ``b`` (both already unit length)."""
    return np.asarray(a.multiply(b).sum(axis=1)).ravel()


def persona_text(row: dict) -> str:
    """The descriptive text of an ``agents`` row: description, job, goals, hobbies …"""
    parts = [str(row[f]) for f in PERSONA_FIELDS if row.get(f)]
    for f in PERSONA_LIST_FIELDS:
        raw = row.get(f)
        if raw:
            try:
                items = json.loads(raw)
            except (TypeError, json.JSONDecodeError):
                items = [raw]
            parts.extend(str(x) for x in (items if isinstance(items, list) else [items]))
    return "\n".join(parts)


def turn_table(run: RunTables) -> pl.DataFrame:
    """One row per utterance, in order: who said what at which turn of which episode.

    ``turn`` counts utterances within the episode; ``agent_turn`` counts the speaker's own;
    ``prev_speaker``/``prev_row`` point at the previous utterance of the episode and
    ``own_prev_row`` at the speaker's previous one (-1 where there is none).
    """
    ev = run.events
    if ev.is_empty():
        return _empty_turns()
    t = (ev.filter(pl.col("kind") == UTTERANCE)
         .select("episode_id", "seq", "step", "speaker", "content", "model",
                 reply=_reply(ev))
         .with_columns(pl.col("content").fill_null(""))
         .with_columns(pl.col("reply").fill_null(pl.col("content")))
         .sort("episode_id", "seq")
         .rechunk())  # a loaded store is one chunk per episode: 45k chunks slow every op
    if t.is_empty():
        return _empty_turns()
    t = t.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    t = t.with_columns(
        turn=pl.int_range(pl.len()).over("episode_id"),
        agent_turn=pl.int_range(pl.len()).over("episode_id", "speaker"),
        n_agent_turns=pl.len().over("episode_id", "speaker"),
        prev_speaker=pl.col("speaker").shift(1).over("episode_id"),
        prev_row=pl.col("row").shift(1).over("episode_id").fill_null(-1),
        own_prev_row=pl.col("row").shift(1).over("episode_id", "speaker").fill_null(-1),
        n_words=pl.col("content").str.to_lowercase().str.count_matches(WORD_RE.pattern),
    )
    return t


def _reply(events: pl.DataFrame) -> pl.Expr:
    """The model's verbatim reply where the store kept one (``data = {"raw": …}``, written
    when repair changed it or it failed), else null."""
    if "data" not in events.columns:
        return pl.lit(None, dtype=pl.String)
    return pl.col("data").str.json_path_match("$.raw")


def failed_replies(run: RunTables) -> pl.DataFrame:
    """One row per failed turn whose model reply was kept: episode, speaker, reply."""
    ev = run.events
    if ev.is_empty():
        return pl.DataFrame(schema={"episode_id": pl.String, "speaker": pl.String,
                                    "reply": pl.String})
    return (ev.filter(pl.col("kind") == FAILURE)
            .select("episode_id", "speaker", reply=_reply(ev))
            .drop_nulls("reply"))


def _empty_turns() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "row": pl.Int64, "episode_id": pl.String, "seq": pl.Int64, "step": pl.Int64,
        "speaker": pl.String, "content": pl.String, "model": pl.String, "reply": pl.String,
        "turn": pl.Int64,
        "agent_turn": pl.Int64, "n_agent_turns": pl.UInt32, "prev_speaker": pl.String,
        "prev_row": pl.Int64, "own_prev_row": pl.Int64, "n_words": pl.UInt32})


def agent_table(run: RunTables) -> pl.DataFrame:
    """One row per (episode, agent) with its persona text; personas deduplicated by id."""
    a = run.agents
    if a.is_empty():
        return pl.DataFrame(schema={"episode_id": pl.String, "agent_id": pl.String,
                                    "name": pl.String, "role": pl.String,
                                    "persona_id": pl.String, "persona_text": pl.String})
    a = a.rechunk()
    texts = [persona_text(r) for r in a.iter_rows(named=True)]
    cols = [c for c in ("episode_id", "agent_id", "name", "role", "persona_id") if c in a.columns]
    return a.select(cols).with_columns(persona_text=pl.Series(texts, dtype=pl.String))


def slope(x: pl.Expr, y: pl.Expr) -> pl.Expr:
    """OLS slope of ``y`` on ``x`` (null when x does not vary), for use in ``agg``."""
    xm, ym = x - x.mean(), y - y.mean()
    den = (xm * xm).sum()
    return pl.when(den > 0).then((xm * ym).sum() / den).otherwise(None)


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())
