"""Interviews: ask stored agents questions from where they stood at a step of their episode.

Each interviewed episode is rebuilt, not re-run. The scenario is made again from its
seed, and its first K ticks are replayed from the run's call journal
(:mod:`simlab.research.journal`) with no backend call. So each agent's view at step K is
exactly the one its run's projection and memory policy gave it, persona changes and all.
Each question is then added to that view as an interviewer's line, fitted to the
window by the agent's memory policy, and sent through the run's backend (or an
override), with the response cache on. Structured answers (:mod:`.questions`) are asked
under a JSON schema and re-asked when invalid. The answers go to
``RUN/interviews/<name>/answers.parquet``, beside an ``interview.json`` that records
what was asked and how. The stored episodes are only read.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simlab.backends.base import Backend, ChatRequest, ChatResponse, Message
from simlab.backends.structured import read_structured
from simlab.research.questions import Question
from simlab.scenario import SEED_BOUND
from simlab.scheduler.engine import TickEngine
from simlab.text import clean_reply

INTERVIEWS_DIR = "interviews"
ANSWERS_FILE = "answers.parquet"
#: how an interviewer's line opens in an agent's view
PROMPT = "[Interviewer] "
TEXT_TOKENS, STRUCTURED_TOKENS = 160, 48


@dataclass(frozen=True)
class Target:
    """Whom to ask, in which episode, as of which step (None: its end)."""

    episodes: tuple[str, ...] = ()  # empty: all
    agents: tuple[str, ...] = ()  # empty: everyone (or everyone in ``role``)
    role: str = ""
    at_step: int | None = None


def question_seed(seed: int, episode: str, agent: str, step: int, q: Question) -> int:
    """A call seed from the run seed and what is asked of whom, when: the same question
    to the same agent at the same step always gets the same seed (and cache entry)."""
    key = f"{seed}\0{episode}\0{agent}\0{step}\0{q.id}\0{q.type}\0{q.text}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % SEED_BOUND


def answer_schema(q: Question) -> dict[str, Any]:
    return {"type": "object", "properties": {"answer": q.value_schema()},
            "required": ["answer"], "additionalProperties": False}


def question_text(q: Question) -> str:
    if not q.structured:
        return f"{PROMPT}{q.text}"
    example = json.dumps({"answer": q.example()}, ensure_ascii=False)
    return f"{PROMPT}{q.text} Answer {q.how()}. Reply with JSON only, like {example}."


def with_question(view: tuple[Message, ...], text: str) -> tuple[Message, ...]:
    """``view`` with the interviewer's line last (merged into a last user message, as
    projections merge, so roles still alternate)."""
    if len(view) > 1 and view[-1].role == "user":
        return (*view[:-1], Message("user", f"{view[-1].content}\n{text}"))
    return (*view, Message("user", text))


def replay_to(engine: TickEngine, at_step: int | None) -> int:
    """Run ``engine``'s episode (a replaying one) up to step ``at_step`` (None: its end);
    the step reached."""
    sc, step = engine.scenario, 0
    while not sc.done and (at_step is None or step < at_step) and step < engine.max_steps:
        engine.tick(step)
        step += 1
    return step


def ask(engine: TickEngine, keys: Sequence[str], q: Question, step: int, seed: int,
        max_reasks: int, backend: Backend | None = None) -> list[dict[str, Any]]:
    """Ask ``q`` of every agent in ``keys`` as one batch (and re-asks as more), through
    ``backend`` (default: the engine's, past its replay); one answer row each."""
    backend = backend or engine.backend
    sc = engine.scenario
    sampling = {k: v for k, v in getattr(sc, "sampling", {}).items()
                if k in ("temperature", "top_p")}
    rows, pending = {}, []
    for key in keys:
        messages = with_question(engine.projector.view(key, sc.log), question_text(q))
        request = ChatRequest(
            messages=messages, seed=question_seed(seed, sc.episode_id, key, step, q),
            max_tokens=STRUCTURED_TOKENS if q.structured else TEXT_TOKENS,
            json_schema=answer_schema(q) if q.structured else None, tag=key, **sampling)
        pending.append(engine.fitted(request))
    for round_ in range(max_reasks + 1):
        responses = backend.generate(pending)
        retry = []
        for request, resp in zip(pending, responses, strict=True):
            row = rows.setdefault(request.tag, _row(sc, request.tag, q, step))
            row["attempts"] += 1
            value, error = _read(q, resp, sc, request.tag)
            row.update(raw=resp.text, model=resp.model, seed=request.seed or 0,
                       cached=resp.cached, error=error,
                       prompt_tokens=row["prompt_tokens"] + resp.prompt_tokens,
                       completion_tokens=row["completion_tokens"] + resp.completion_tokens,
                       latency_s=row["latency_s"] + resp.latency_s)
            if error is None:
                row.update(ok=True, answer=json.dumps(value, ensure_ascii=False),
                           value=float(value) if q.type in ("likert", "number") else None)
            elif round_ < max_reasks and (resp.ok or resp.text) and not resp.transient:
                note = f"{PROMPT}That answer was not valid ({error}). Answer again."
                retry.append(replace(request, messages=with_question(request.messages, note),
                                     seed=(request.seed or 0) + 1))
        pending = retry
        if not pending:
            break
    return [rows[k] for k in keys]


def _row(sc: Any, key: str, q: Question, step: int) -> dict[str, Any]:
    agent = sc.by_key[key]
    return {"episode_id": sc.episode_id, "agent_id": key, "role": agent.role,
            "persona_id": agent.persona.id, "step": step, "question_id": q.id,
            "question": q.text, "type": q.type, "ok": False, "answer": None, "value": None,
            "raw": "", "error": None, "model": "", "seed": 0, "attempts": 0,
            "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0, "cached": False}


def _read(q: Question, resp: ChatResponse, sc: Any, key: str) -> tuple[Any, str | None]:
    if not resp.ok and not (q.structured and resp.text):
        return None, f"backend error: {resp.error}"
    if not q.structured:
        names = [a.name for k, a in sc.by_key.items() if k != key]
        text = clean_reply(resp.text, sc.by_key[key].name, names, max_chars=q.max_chars,
                           truncated=resp.finish_reason == "length")
        return (text, None) if text else (None, "empty answer")
    # a reply that missed its schema still says what it answered: read it for the error
    data = read_structured(replace(resp, error="") if resp.text else resp, search=True)
    if not isinstance(data, dict) or "answer" not in data:
        return None, 'expected a JSON object like {"answer": ...}'
    try:
        return q.read(data["answer"]), None
    except ValueError as exc:
        return None, str(exc)


def write_answers(out: Path, rows: list[dict[str, Any]], record: dict[str, Any]) -> Path:
    """``answers.parquet`` and ``interview.json`` in ``out``, each written whole or not
    at all (temporary name, then rename)."""
    import polars as pl

    from simlab.store.manifest import atomic_write_json, redact_secrets

    record = redact_secrets(record)
    out.mkdir(parents=True, exist_ok=True)
    frame = pl.DataFrame(rows, schema_overrides={"value": pl.Float64, "answer": pl.String,
                                                 "error": pl.String},
                         infer_schema_length=None)
    part = out / f".{ANSWERS_FILE}.{time.time_ns()}.part"
    frame.write_parquet(part)
    part.replace(out / ANSWERS_FILE)
    atomic_write_json(out / "interview.json", record)
    return out / ANSWERS_FILE


def make_backend_for(cfg: Any, run_dir: Path) -> Backend:
    """The run's backend config with its response cache on (in the run's own
    ``interviews/`` folder unless the run had one), so a re-asked interview repeats."""
    from omegaconf import OmegaConf

    from simlab.run_parts import make_backend

    node = OmegaConf.to_container(cfg.backend, resolve=True)
    assert isinstance(node, dict)
    cache = dict(node.get("cache") or {})
    if not cache.get("enabled"):
        cache = {"enabled": True, "path": str(run_dir / INTERVIEWS_DIR / "cache.sqlite")}
    node["cache"] = cache
    return make_backend(OmegaConf.create(node))


#: An interview's name is a folder under ``RUN/interviews/`` and a table name.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def run_interview(run_dir: str | Path, questions: Sequence[Question], target: Target, *,
                  name: str, overrides: Sequence[str] = (), max_reasks: int = 2) -> Path:
    """Interview ``target`` in the stored run at ``run_dir``; the answers' path.

    The episodes are rebuilt under the run's own config (its backend only counts tokens
    then: every call comes from the journal); ``overrides`` (another backend) apply to
    the questions only."""
    from simlab.cli.compose import compose
    from simlab.config import embedder_for, engine_config, memory_config
    from simlab.population import build_population
    from simlab.registry import spec_of_run
    from simlab.research.fork import inherited_overrides
    from simlab.research.interventions import parse_interventions
    from simlab.research.journal import Replay
    from simlab.run_parts import _plain, episode_seeds, make_backend, make_scenario
    from simlab.store import load_run, read_calls
    from simlab.store.lock import run_lock

    if not NAME_RE.match(name):
        raise ValueError(f"--name: {name!r} must be letters, digits, '_' or '-' (a folder "
                         f"under interviews/)")
    if max_reasks < 0:
        raise ValueError(f"--max-reasks: must be >= 0, got {max_reasks}")
    run_dir = Path(run_dir).resolve()
    cfg = compose(inherited_overrides(run_dir, []))
    asking = compose(inherited_overrides(run_dir, list(overrides))) if overrides else cfg
    episodes = load_run(run_dir).episodes.select("episode_id", "episode_index").rows()
    wanted = [e for e in target.episodes if e not in {eid for eid, _ in episodes}]
    if wanted:
        raise ValueError(f"--episode: {wanted} are not stored in {run_dir}")
    chosen = [(e, i) for e, i in episodes if not target.episodes or e in target.episodes]
    rows: list[dict[str, Any]] = []
    reached: dict[str, int] = {}
    with run_lock(run_dir):
        counter, backend, embedder = make_backend(cfg.backend), None, None
        try:
            backend = make_backend_for(asking, run_dir)
            memory = memory_config(cfg)
            embedder = embedder_for(memory, cfg.get("backend"))
            rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
            population = build_population(cfg.population, rng, counter)
            cls = spec_of_run({"name": cfg.scenario.name}).cls
            interventions = parse_interventions(_plain(cfg).get("interventions") or [], cls,
                                                population)
            for eid, index in chosen:
                calls = read_calls(run_dir, eid)
                if calls is None:
                    raise ValueError(f"{run_dir}: episode {eid} has no call journal "
                                     f"(stored by an older simlab): it cannot be rebuilt")
                engine = TickEngine(
                    make_scenario(cfg, population, index, seeds[index]), counter,
                    settings=engine_config(cfg), projection=_plain(cfg)["projection"]["name"],
                    memory=memory, embedder=embedder, interventions=interventions,
                    replay=Replay(tuple(calls), target.at_step if target.at_step is not None
                                  else 1 << 62, parent=f"{run_dir}/{eid}"))
                step = reached[eid] = replay_to(engine, target.at_step)
                sc = engine.scenario
                keys = [k for k in sc.participants if k not in sc.retired
                        and (not target.agents or k in target.agents)
                        and (not target.role or sc.by_key[k].role == target.role)]
                for q in questions:
                    rows += ask(engine, keys, q, step, cfg.seed, max_reasks, backend)
        finally:
            if embedder is not None:
                embedder.close()
            stats = backend.stats() if backend is not None else {}
            for b in (counter, backend):
                if b is not None:
                    b.close()
    if not rows:
        who = (f"--agent {', '.join(target.agents)}" if target.agents else
               f"--role {target.role}" if target.role else "the episodes")
        raise ValueError(f"{run_dir}: {who} selects no agent to interview")
    record = {"name": name, "run_dir": str(run_dir), "created_at": time.strftime(
                  "%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "target": {"episodes": list(target.episodes), "agents": list(target.agents),
                         "role": target.role, "at_step": target.at_step},
              "steps_reached": reached,  # an --at-step past an episode's end: its end
              "questions": [q.__dict__ for q in questions], "overrides": list(overrides),
              "max_reasks": max_reasks, "answers": len(rows),
              "failed": sum(1 for r in rows if not r["ok"]), "backend_stats": stats}
    return write_answers(run_dir / INTERVIEWS_DIR / name, rows, record)
