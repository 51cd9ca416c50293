"""Role confusion: turns where an agent stops speaking as itself.

Cheap, explainable detectors over each utterance (each a boolean column; a turn is
*confused* when any fires):

- ``role_assistant``: speaks as an AI assistant ("As an AI…", "as a language model",
  "I don't have personal feelings" …), which no persona would say;
- ``role_partner_label``: writes a line for someone else, labelled with another
  participant's first name ("Maya: …"), i.e. plays both sides;
- ``role_self_answer``: asks a question and answers it in the same turn ("Do you have a
  plan? Yes, …");
- ``role_partner_name``: introduces itself with another participant's name ("I'm Maya");
- ``role_partner_persona``: is closer to the previous speaker's persona than to its
  own by more than ``delta`` (char 4-gram TF-IDF cosine), i.e. has taken over the
  partner's persona.

The text detectors read the verbatim reply where the store kept one (repair changed
it, or the turn failed), so repair does not hide what it repaired; episode rates count
failed turns with a kept reply beside utterances.

An optional LLM-judge pass over the same turns lives in :mod:`simlab.analysis.judge`.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from simlab.analysis.corpus import Corpus
from simlab.analysis.text import failed_replies, rowwise_cos

ASSISTANT_RE = (
    r"(?i)\b(?:as an ai\b|as a language model|as an ai language model|ai language model"
    r"|as an? (?:virtual |digital )?assistant\b|i(?:'m| am) (?:just )?an? (?:ai|artificial"
    r" intelligence|language model|virtual assistant|digital assistant|chatbot)\b"
    r"|i (?:don't|do not) have (?:personal )?(?:feelings|emotions|experiences|opinions|a body)"
    r"|my training data|i cannot browse|i was trained by|developed by openai)"
)
SELF_ANSWER_RE = (r"(?i)\?\s+(?:yes|no|yeah|yep|nope|sure|of course|absolutely|definitely"
                  r"|certainly)\b")
LABEL_RE = r"[A-Z][A-Za-z'\-]+(?: [A-Z][A-Za-z'\-]+)?\s*:"
CLAIM_RE = r"(?i)\b(?:i am|i'm|my name is|this is|call me)\s+[a-z'\-]+"
FLAGS = ("role_assistant", "role_partner_label", "role_self_answer", "role_partner_name",
         "role_partner_persona")


def _first(expr: pl.Expr) -> pl.Expr:
    return expr.str.extract(r"([A-Za-z'\-]+)", 1).str.to_lowercase()


def _text_flags(rows: pl.DataFrame, agents: pl.DataFrame) -> pl.DataFrame:
    """The four text detectors over ``rows`` (episode_id, speaker, reply), in row order."""
    names = agents.select("episode_id", pl.col("agent_id").alias("speaker"),
                          first=_first(pl.col("name"))).unique(["episode_id", "speaker"])
    everyone = names.group_by("episode_id").agg(all_first=pl.col("first"))
    t = (rows.select("episode_id", "speaker", "reply")
         .join(names, on=["episode_id", "speaker"], how="left", maintain_order="left")
         .join(everyone, on="episode_id", how="left", maintain_order="left")
         .with_columns(partners=pl.col("all_first").fill_null([])
                       .list.set_difference(pl.concat_list(pl.col("first").fill_null("")))))
    labels = pl.col("reply").str.extract_all(LABEL_RE).list.eval(_first(pl.element()))
    claims = pl.col("reply").str.extract_all(CLAIM_RE).list.eval(
        pl.element().str.extract(r"([A-Za-z'\-]+)$", 1).str.to_lowercase())
    return t.select(
        role_assistant=pl.col("reply").str.contains(ASSISTANT_RE),
        role_partner_label=labels.list.set_intersection("partners").list.len() > 0,
        role_self_answer=pl.col("reply").str.contains(SELF_ANSWER_RE),
        role_partner_name=claims.list.set_intersection("partners").list.len() > 0,
    )


def turn_roles(c: Corpus, delta: float = 0.1) -> pl.DataFrame:
    """Per utterance: every detector, on what the model wrote (``reply``: the verbatim
    reply where repair changed it, so a line repaired away still counts)."""
    flags = _text_flags(c.turns, c.agents).with_columns(c.turns["row"])
    adopt = np.zeros(c.turns.height, dtype=bool)
    prev_other = (c.turns["prev_speaker"].is_not_null()
                  & (c.turns["prev_speaker"] != c.turns["speaker"])).fill_null(False).to_numpy()
    ok = np.flatnonzero(prev_other & (c.own_persona >= 0) & (c.prev_persona >= 0)
                        & (c.own_persona != c.prev_persona))
    if len(ok):
        own = c.own_sim[ok]
        theirs = rowwise_cos(c.U[ok], c.P[c.prev_persona[ok]])
        adopt[ok] = (theirs - own) > delta
    flags = flags.with_columns(role_partner_persona=pl.Series(adopt))
    return flags.select("row", *FLAGS, role_confusion=pl.any_horizontal(*FLAGS))


def failed_roles(c: Corpus) -> pl.DataFrame:
    """Per failed turn with a kept reply (e.g. one repair emptied because it was all the
    partner's lines): the text detectors; ``role_partner_persona`` needs an utterance
    vector and is false."""
    failed = failed_replies(c.run)
    flags = _text_flags(failed, c.agents).with_columns(role_partner_persona=pl.lit(False))
    return pl.concat([failed.select("episode_id", "speaker"), flags], how="horizontal").select(
        "episode_id", "speaker", *FLAGS, role_confusion=pl.any_horizontal(*FLAGS))
