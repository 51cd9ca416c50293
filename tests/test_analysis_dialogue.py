"""Dialogue metrics on tiny runs with hand-computed values: echoing, role confusion,
naturalness features and distances."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import polars as pl
import pytest
from _analysis_runs import make_run

from simlab.analysis.corpus import Corpus
from simlab.analysis.echo import echo_summary, turn_echo
from simlab.analysis.metrics import compute_metrics
from simlab.analysis.naturalness import ReferenceStats, distances, turn_naturalness
from simlab.analysis.roles import turn_roles
from simlab.analysis.text import turn_table

PERSONAS = {"x": "aaaa", "y": "bbbb", "z": "cccc"}


def test_echo_rate_margin_and_trend():
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "bbbb"), ("y", "cccc"),
                     ("x", "aaaa")]], PERSONAS)
    c = Corpus.build(run)
    t = c.turns.join(turn_echo(c), on="row")
    # t2 repeats the partner's t1 (1) and not its own t0 (0): margin 1, echoed;
    # t3, t4 match neither: margin 0. t0 and t1 have no own earlier turn: not eligible.
    assert t["echo_margin"].to_list()[:2] == [None, None]
    assert t["echo_margin"].to_list()[2:] == pytest.approx([1.0, 0.0, 0.0])
    ep = echo_summary(t, ["episode_id"])
    assert ep["echo_rate"][0] == pytest.approx(1 / 3)
    # slope of (1, 0, 0) on turns (2, 3, 4): -1 / 2
    assert ep["echo_trend"][0] == pytest.approx(-0.5)
    per = echo_summary(t, ["speaker"]).sort("speaker")
    assert per["echo_rate"].to_list() == [0.5, 0.0]


def test_echo_degrades_to_null_without_a_partner():
    run = make_run([[("x", "aaaa"), ("x", "aaaa"), ("x", "bbbb")]], PERSONAS)
    m = compute_metrics(run)
    assert m.turns["echo_margin"].null_count() == 3
    assert m.episodes["echo_rate"][0] is None
    assert m.episodes["consistency"][0] is None  # no other agent to compare against
    assert m.episodes["turn_balance"][0] is None  # one speaker: no turn-taking


ROLE_TEXTS = [
    ("ana", "As an AI, I cannot have hobbies."),              # assistant
    ("ben", "Ana: sure, I will bring the papers."),           # writes a line for Ana
    ("ana", "Do you have a plan? Yes, I do."),                # answers own question
    ("ben", "Hi, I'm Ana and I need some help."),             # claims partner's name
    ("ana", "I'm Ana, nice to meet you."),                    # own name: fine
    ("ben", "aaaa"),                                          # Ana's persona text
    ("ana", "See you tomorrow."),                             # nothing
]


def test_role_confusion_detectors():
    run = make_run([ROLE_TEXTS], {"ana": "aaaa", "ben": "bbbb"},
                   names={"ana": "Ana Diaz", "ben": "Ben Okafor"})
    c = Corpus.build(run)
    r = c.turns.join(turn_roles(c), on="row").sort("turn")
    assert r["role_assistant"].to_list() == [True] + [False] * 6
    assert r["role_partner_label"].to_list() == [False, True] + [False] * 5
    assert r["role_self_answer"].to_list() == [False, False, True] + [False] * 4
    assert r["role_partner_name"].to_list() == [False] * 3 + [True] + [False] * 3
    # turn 5: cos to Ana's persona 1 - cos to own 0 = 1 > delta
    assert r["role_partner_persona"].to_list() == [False] * 5 + [True, False]
    assert r["role_confusion"].to_list() == [True] * 4 + [False, True, False]
    ep = compute_metrics(run).episodes
    assert ep["role_confusion_rate"][0] == pytest.approx(5 / 7)
    assert ep["role_assistant_rate"][0] == pytest.approx(1 / 7)


def test_role_detectors_read_the_verbatim_reply_and_count_failed_replies():
    run = make_run([[("ana", "Sure, I will bring the papers."), ("ben", "See you then."),
                     ("ana", "Fine.")]], {"ana": "aaaa", "ben": "bbbb"},
                   names={"ana": "Ana Diaz", "ben": "Ben Okafor"})
    ev = run.events
    # turn 0 was repaired: the model had also written Ben's line
    raw0 = '{"raw": "Sure, I will bring the papers.\\nBen: great, thanks!"}'
    ev = ev.with_columns(data=pl.when(pl.col("seq") == 0).then(pl.lit(raw0))
                         .otherwise(pl.col("data")))
    failed = ev.head(2).with_columns(
        seq=pl.Series([3, 4]), kind=pl.lit("failure"), speaker=pl.Series(["ben", "ana"]),
        content=pl.Series(["empty reply after repair", "backend error: timeout"]),
        # ben's reply was all Ana's lines; ana's failure has no reply to keep
        data=pl.Series(['{"raw": "Ana: I am so glad you came."}', ""]))
    run = replace(run, events=pl.concat([ev, failed]),
                  episodes=run.episodes.with_columns(n_failures=pl.lit(2, pl.Int64)))
    m = compute_metrics(run)
    assert m.turns.sort("turn")["role_partner_label"].to_list() == [True, False, False]
    ep = m.episodes.row(0, named=True)
    # confused: repaired turn 0 and ben's failed reply, of 3 utterances + 1 kept reply
    assert ep["role_confusion_rate"] == pytest.approx(2 / 4)
    assert ep["role_partner_label_rate"] == pytest.approx(2 / 4)
    assert ep["failure_rate"] == pytest.approx(2 / 5)
    per = dict(m.agents.select("agent_id", "role_confusion_rate").iter_rows())
    assert per == pytest.approx({"ana": 1 / 2, "ben": 1 / 2})


NAT_TURNS = [("a", "Hello there friend?"), ("b", "hello there friend"), ("a", "ok")]


def test_naturalness_features_by_hand():
    run = make_run([NAT_TURNS], {"a": "pppp", "b": "qqqq"})
    per_turn, ep = turn_naturalness(turn_table(run))
    row = ep.row(0, named=True)
    assert row["mean_turn_words"] == pytest.approx(7 / 3)
    assert row["distinct_1"] == pytest.approx(4 / 7)  # hello there friend ok / 7 tokens
    assert row["distinct_2"] == pytest.approx(2 / 4)  # 2 unique of 4 bigrams
    # trigram "hello there friend": new at t0 (0), repeated at t1 (1); t2 has none
    assert per_turn.sort("row")["repetition"].to_list() == [0.0, 1.0, None]
    assert row["repetition"] == pytest.approx(0.5)
    assert row["question_rate"] == pytest.approx(1 / 3)
    p = np.array([4 / 7, 3 / 7])  # words: a 3 + 1, b 3
    assert row["turn_balance"] == pytest.approx(-(p * np.log(p)).sum() / math.log(2))


def test_naturalness_distance_penalises_both_directions():
    run = make_run([NAT_TURNS], {"a": "pppp", "b": "qqqq"})
    turns = turn_table(run)
    _, ep = turn_naturalness(turns)
    ref = ReferenceStats("r", {"distinct_1": 0.5, "distinct_2": 0.5, "repetition": 0.25,
                               "question_rate": 2 / 3, "turn_balance": 1.0},
                         np.array([2.0, 2.0]), 2)
    d = distances(ep, turns, ref).row(0, named=True)
    assert d["dist_distinct_1"] == pytest.approx((4 / 7 - 0.5) / 0.5)   # above the reference
    assert d["dist_distinct_2"] == pytest.approx(0.0)
    assert d["dist_repetition"] == pytest.approx(1.0)                  # 0.5 vs 0.25
    assert d["dist_question_rate"] == pytest.approx(0.5)               # 1/3 vs 2/3: below
    # W1({1, 3, 3}, {2, 2}) = 1/3 * 1 + 2/3 * 1 = 1, over the reference mean 2
    assert d["dist_turn_length"] == pytest.approx(0.5)
    parts = [d[k] for k in d if k.startswith("dist_")]
    assert d["naturalness_distance"] == pytest.approx(sum(parts) / 6)


def test_every_stored_episode_gets_a_metrics_row_even_without_utterances():
    m = compute_metrics(make_run([[("x", "aaaa"), ("y", "bbbb")], []], PERSONAS))
    assert m.episodes["episode_id"].to_list() == ["ep0", "ep1"]
    assert m.episodes.filter(episode_id="ep1")["n_utterances"][0] is None


def test_integer_w1_equals_scipy_wasserstein():
    from scipy.stats import wasserstein_distance

    from simlab.analysis.naturalness import length_distance

    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 30, size=17), rng.integers(2, 25, size=40).astype(float)
    ref = ReferenceStats("r", {}, b, 1)
    assert length_distance(a, ref) == pytest.approx(wasserstein_distance(a, b) / b.mean())


def test_failure_rate_counts_failed_turns_among_attempted():
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "aaaa")]], PERSONAS)
    run = type(run)(run.run_dir, run.manifest, run.events, run.agents,
                    run.episodes.with_columns(n_failures=pl.lit(1, dtype=pl.Int64)))
    assert compute_metrics(run).episodes["failure_rate"][0] == pytest.approx(1 / 4)
