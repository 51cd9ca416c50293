"""Persona metrics on tiny runs with hand-computed values: TF-IDF, drift, retrieval,
authorship consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _analysis_runs import make_run

from simlab.analysis.authorship import authorship, pooled_auc
from simlab.analysis.corpus import Corpus
from simlab.analysis.drift import agent_drift, turn_drift
from simlab.analysis.metrics import compute_metrics
from simlab.analysis.retrieval import persona_retrieval
from simlab.analysis.text import TfidfSpace, turn_table

PERSONAS = {"x": "aaaa", "y": "bbbb", "z": "cccc"}


def test_char_4gram_tfidf_cosine_matches_hand_computation():
    # docs: "abcd" -> {abcd}; "abcde" -> {abcd, bcde}; smooth idf = ln((1+n)/(1+df)) + 1
    space = TfidfSpace.fit(["abcd", "abcde"])
    v = space.vectors()
    idf_bcde = math.log(3 / 2) + 1  # idf(abcd) = ln(3/3) + 1 = 1
    expected = 1 / math.sqrt(1 + idf_bcde**2)  # = 0.5798
    assert float((v[0] @ v[1].T).toarray()[0, 0]) == pytest.approx(expected, rel=1e-5)
    # a profile of concatenated docs is the TF-IDF of their summed counts
    prof = space.profiles(np.array([0, 0]), 1, np.array([0, 1]))
    w = np.array([2.0, idf_bcde]) / math.hypot(2.0, idf_bcde)
    assert float((prof @ v[0].T).toarray()[0, 0]) == pytest.approx(w[0], rel=1e-5)


def test_turn_table_indexes_turns_speakers_and_previous_rows():
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "cccc")]], PERSONAS)
    t = turn_table(run)
    assert t["turn"].to_list() == [0, 1, 2]
    assert t["agent_turn"].to_list() == [0, 0, 1]
    assert t["prev_row"].to_list() == [-1, 0, 1]
    assert t["own_prev_row"].to_list() == [-1, -1, 0]
    assert t["n_words"].to_list() == [1, 1, 1]


def _drift_run():
    return make_run([[("x", "aaaa"), ("y", "yyyy"), ("x", "zzzz"), ("y", "yyyy"),
                      ("x", "bbbb")], [("z", "cccc")]], PERSONAS)


def test_persona_drift_level_and_slope_relative_to_other_personas():
    c = Corpus.build(_drift_run())
    turns = c.turns.join(turn_drift(c), on="row")
    x = turns.filter(speaker="x")
    # "aaaa": own 1, others (0+0)/2 -> 1; "zzzz": 0 - 0 -> 0; "bbbb": 0 - (1+0)/2 -> -0.5
    assert x["drift_rel"].to_list() == pytest.approx([1.0, 0.0, -0.5], abs=1e-6)
    per = agent_drift(turns).filter(speaker="x")
    assert per["drift_level"][0] == pytest.approx(0.5 / 3, abs=1e-6)
    # slope of (1, 0, -0.5) on (0, 1, 2): sum((x-1)(y-1/6)) / sum((x-1)^2) = -1.5 / 2
    assert per["drift_slope"][0] == pytest.approx(-0.75, abs=1e-6)
    # a generic reply that matches no persona scores 0, not "in persona"
    assert turns.filter(speaker="y")["drift_rel"].to_list() == pytest.approx([0, 0], abs=1e-6)


def test_persona_retrieval_mrr_with_ties_counting_against():
    c = Corpus.build(_drift_run())
    rr = c.turns.join(persona_retrieval(c, sizes=(2, 3, 50)), on="row")
    assert [col for col in rr.columns if col.startswith("rr_k")] == ["rr_k2", "rr_k3"]
    x = rr.filter(speaker="x")
    # "aaaa" ranks its persona first; "zzzz" ties everything (rank K); "bbbb" loses to B
    assert x["rr_k2"].to_list() == pytest.approx([1, 1 / 2, 1 / 2])
    assert x["rr_k3"].to_list() == pytest.approx([1, 1 / 3, 1 / 3])
    agents = compute_metrics(_drift_run(), pool_sizes=(2, 3)).agents.filter(agent_id="x")
    assert agents["mrr_k2"][0] == pytest.approx(2 / 3)
    assert agents["mrr_k3"][0] == pytest.approx(5 / 9)


def test_authorship_consistency_scores_margins_and_pooled_auc():
    # ep0: x writes aaaa then aaaa (same 1); y writes bbbb then cccc (same 0)
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "aaaa"), ("y", "cccc")]], PERSONAS)
    agents, pairs = authorship(Corpus.build(run), n_distractors=0)
    got = {r["speaker"]: r for r in agents.iter_rows(named=True)}
    # x: same 1 > cos(aaaa, L_y=cccc) = 0 -> 1; y: same 0 = cos(bbbb, L_x=aaaa) = 0 -> tie 0.5
    assert got["x"]["consistency"] == 1.0 and got["x"]["consistency_margin"] == 1.0
    assert got["y"]["consistency"] == 0.5 and got["y"]["consistency_margin"] == 0.0
    # same {1, 0} vs diff {0, 0}: wins 2, ties 2 -> (2 + 0.5 * 2) / 4
    assert pooled_auc(agents["consistency_same"].to_numpy(), pairs["diff"].to_numpy()) == 0.75


def test_authorship_loses_when_own_late_text_is_the_partners_style():
    # x: aaaa -> bbbb; y: bbbb -> cccc. y's early text equals x's late text.
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "bbbb"), ("y", "cccc")]], PERSONAS)
    agents, _ = authorship(Corpus.build(run), n_distractors=0)
    y = agents.filter(speaker="y")
    assert y["consistency"][0] == 0.0 and y["consistency_margin"][0] == -1.0


def test_authorship_odd_turn_count_splits_first_half_early():
    # x says aaaa | bbbb aaaa (early = first n//2 = 1 turn); df(aaaa) = df(bbbb) = 2, so the
    # late profile weighs both 4-grams equally: cos(aaaa, aaaa+bbbb) = 1/sqrt(2)
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "bbbb"), ("y", "cccc"),
                     ("x", "aaaa")]], {"x": "pppp", "y": "qqqq"})
    agents, _ = authorship(Corpus.build(run), n_distractors=0)
    assert agents.filter(speaker="x")["consistency_same"][0] == pytest.approx(1 / math.sqrt(2))


def test_authorship_distractors_come_from_other_episodes_only():
    run = make_run([[("x", "aaaa"), ("y", "bbbb"), ("x", "aaaa"), ("y", "bbbb")],
                    [("z", "cccc"), ("z", "cccc")]], PERSONAS)
    agents, pairs = authorship(Corpus.build(run), n_distractors=4, seed=1)
    assert agents["consistency"].to_list() == [1.0, 1.0, 1.0]
    z_pairs = pairs.filter(speaker="z")
    assert z_pairs.height > 0 and (z_pairs["diff"] == 0).all()
