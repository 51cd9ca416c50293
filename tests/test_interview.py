"""Interviews: questions from an agent's own view at a step, validated and re-asked,
identical on a re-run, stored beside the run without touching its episodes; the
questionnaire machinery the opinion survey shares; answers in ``simlab analyze``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import compose

from simlab.analysis.interviews import interview_tables
from simlab.backends.mock import MockBackend
from simlab.population import build_population
from simlab.research.interview import (
    PROMPT,
    Target,
    ask,
    question_seed,
    replay_to,
    run_interview,
)
from simlab.research.journal import Replay
from simlab.research.questions import parse_questions, questionnaire_schema, read_answers
from simlab.runner import episode_seeds, make_scenario
from simlab.scheduler import TickEngine
from simlab.store import read_calls

BASE = ["scenario=opinion", "backend=mock", "population=sampled", "population.n=8",
        "scenario.n_agents=4", "scenario.ticks=4", "scenario.survey_every=0", "episodes=2",
        "progress=false"]
QUESTIONS = parse_questions([
    {"id": "trust", "text": "How much do you trust the news?", "type": "likert", "scale": 5},
    {"id": "vote", "text": "Will you vote?", "type": "choice", "options": ["yes", "no"]},
    {"id": "why", "text": "What changed your mind, if anything?"},
], "questions", default_type="text")


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("interview") / "run"
    cmd = [sys.executable, "-m", "simlab.cli.main", *BASE, f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def _checksums(run_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((run_dir / "episodes").rglob("*")) if p.is_file()}


def test_an_interview_asks_everyone_and_stores_the_answers(stored):
    before = _checksums(stored)
    out = run_interview(stored, QUESTIONS, Target(), name="post")
    answers = pl.read_parquet(out)
    assert out == stored / "interviews" / "post" / "answers.parquet"
    assert answers.height == 2 * 4 * 3  # episodes × agents × questions
    assert answers.group_by("question_id").len().sort("question_id").rows() == \
        [("trust", 8), ("vote", 8), ("why", 8)]
    likert = answers.filter(question_id="trust")
    assert likert["ok"].all() and likert["value"].is_between(1, 5).all()
    assert set(answers.filter(question_id="vote")["answer"].to_list()) <= {'"yes"', '"no"'}
    assert answers["step"].unique().to_list() == [4]  # the end: 4 days
    record = json.loads((out.parent / "interview.json").read_text())
    assert record["answers"] == 24 and record["target"]["at_step"] is None
    assert _checksums(stored) == before  # the episodes are only read


def test_a_rerun_gives_identical_answers_from_the_cache(stored):
    calm = parse_questions([{"id": "calm", "text": "How calm are you today?",
                             "type": "likert"}], "q")  # asked by no other test: a cold cache
    first = pl.read_parquet(run_interview(stored, calm, Target(), name="again"))
    second = pl.read_parquet(run_interview(stored, calm, Target(), name="again"))
    assert second.drop("cached", "latency_s").equals(first.drop("cached", "latency_s"))
    assert second["cached"].all() and not first["cached"].any()


def test_the_view_is_the_agents_own_as_of_the_step(stored):
    cfg = compose(*BASE)
    rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
    pop = build_population(cfg.population, rng, None)
    backend = MockBackend()
    engine = TickEngine(make_scenario(cfg, pop, 0, seeds[0]), backend,
                        replay=Replay(tuple(read_calls(stored, "ep00000")), 2))
    assert replay_to(engine, 2) == 2
    assert backend.calls == []  # the two days came from the journal
    sc = engine.scenario
    assert {e.step for e in sc.log} == {0, 1}
    key = sc.participants[0]
    (row,) = ask(engine, [key], QUESTIONS[0], 2, cfg.seed, max_reasks=0)
    (request,) = backend.calls
    assert request.messages[:-1] == engine.projector.view(key, sc.log)[:-1]
    assert request.messages[-1].content.endswith(
        f'{PROMPT}How much do you trust the news? Answer 1 to 5: 1 = strongly disagree, '
        f'5 = strongly agree. Reply with JSON only, like {{"answer": 3}}.')
    assert request.seed == question_seed(cfg.seed, "ep00000", key, 2, QUESTIONS[0])
    assert row["step"] == 2 and row["ok"]


def test_an_invalid_answer_is_re_asked_and_then_recorded_as_failed(stored):
    cfg = compose(*BASE)
    rng, seeds = episode_seeds(cfg.seed, cfg.episodes)
    pop = build_population(cfg.population, rng, None)
    backend = MockBackend(replies=['{"answer": 9}', '{"answer": 4}', "no", "never"])
    engine = TickEngine(make_scenario(cfg, pop, 0, seeds[0]), backend,
                        replay=Replay(tuple(read_calls(stored, "ep00000")), 1))
    replay_to(engine, 1)
    key = engine.scenario.participants[0]
    (good,) = ask(engine, [key], QUESTIONS[0], 1, 0, max_reasks=1)
    assert (good["ok"], good["value"], good["attempts"]) == (True, 4.0, 2)
    assert "That answer was not valid (trust: expected an integer from 1 to 5, got 9)" in \
        backend.calls[1].messages[-1].content
    (bad,) = ask(engine, [key], QUESTIONS[1], 1, 0, max_reasks=1)
    assert (bad["ok"], bad["attempts"], bad["answer"]) == (False, 2, None)
    assert bad["error"] == 'expected a JSON object like {"answer": ...}'


def test_selected_agents_and_a_step_and_the_cli(stored):
    qfile = stored.parent / "q.yaml"
    qfile.write_text("name: early\nquestions:\n  - {id: trust, text: \"Trust?\", type: likert, "
                     "scale: 7}\n")
    cmd = [sys.executable, "-m", "simlab.cli.main", "interview", str(stored), "--questions",
           str(qfile), "--episode", "ep00001", "--at-step", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    answers = pl.read_parquet(stored / "interviews" / "early" / "answers.parquet")
    assert answers["episode_id"].unique().to_list() == ["ep00001"]
    assert answers["step"].unique().to_list() == [1] and answers.height == 4
    one = answers["agent_id"][0]
    done = subprocess.run([*cmd[:6], "What now?", "--agent", one, "--name", "one"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    single = pl.read_parquet(stored / "interviews" / "one" / "answers.parquet")
    assert single["agent_id"].unique().to_list() == [one] and single["type"][0] == "text"
    bad = subprocess.run([*cmd[:6], str(stored / "missing.yaml")], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "missing.yaml: no such file" in bad.stderr


def test_interview_answers_are_per_episode_tables_for_analyze(stored):
    run_interview(stored, QUESTIONS, Target(), name="post")
    table = interview_tables(stored)["interview_post"]
    answers = pl.read_parquet(stored / "interviews" / "post" / "answers.parquet")
    want = answers.filter(question_id="trust", episode_id="ep00000")["value"].mean()
    assert table.filter(episode_id="ep00000")["trust"][0] == pytest.approx(want)
    shares = table.select(pl.col("vote=no") + pl.col("vote=yes"))
    assert shares.to_series().to_list() == [1.0, 1.0]
    assert table["n_answered"].to_list() == [4, 4] and "why" not in table.columns


# ----------------------------------------------------------- questionnaires
@pytest.mark.parametrize(("raw", "message"), [
    ([{"id": "a", "text": "q", "type": "scale"}], r"q\[0\]\.type: expected one of likert"),
    ([{"id": "a", "text": "q", "type": "choice", "options": ["x"]}], r"q\[0\]\.options"),
    ([{"id": "a", "text": "q", "type": "number", "min": 5, "max": 1}], r"q\[0\]\.min"),
    ([{"id": "a", "text": "q", "type": "likert", "labels": ["x"]}], r"q\[0\]\.labels"),
    ([{"id": "a", "text": "q", "type": "text", "scale": 5}],
     r"q\[0\]\.scale: not a field of a text question"),
])
def test_bad_questions_are_named(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_questions(raw, "q")


def test_answers_are_validated_by_type():
    qs = parse_questions([
        {"id": "s", "text": "s", "type": "likert", "scale": 3},
        {"id": "c", "text": "c", "type": "choice", "options": ["a", "b"]},
        {"id": "n", "text": "n", "type": "number", "min": 0, "max": 10},
        {"id": "t", "text": "t", "type": "text", "max_chars": 5}], "q")
    assert read_answers({"s": 3, "c": "b", "n": 2.5, "t": " hello  world "}, qs) == \
        {"s": 3, "c": "b", "n": 2.5, "t": "hello"}
    assert read_answers({"s": 4, "c": "a", "n": 1, "t": "x"}, qs) == \
        "s: expected an integer from 1 to 3, got 4"
    assert read_answers({"s": 1, "c": "z", "n": 1, "t": "x"}, qs).startswith("c: expected one")
    assert read_answers({"s": 1, "c": "a", "n": 11, "t": "x"}, qs).startswith("n: expected a "
                                                                              "number from 0")
    schema = questionnaire_schema(qs)
    assert schema["required"] == ["s", "c", "n", "t"]
    assert schema["properties"]["n"] == {"type": "number", "minimum": 0, "maximum": 10}
