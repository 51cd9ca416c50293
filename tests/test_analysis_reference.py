"""Reference corpora: the Synthetic-Persona-Chat CSV layout, generic JSONL, errors, and
analysing a corpus on its own or as the naturalness reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _analysis_runs import write_run

from simlab.analysis import CorpusError, load_reference
from simlab.analysis.analyze import analyze
from simlab.analysis.metrics import reference_stats

SPC = Path(__file__).parent / "fixtures" / "spc_small.csv"


def test_spc_csv_loads_as_a_run_with_case_insensitive_columns():
    run = load_reference(SPC)  # the fixture's header is "User 1 Personas,user 2 personas,…"
    assert run.episodes.height == 2
    assert run.episodes["n_turns"].to_list() == [6, 5]
    ep1 = run.events.filter(episode_id="ref000001")
    assert ep1["speaker"].to_list() == ["user1", "user2", "user1", "user2", "user1"]
    # a line without a "User N:" prefix continues the turn before it
    assert ep1["content"][2] == ("That must be lonely. I used to teach school, "
                                 "now I just grow tomatoes.")
    a = run.agents.filter(episode_id="ref000000", agent_id="user2")
    assert a["description"][0] == "I am a student.\nI play the guitar.\nMy favorite food is pizza."
    assert a["name"][0] == "User 2"


def test_reference_naturalness_stats_by_hand():
    ref = reference_stats(load_reference(SPC))
    # questions: ep0 3 of 6 turns, ep1 1 of 5 -> mean 0.35
    assert ref.means["question_rate"] == pytest.approx((3 / 6 + 1 / 5) / 2)
    assert ref.n_episodes == 2 and len(ref.turn_words) == 11


def test_jsonl_spc_keys_and_generic_layout(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"USER 1 PERSONAS": "I fish.", "user 2 personas": ["I bake.", "I run."],
                    "best generated conversation": "User 1: hi\nUser 2: hello"}) + "\n\n"
        + json.dumps({"personas": {"A": ["likes tea"]},
                      "turns": [{"speaker": "A", "text": "tea?"},
                                {"speaker": "B", "content": "no thanks"}]}) + "\n")
    run = load_reference(path)
    assert run.episodes["n_turns"].to_list() == [2, 2]
    assert run.agents.filter(episode_id="ref000000", agent_id="user2")["description"][0] \
        == "I bake.\nI run."
    assert run.events.filter(episode_id="ref000001")["content"].to_list() == ["tea?", "no thanks"]
    assert set(run.agents.filter(episode_id="ref000001")["agent_id"]) == {"A", "B"}


@pytest.mark.parametrize(("text", "message"), [
    ("persona a,persona b,conversation\nx,y,z\n", "missing column(s)"),
    ("user 1 personas,user 2 personas,best generated conversation\na,b,Hello there\n",
     "line 2, column 'best generated conversation': conversation must start with"),
    ("user 1 personas,user 2 personas,best generated conversation\na,b,\n",
     "line 2, column 'best generated conversation': conversation has no"),
])
def test_bad_csv_errors_name_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(CorpusError) as err:
        load_reference(path, strict=True)
    assert str(path) in str(err.value) and message in str(err.value)


def test_bad_jsonl_errors_name_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"turns": [{"speaker": "A", "text": "hi"}]}\n{"turns": [{"text": 1}]}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl: line 2: turns\[0\] needs 'speaker'"):
        load_reference(path, strict=True)
    with pytest.raises(CorpusError, match="unknown corpus format"):
        (tmp_path / "x.txt").write_text("hi")
        load_reference(tmp_path / "x.txt")


def test_reference_corpus_analysed_on_its_own(tmp_path):
    an = analyze([SPC], out=tmp_path / "out", formats=["md"], plots=False)
    assert an.episodes.height == 2 and an.turns.height == 11
    assert an.episodes["consistency"].null_count() == 0
    assert (tmp_path / "out" / "metrics" / "episodes.parquet").is_file()
    assert "spc_small.csv" in (tmp_path / "out" / "report.md").read_text()


def test_analyze_with_reference_computes_naturalness_distances(tmp_path):
    run = write_run(tmp_path / "run", [[("a", "Hi! How are you today?"),
                                        ("b", "Fine, and you?"), ("a", "Good.")]],
                    {"a": "I fish.", "b": "I bake."})
    an = analyze([run], out=tmp_path / "out", reference=SPC, formats=["md"], plots=False)
    ep = an.episodes.row(0, named=True)
    # question rate 2/3 against the reference's 0.35
    assert ep["dist_question_rate"] == pytest.approx(abs(2 / 3 - 0.35) / 0.35)
    assert ep["naturalness_distance"] > 0
    assert an.run_table["naturalness_distance"][0] is not None
    assert "Reference corpus" in (tmp_path / "out" / "report.md").read_text()
