"""Census personas in runs: LLM validator/describer, the population CLI, scenarios."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import compose

from simlab.backends.base import Backend, ChatRequest, ChatResponse
from simlab.census.llm import contradictions, describe
from simlab.census.population import CensusSpec, census_population
from simlab.runner import make_backend, run
from simlab.store import load_run

ROW = {"AGEP": 42, "gender": "woman", "state": "Ohio", "MAR": 5,
       "marital_status": "Never married", "SCHL": 16, "education": "High school diploma",
       "ESR": 1, "PINCP": 58_000, "income": "$58,000"}


@pytest.mark.parametrize(("text", "problem"), [
    ("A 42-year-old nurse from Ohio who loves her garden.", None),
    ("She is 35 years old and lives in Ohio.", "says age 35"),
    ("He works nights in Ohio and his dog waits up.", "refers to the person as male"),
    ("She moved to Texas last spring.", "places the person in Texas"),
    ("Her husband cooks on Sundays.", "says married"),
    ("She earned a bachelor's degree in 2004.", "claims a degree"),
    ("She has been retired for years.", "says not working"),
    ("She made $120,000 last year.", "states income $120,000"),
    ("She made about $57k last year in Ohio.", None),
])
def test_contradiction_check(text, problem) -> None:
    found = contradictions(text, ROW)
    if problem is None:
        assert found == []
    else:
        assert any(problem in f for f in found), found


class Scripted(Backend):
    """Replies by a function of the request (a test double, not a model)."""

    name = "scripted"
    model_id = "scripted-1"

    def __init__(self, reply) -> None:
        self.reply = reply
        self.calls: list[ChatRequest] = []

    def generate(self, requests):
        self.calls.extend(requests)
        return [self.reply(r) for r in requests]


def _facts(req: ChatRequest) -> dict[str, str]:
    text = req.messages[1].content
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def test_describer_reasks_contradictions_then_falls_back_to_the_template() -> None:
    pop = census_population(CensusSpec(n=6), np.random.default_rng(0))

    def reply(req: ChatRequest) -> ChatResponse:
        f = _facts(req)
        if len(req.messages) > 2 or f["State"] == pop.frame["state"][0]:
            # re-asked (or the first persona): a faithful description
            return ChatResponse(text=f"A {f['Age']}-year-old from {f['State']}.")
        return ChatResponse(text="A 130-year-old from the moon.")  # contradicts the age

    backend = Scripted(reply)
    out = describe(pop.frame, backend)
    assert (out["description_source"] == "llm").all()  # all fixed on the re-ask
    assert len(backend.calls) == 6 + (pop.frame["state"] != pop.frame["state"][0]).sum()
    stubborn = describe(pop.frame, Scripted(lambda r: ChatResponse(text="He is 130 years old.")))
    assert (stubborn["description_source"] == "template").all()
    assert stubborn["description"].to_list() == pop.frame["description"].to_list()
    assert "says age 130" in stubborn["description_issues"][0]


def test_llm_validator_rejects_and_redraws() -> None:
    def judge(req: ChatRequest) -> ChatResponse:
        implausible = int(_facts(req)["Age"]) >= 60
        return ChatResponse(text="{}", parsed={"plausible": not implausible, "reason": "age"})

    spec = CensusSpec(n=30, llm_validate=True)
    pop = census_population(spec, np.random.default_rng(3), Scripted(judge))
    assert pop.frame.height == 30 and pop.frame["id"].n_unique() == 30
    assert pop.llm_rejected > 0
    assert pop.sample.rejected["llm_validator"] == pop.llm_rejected
    assert (pop.frame["AGEP"] < 60).sum() >= 30 - 3  # at most a few left after 3 rounds


def test_run_with_a_census_population_keeps_every_attribute(tmp_path: Path) -> None:
    cfg = compose("population=census", "backend=mock", "episodes=2", "progress=false",
                  "population.n=10", "population.states=[NY]")
    backend = make_backend(cfg.backend)
    run(cfg, tmp_path, backend=backend)
    agents = load_run(tmp_path).agents
    attrs = [json.loads(a) for a in agents["attributes_json"]]
    assert all(a["STATE"] == "36" and a["state"] == "New York" for a in attrs)
    assert all({"SERIALNO", "SPORDER", "PINCP", "OCCP", "big_five", "life_stage"} <= set(a)
               for a in attrs)
    assert agents["location"].unique().to_list() == ["New York"]


def test_population_cli_writes_personas_and_a_fidelity_report(tmp_path: Path) -> None:
    out = tmp_path / "pop"
    proc = subprocess.run([sys.executable, "-m", "simlab.cli.main", "population", "n=3000",
                           "seed=4", "--out", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    personas = pl.read_parquet(out / "personas.parquet")
    assert personas.height == 3000 and (personas["AGEP"] >= 18).all()
    summary = pl.read_parquet(out / "fidelity.parquet")
    assert set(summary["check"]) >= {"age_group", "education × income_bracket"}
    assert (summary.filter(pl.col("kind") == "marginal")["tvd"] < 0.05).all()
    report = (out / "fidelity.md").read_text()
    assert "| sex | marginal |" in report and (out / "fidelity.png").stat().st_size > 1000
    bad = subprocess.run([sys.executable, "-m", "simlab.cli.main", "population", "n=10",
                          "nosuchkey=1", "--out", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 2 and "nosuchkey" in bad.stderr


@pytest.mark.embedded
def test_dialogue_with_census_people_on_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    cfg = compose("population=census", "episodes=1", "progress=false",
                  "scenario.min_turns=2", "scenario.max_turns=2", "scenario.max_tokens=24")
    run(cfg, tmp_path)
    tables = load_run(tmp_path)
    said = tables.events.filter(pl.col("kind") == "utterance")
    assert said.height == 2
    # both census people take turns; a reply still unusable after its re-ask (the tiny
    # model answering as the other person) is recorded as that turn's failure
    turns = tables.events.filter(pl.col("kind").is_in(["utterance", "failure"]))
    assert turns["speaker"].n_unique() == 2
    assert tables.agents["persona_id"].str.starts_with("census-").all()
