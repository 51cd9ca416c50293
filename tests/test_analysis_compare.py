"""Run discovery, grouping by differing config keys, and the interval arithmetic."""

from __future__ import annotations

import math

import polars as pl
import pytest
from _analysis_runs import write_run
from scipy import stats

from simlab.analysis.compare import (
    compare_pair,
    differing_keys,
    find_runs,
    group_labels,
    metric_range,
    pair_key,
    paired,
    summarize_groups,
    t_interval,
    welch,
)


def _cfg(projection: str, seed: int, model: str = "m") -> dict:
    return {"seed": seed, "progress": False, "projection": {"name": projection},
            "backend": {"model": model, "cache": {"path": f"/tmp/{seed}.sqlite"}},
            "scenario": {"roles": [{"name": "coach"}], "max_turns": 10}}


def test_groups_are_the_differing_keys_with_seeds_as_replicates():
    configs = [_cfg(p, s) for p in ("egocentric", "concat") for s in (0, 1, 2)]
    assert differing_keys(configs) == ["projection.name"]
    labels, keys = group_labels(configs)
    assert keys == ["projection.name"]
    assert labels == ["projection=egocentric"] * 3 + ["projection=concat"] * 3
    two = [_cfg("egocentric", 0, "a"), _cfg("concat", 0, "b")]
    assert group_labels(two)[0] == ["backend.model=a,projection=egocentric",
                                    "backend.model=b,projection=concat"]
    assert group_labels(two, by=["backend.model"])[0] == ["backend.model=a", "backend.model=b"]
    assert group_labels([_cfg("egocentric", 0), _cfg("egocentric", 1)])[0] == ["all", "all"]


def test_a_differing_group_choice_stands_for_all_its_keys():
    econ = {"seed": 0, "scenario": {"name": "economy", "tax": 1}}
    opin = {"seed": 0, "scenario": {"name": "opinion", "graph": "sbm"}}
    assert group_labels([econ, opin]) == (["scenario=economy", "scenario=opinion"],
                                          ["scenario.name"])


def test_the_memory_policy_is_a_grouping_key():
    def cfg(policy: str, seed: int) -> dict:
        return {"seed": seed, "memory": {"policy": policy, "margin": 32, "refill": 0.75}}

    configs = [cfg(p, s) for p in ("window", "summary") for s in (0, 1)]
    assert group_labels(configs) == (["memory=window"] * 2 + ["memory=summary"] * 2,
                                     ["memory.policy"])
    # the policy stands for the group, as a choice does, even where other keys differ
    other = {"seed": 0, "memory": {"policy": "full", "margin": 64, "refill": 0.75}}
    assert group_labels([configs[0], other])[0] == ["memory=window", "memory=full"]


def test_find_runs_walks_sweep_dirs_and_names_bad_paths(tmp_path):
    for name in ("0_projection=egocentric", "1_projection=concat"):
        write_run(tmp_path / "sweep" / name, [[("a", "hi"), ("b", "yo")]], {"a": "x", "b": "y"})
    runs = find_runs([tmp_path / "sweep"])
    assert [r.name for r in runs] == ["0_projection=egocentric", "1_projection=concat"]
    assert find_runs([runs[0], tmp_path / "sweep"]) == runs  # no duplicates
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        find_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: not a run directory and holds none"):
        find_runs([tmp_path / "empty"])


def test_t_interval_by_hand():
    mean, lo, hi, n = t_interval([1.0, 2.0, 3.0, None])
    half = 4.302653 * 1.0 / math.sqrt(3)  # t(0.975, df=2) * s / sqrt(n), s = 1
    assert (mean, n) == (2.0, 3)
    assert lo == pytest.approx(2 - half, abs=1e-5) and hi == pytest.approx(2 + half, abs=1e-5)
    assert math.isnan(t_interval([5.0])[1]) and t_interval([])[3] == 0


def test_group_intervals_are_clipped_to_the_metric_range():
    eps = pl.DataFrame({"group": ["a"] * 3, "failure_rate": [0.0, 0.0, 0.3],
                        "mean_turn_words": [0.0, 0.0, 0.3]})
    out = summarize_groups(eps, ["failure_rate", "mean_turn_words"])
    half = 4.302653 * math.sqrt(0.03) / math.sqrt(3)  # s^2 = 0.03, mean 0.1
    rate, words = out.rows(named=True)
    assert rate["ci_low"] == 0.0 and rate["ci_high"] == pytest.approx(0.1 + half, abs=1e-5)
    assert words["ci_low"] == pytest.approx(0.1 - half, abs=1e-5)  # unbounded: not clipped
    assert (metric_range("mrr_k5"), metric_range("drift_level")) == ((0, 1), (-1, 1))


def test_welch_difference_interval_by_hand():
    d, lo, hi, p = welch([1.0, 2.0, 3.0], [2.0, 4.0, 6.0])
    va, vb = 1 / 3, 4 / 3  # s^2 / n per group
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)  # Welch-Satterthwaite: 2.941
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    assert d == 2.0
    assert (lo, hi) == (pytest.approx(2 - half), pytest.approx(2 + half))
    assert p == pytest.approx(stats.ttest_ind([2, 4, 6], [1, 2, 3], equal_var=False).pvalue)


def test_group_summary_and_pair_tables():
    ep = pl.DataFrame({"group": ["a", "a", "a", "b", "b", "b"],
                       "m": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0]})
    s = summarize_groups(ep, ["m", "missing"])
    assert s["group"].to_list() == ["a", "b"] and s["mean"].to_list() == [2.0, 4.0]
    assert s["n"].to_list() == [3, 3]
    pair = compare_pair(ep, ["m"], "a", "b")
    assert pair["diff"].to_list() == [2.0]
    assert pair["test"].to_list() == ["Welch"] and pair["n"].to_list() == [6]


def test_paired_difference_by_hand():
    # differences b - a: 1, 2, 3 -> mean 2, s = 1, half = t(0.975, 2) / sqrt(3)
    d, lo, hi, p, n = paired([1.0, 2.0, 3.0, None], [2.0, 4.0, 6.0, 9.0])
    half = 4.302653 / math.sqrt(3)
    assert (d, n) == (2.0, 3)
    assert (lo, hi) == (pytest.approx(2 - half, abs=1e-5), pytest.approx(2 + half, abs=1e-5))
    assert p == pytest.approx(stats.ttest_rel([2, 4, 6], [1, 2, 3]).pvalue)
    assert paired([1.0, 2.0], [2.0, 3.0])[:4] == (1.0, 1.0, 1.0, 0.0)  # constant shift
    assert math.isnan(paired([1.0], [2.0])[1])


def test_episodes_matched_on_seed_are_compared_paired():
    # seeds listed in a different order per group; b = a + 1 + small noise
    ep = pl.DataFrame({"group": ["a"] * 3 + ["b"] * 3, "episode_seed": [7, 8, 9, 9, 7, 8],
                       "m": [10.0, 20.0, 30.0, 31.5, 10.5, 21.0]})
    assert pair_key(ep, "a", "b") == "episode_seed"
    row = compare_pair(ep, ["m"], "a", "b").row(0, named=True)
    # pairs (10, 10.5), (20, 21), (30, 31.5): differences 0.5, 1, 1.5 -> mean 1, s = 0.5
    assert (row["test"], row["n"], row["diff"]) == ("paired t", 3, pytest.approx(1.0))
    assert row["ci_high"] - row["diff"] == pytest.approx(4.302653 * 0.5 / math.sqrt(3))
    welch_row = compare_pair(ep, ["m"], "a", "b", pair=False).row(0, named=True)
    assert welch_row["test"] == "Welch" and welch_row["p"] > 0.5 > row["p"]


@pytest.mark.parametrize("seeds", [
    [7, 8, 9, 7, 8, 10],  # a seed in one group only
    [7, 7, 9, 7, 7, 9],   # replicates share a seed within a group
    [7, 8, None, 7, 8, None],  # a missing seed
])
def test_unmatched_episodes_fall_back_to_welch(seeds):
    ep = pl.DataFrame({"group": ["a"] * 3 + ["b"] * 3, "seed": seeds,
                       "m": [1.0, 2.0, 3.0, 2.0, 3.0, 4.0]})
    assert pair_key(ep, "a", "b") is None
    assert compare_pair(ep, ["m"], "a", "b")["test"].to_list() == ["Welch"]


def test_per_turn_bands_are_clipped_to_the_metric_range():
    import matplotlib.pyplot as plt

    from simlab.analysis.plots import _band

    # two values per turn spread wide: the raw t-interval of the mean reaches past ±1
    t = pl.DataFrame({"group": ["g"] * 4, "turn": [0, 0, 1, 1],
                      "drift_rel": [-0.9, 0.9, 0.95, 0.99], "words": [-0.9, 0.9, 0.95, 0.99]})
    assert t_interval([-0.9, 0.9])[1] < -1
    fig, (a, b) = plt.subplots(1, 2)
    _band(a, t, "drift_rel", "turn", "group", clip=True)
    _band(b, t, "words", "turn", "group", clip=True)  # unknown metric: unbounded
    ys = [ax.collections[0].get_paths()[0].vertices[:, 1] for ax in (a, b)]
    plt.close(fig)
    assert ys[0].min() == -1.0 and ys[0].max() == 1.0
    assert ys[1].min() < -1
