"""Writing an :class:`~simlab.analysis.analyze.Analysis`: Parquet tables, plots, report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from simlab.analysis.compare import summarize_groups
from simlab.analysis.report import Report, add_comparison, with_ci
from simlab.analysis.results import Analysis, group_auc
from simlab.analysis.scenario_report import scenario_section

#: Episode-level metrics in the headline comparison, in reading order.
HEADLINE = ("drift_level", "drift_slope", "consistency", "consistency_margin", "mrr_k2",
            "mrr_k5", "mrr_k10", "mrr_k20", "mrr_k50", "echo_rate", "echo_trend",
            "role_confusion_rate", "failure_rate", "naturalness_distance",
            "judge_contradiction_rate", "judge_role_confusion_rate", "judge_naturalness")
DESCRIPTIVE = ("mean_turn_words", "distinct_1", "distinct_2", "repetition", "question_rate",
               "turn_balance", "role_assistant_rate", "role_partner_label_rate",
               "role_self_answer_rate", "role_partner_name_rate", "role_partner_persona_rate",
               "dist_distinct_1", "dist_distinct_2", "dist_repetition", "dist_question_rate",
               "dist_turn_balance", "dist_turn_length")
FORMATS = ("md", "html")


def write_analysis(an: Analysis, formats: Sequence[str] = FORMATS,
                   plots: bool = True) -> list[Path]:
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"--format: unknown report format(s) {bad} (use {list(FORMATS)})")
    out = an.out
    (out / "metrics").mkdir(parents=True, exist_ok=True)
    files = []
    for name, df in (("turns", an.turns), ("agents", an.agents), ("episodes", an.episodes),
                     ("runs", an.run_table)):
        files.append(out / "metrics" / f"{name}.parquet")
        df.write_parquet(files[-1])
    if an.scenario:
        (out / "scenario").mkdir(exist_ok=True)
        for name, df in an.scenario.items():
            files.append(out / "scenario" / f"{name}.parquet")
            df.write_parquet(files[-1])
    if an.judge is not None:
        files.append(out / "metrics" / "judge_prompts.parquet")
        an.judge.write_parquet(files[-1])
    report = build_report(an, plots)
    if "md" in formats:
        files.append(out / "report.md")
        files[-1].write_text(report.markdown(), encoding="utf-8")
    if "html" in formats:
        files.append(out / "report.html")
        files[-1].write_text(report.html(), encoding="utf-8")
    an.files = files
    return files


def _plot(name: str) -> Callable[..., Path | None]:
    """A plotting function, imported on first use (matplotlib is slow to import)."""
    from simlab.analysis import plots

    return getattr(plots, name)


def headline_metrics(episodes: pl.DataFrame) -> list[str]:
    """Headline metrics present with at least one value."""
    return [m for m in HEADLINE if m in episodes.columns and episodes[m].drop_nulls().len()]


def build_report(an: Analysis, make_plots: bool = True) -> Report:
    out = an.out
    if make_plots:
        (out / "plots").mkdir(parents=True, exist_ok=True)
    rep = Report("simlab analysis", images=make_plots)
    groups = an.episodes["group"].unique(maintain_order=True).to_list()
    rep.para(f"{len(an.runs)} run(s), {an.episodes.height} episodes, {an.turns.height} "
             f"utterances, {len(groups)} group(s). Metric definitions: docs/metrics.md. "
             "Intervals are 95% Student-t intervals over episodes, clipped to each "
             "metric's range (rates in [0, 1]).")
    if an.group_keys:
        rep.para("Runs are grouped by the config keys that differ between them (seeds are "
                 f"replicates): {', '.join(an.group_keys)}.")
    rep.heading("Runs")
    rep.table(an.run_table.select("run", "group", "model", "scenario_name", "seed", "episodes",
                                  "utterances"), max_rows=200)

    head = headline_metrics(an.episodes)
    fig = out / "plots"
    if head:
        _headline(rep, an, head, fig)
    if an.turns.height:
        _text_metrics(rep, an, fig)
    else:
        rep.para("These runs hold no utterances, so the text metrics (drift, consistency, "
                 "adherence, echoing, role confusion, naturalness) do not apply; see the "
                 "scenario metrics.")
    if an.reference is not None:
        rep.heading("Reference corpus")
        rep.para(f"Distances are to {an.reference.name} ({an.reference.n_episodes} "
                 "conversations): relative deviation of each feature, 1-Wasserstein of turn "
                 "lengths over the reference mean; both directions penalised.")
        rep.table(an.reference.as_frame())
        cols = [c for c in an.run_table.columns if c.startswith("dist_")
                or c == "naturalness_distance"]
        rep.table(an.run_table.select("run", "group", *cols), max_rows=200)
    if an.judge is not None:
        rep.heading("LLM judge")
        rep.para("Prompt versions, judge model, items asked and unusable replies per run.")
        rep.table(an.judge, max_rows=200)
    if an.scenario:
        rep.heading("Scenario metrics")
        scenario_section(rep, an.scenario, fig, out)
    notes = [n for r in an.runs for n in r.notes]
    if notes:
        rep.heading("Notes")
        for n in notes:
            rep.para(n)
    return rep


def _headline(rep: Report, an: Analysis, head: list[str], fig: Path) -> None:
    rep.heading("Headline comparison")
    add_comparison(rep, an.episodes, head, root=an.out, figure=fig / "headline.png",
                   caption="Episode-level metrics by group (95% CI)")


def _text_metrics(rep: Report, an: Analysis, fig: Path) -> None:
    out = an.out
    rep.heading("Consistency (authorship verification)")
    rep.para("Pooled AUC per group: probability that an agent's early profile is closer to "
             "its own late profile than to another agent's (0.5 = chance).")
    rep.table(group_auc(an))
    rep.heading("Persona drift over turns")
    rep.figure(_plot("by_turn"), an.turns, "drift_rel", "agent_turn", fig / "drift_by_turn.png",
               "Similarity to own persona minus other personas", "relative persona similarity",
               caption="Persona drift (95% CI)", root=out)
    rep.heading("Adherence (persona retrieval)")
    mrr = summarize_groups(an.episodes, [c for c in an.episodes.columns
                                         if c.startswith("mrr_k")])
    rep.table(with_ci(mrr), max_rows=20)
    rep.figure(_plot("mrr_curve"), mrr, fig / "mrr_by_pool.png",
               caption="MRR at growing candidate pools (95% CI)", root=out)
    rep.heading("Echoing over the conversation")
    rep.figure(_plot("by_turn"), an.turns, "echo_margin", "turn", fig / "echo_by_turn.png",
               "Similarity to partner's last turn minus own last turn", "echo margin",
               caption="Echo margin by turn (95% CI)", root=out)
    rep.heading("Naturalness and role confusion (descriptive)")
    rep.table(with_ci(summarize_groups(an.episodes, DESCRIPTIVE)), max_rows=100)
    ref_words = an.reference.turn_words if an.reference is not None else None
    rep.figure(_plot("length_hist"), an.turns, ref_words, fig / "turn_lengths.png",
               caption="Turn length distribution", root=out)
