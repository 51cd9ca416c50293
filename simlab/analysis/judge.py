"""Optional LLM judges through any backend: self-contradiction, naturalness, role confusion.

Judges are opt-in because they cost model calls and are less explainable than the
lexical metrics. Each prompt is versioned (the version goes into every result column's
table as ``judge_prompt``), requests use temperature 0 and a seed derived from the item
text, and the CLI wraps the backend in the persistent SQLite response cache, so a
re-analysis with the same judge and prompt version makes no calls. Unusable replies
(no valid JSON after the backend's own re-asks) are counted as failures, not guessed.

- ``contradiction`` (NLI-style), per utterance with earlier own turns: premise = the
  speaker's persona facts + its last three utterances; hypothesis = the utterance;
  label ∈ {entailment, neutral, contradiction}.
- ``naturalness``, per episode: a 1–5 rating of how much the transcript reads like
  people talking.
- ``roles``, per utterance: does the speaker talk as someone else (the partner, an AI
  assistant) rather than as its persona?
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from simlab.analysis.corpus import Corpus
from simlab.backends.base import Backend, ChatRequest, Message
from simlab.backends.structured import read_structured


@dataclass(frozen=True)
class JudgePrompt:
    version: str
    system: str
    schema: dict[str, Any]


PROMPTS: dict[str, JudgePrompt] = {
    "contradiction": JudgePrompt(
        "contradiction-v1",
        "You check a simulated person for self-contradiction. PREMISE lists what is true "
        "of the speaker (persona facts and what they said before). HYPOTHESIS is what "
        "they say now. Answer as JSON {\"label\": L} where L is \"contradiction\" if the "
        "hypothesis contradicts the premise, \"entailment\" if the premise implies it, and "
        "\"neutral\" otherwise.",
        {"type": "object", "required": ["label"], "properties": {
            "label": {"enum": ["entailment", "neutral", "contradiction"]}}},
    ),
    "naturalness": JudgePrompt(
        "naturalness-v1",
        "You rate a conversation transcript for how natural it reads, as if real people "
        "were talking: 1 = clearly machine-made (repetitive, echoing, off-topic, stilted), "
        "5 = indistinguishable from people. Answer as JSON {\"score\": N} with N from 1 "
        "to 5.",
        {"type": "object", "required": ["score"], "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5}}},
    ),
    "roles": JudgePrompt(
        "role-confusion-v1",
        "You check whether a simulated person stays in role. SPEAKER is who is talking, "
        "with their persona; PARTNERS are the others present. UTTERANCE is what the "
        "speaker says. Answer as JSON {\"confused\": true} if the speaker talks as "
        "someone else (a partner, an AI assistant, a narrator) instead of as themselves, "
        "else {\"confused\": false}.",
        {"type": "object", "required": ["confused"], "properties": {
            "confused": {"type": "boolean"}}},
    ),
}
TASKS = tuple(PROMPTS)
BATCH = 64


def _seed(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:4], "big") >> 1


def _request(task: str, user: str) -> ChatRequest:
    p = PROMPTS[task]
    return ChatRequest(messages=(Message("system", p.system), Message("user", user)),
                       max_tokens=24, temperature=0.0, top_p=1.0,
                       seed=_seed(f"{p.version}\n{user}"), json_schema=p.schema,
                       tag=f"judge-{task}")


def _ask(backend: Backend, requests: Sequence[ChatRequest]) -> list[dict | None]:
    out: list[dict | None] = []
    for i in range(0, len(requests), BATCH):
        for resp in backend.generate(list(requests[i:i + BATCH])):
            parsed = read_structured(resp)
            out.append(parsed if isinstance(parsed, dict) else None)
    return out


def _sample(n: int, max_items: int | None, seed: int) -> np.ndarray:
    if max_items is None or n <= max_items:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_items, replace=False))


def judge_run(c: Corpus, backend: Backend, tasks: Sequence[str] = TASKS,
              max_items: int | None = 200, seed: int = 0) -> dict[str, pl.DataFrame]:
    """Judge results by level: ``turns`` (episode_id, turn, judge_*) and ``episodes``."""
    unknown = [t for t in tasks if t not in PROMPTS]
    if unknown:
        raise ValueError(f"--judge-tasks: unknown task(s) {unknown} (known: {list(PROMPTS)})")
    t = c.turns
    personas = dict(zip(zip(c.agents["episode_id"], c.agents["agent_id"], strict=True),
                        c.agents["persona_text"], strict=True))
    names = dict(zip(zip(c.agents["episode_id"], c.agents["agent_id"], strict=True),
                     c.agents["name"], strict=True))
    content = t["content"].to_list()
    eps, spk = t["episode_id"].to_list(), t["speaker"].to_list()
    turn_no = t["turn"].to_list()
    out: dict[str, pl.DataFrame] = {}
    counts: dict[str, tuple[int, int]] = {}
    turn_cols: dict[str, list] = {}
    if "contradiction" in tasks:
        history: dict[tuple[str, str], list[str]] = {}
        items = []
        for i in range(t.height):
            key = (eps[i], spk[i])
            before = history.setdefault(key, [])
            if before:
                items.append((i, "PREMISE:\n" + personas.get(key, "") + "\n"
                              + "\n".join(before[-3:]) + f"\n\nHYPOTHESIS:\n{content[i]}"))
            before.append(content[i])
        turn_cols["judge_contradiction"] = _run_items(
            backend, "contradiction", items, max_items, seed,
            lambda r: (r.get("label") == "contradiction") if r.get("label") in
            ("entailment", "neutral", "contradiction") else None, t.height, counts)
    if "roles" in tasks:
        by_ep: dict[str, list[str]] = {}
        for (e, _), n in names.items():
            by_ep.setdefault(e, []).append(n)
        items = []
        for i in range(t.height):
            me = names.get((eps[i], spk[i]), spk[i])
            others = [n for n in by_ep.get(eps[i], []) if n != me]
            items.append((i, f"SPEAKER: {me}\n{personas.get((eps[i], spk[i]), '')}\n\n"
                          f"PARTNERS: {', '.join(others)}\n\nUTTERANCE:\n{content[i]}"))
        turn_cols["judge_role_confusion"] = _run_items(
            backend, "roles", items, max_items, seed,
            lambda r: r.get("confused") if isinstance(r.get("confused"), bool) else None,
            t.height, counts)
    if turn_cols:
        out["turns"] = pl.DataFrame({"episode_id": eps, "turn": turn_no, **turn_cols},
                                    schema_overrides={k: pl.Boolean for k in turn_cols})
    if "naturalness" in tasks:
        ep_ids = t["episode_id"].unique(maintain_order=True).to_list()
        lines: dict[str, list[str]] = {}
        for i in range(t.height):
            lines.setdefault(eps[i], []).append(
                f"{names.get((eps[i], spk[i]), spk[i])}: {content[i]}")
        items = [(j, "\n".join(lines[e])) for j, e in enumerate(ep_ids)]
        scores = _run_items(backend, "naturalness", items, max_items, seed,
                            lambda r: r.get("score") if isinstance(r.get("score"), int)
                            and not isinstance(r.get("score"), bool) else None, len(ep_ids), counts)
        out["episodes"] = pl.DataFrame({"episode_id": ep_ids, "judge_naturalness": scores},
                                       schema_overrides={"judge_naturalness": pl.Float64})
    out["prompts"] = pl.DataFrame({
        "task": list(tasks), "judge_prompt": [PROMPTS[k].version for k in tasks],
        "model": [backend.model_id] * len(tasks),
        "asked": [counts.get(k, (0, 0))[0] for k in tasks],
        "unusable": [counts.get(k, (0, 0))[1] for k in tasks]})
    return out


def _run_items(backend: Backend, task: str, items: list[tuple[int, str]],
               max_items: int | None, seed: int, read, n: int,
               counts: dict[str, tuple[int, int]]) -> list:
    values: list = [None] * n
    picked = [items[j] for j in _sample(len(items), max_items, seed)]
    replies = _ask(backend, [_request(task, text) for _, text in picked])
    for (i, _), reply in zip(picked, replies, strict=True):
        values[i] = read(reply) if reply is not None else None
    failed = sum(values[i] is None for i, _ in picked)
    counts[task] = (len(picked), failed)
    return values
