"""``simlab analyze``: runs in, metrics tables and a comparative report out.

Reads only stores (``load_run``) or reference corpus files, never a live model (the
optional judge aside). Writes, under the output folder::

    metrics/turns.parquet  metrics/agents.parquet  metrics/episodes.parquet
    metrics/runs.parquet   (one row per run: group, model, pooled AUC, corpus distances)
    scenario/<table>.parquet   (each scenario's ``summarize(run)`` tables, all runs)
    report.md  report.html  plots/*.png
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from simlab.analysis.compare import find_runs, group_labels
from simlab.analysis.corpus import Corpus
from simlab.analysis.forks import fork_effects
from simlab.analysis.interviews import interview_tables
from simlab.analysis.metrics import (
    compute_metrics,
    persona_file_texts,
    persona_texts,
    reference_stats,
)
from simlab.analysis.naturalness import ReferenceStats
from simlab.analysis.reference import is_reference_file, load_reference
from simlab.analysis.results import Analysis, RunResult
from simlab.backends.base import Backend
from simlab.store import RunTables, load_run

log = logging.getLogger(__name__)


def load_inputs(paths: Sequence[str | Path], *, strict: bool = False
                ) -> list[tuple[str, RunTables]]:
    """(label, tables) per run; reference files are read as runs of their own
    (``strict``: a malformed corpus record is an error instead of being skipped)."""
    dirs: list[Path] = []
    files: list[Path] = []
    for p in paths:
        (files if is_reference_file(p) else dirs).append(Path(p))
    runs = find_runs(dirs) if dirs else []
    everything = [*runs, *files]
    root = Path(os.path.commonpath([p.resolve() for p in everything])) if everything else None
    out = []
    for p in everything:
        tables = load_reference(p, strict=strict) if p in files else load_run(p)
        label = p.resolve().relative_to(root).as_posix() if root and len(everything) > 1 \
            else p.name
        out.append((label or p.name, tables))
    return out


def default_out(paths: Sequence[str | Path]) -> Path:
    """RUN/analysis for one run; <common folder>/analysis for several or a sweep."""
    ps = [Path(p) for p in paths]
    if len(ps) == 1 and is_reference_file(ps[0]):
        return ps[0].with_name(f"{ps[0].stem}_analysis")
    if len(ps) == 1:
        return ps[0] / "analysis"
    return Path(os.path.commonpath([p.resolve() for p in ps])) / "analysis"


def scenario_summaries(tables: RunTables) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """The run's scenario class's ``summarize(run)`` tables (none for reference corpora)."""
    from simlab.registry import UnknownScenario, spec_of_run

    scenario = (tables.manifest.get("config") or {}).get("scenario") or {}
    if not scenario:
        return {}, []
    target = scenario.get("name", "?")
    try:
        cls = spec_of_run(scenario).cls
        target = f"{cls.__module__}.{cls.__qualname__}"
        found = cls.summarize(tables)
    except UnknownScenario as exc:
        msg = f"{tables.run_dir}: no scenario summaries: {exc}"
        log.warning(msg)
        return {}, [msg]
    except Exception as exc:  # a broken plugin must not lose the other metrics
        msg = f"{tables.run_dir}: {target}.summarize failed: {type(exc).__name__}: {exc}"
        log.warning(msg)
        return {}, [msg]
    bad = [k for k, v in (found or {}).items() if not isinstance(v, pl.DataFrame)]
    if bad:
        return {}, [f"{tables.run_dir}: {target}.summarize returned non-DataFrame tables {bad}"]
    return dict(found or {}), []


def analyze(
    paths: Sequence[str | Path],
    *,
    out: str | Path | None = None,
    reference: str | Path | RunTables | None = None,
    distractors: str | Path | None = None,
    judge: Backend | None = None,
    judge_tasks: Sequence[str] = ("contradiction", "naturalness", "roles"),
    judge_max: int | None = 200,
    group_by: Sequence[str] | None = None,
    formats: Sequence[str] = ("md", "html"),
    seed: int = 0,
    n_jobs: int = 1,
    plots: bool = True,
    strict: bool = False,
) -> Analysis:
    """Analyse runs (or reference corpora) and write tables, plots and the report.

    ``reference``: corpus for naturalness distances; ``distractors``: a corpus or run
    whose personas widen the persona-retrieval pools; ``judge``: a backend for the LLM
    judges (wrap it in a cache); ``group_by``: config keys to group runs by.
    """
    inputs = load_inputs(paths, strict=strict)
    out_dir = Path(out) if out is not None else default_out(paths)
    ref_stats = None
    if reference is not None:
        ref_tables = reference if isinstance(reference, RunTables) else load_reference(
            reference, strict=strict)
        ref_stats = reference_stats(ref_tables, name=str(ref_tables.run_dir))
    extra: list[str] = []
    if distractors is not None:
        if Path(distractors).suffix.lower() in (".yaml", ".yml"):
            extra = persona_file_texts(distractors)
        else:
            for _, t in load_inputs([distractors], strict=strict):
                extra += persona_texts(t)
    configs = [t.manifest.get("config") or {} for _, t in inputs]
    groups, keys = group_labels(configs, group_by)
    if len(inputs) == 1 and not group_by:
        groups = [inputs[0][0]]
    results: list[RunResult] = []
    judge_frames = []
    for (label, tables), group in zip(inputs, groups, strict=True):
        m = compute_metrics(tables, reference=ref_stats, seed=seed, n_jobs=n_jobs,
                            distractors=extra)
        res = RunResult(label, group, tables, m)
        res.scenario_tables, res.notes = scenario_summaries(tables)
        res.scenario_tables.update(interview_tables(tables.run_dir))
        if judge is not None:
            from simlab.analysis.judge import judge_run

            j = judge_run(Corpus.build(tables), judge, judge_tasks, judge_max, seed)
            if "turns" in j:
                m.turns = m.turns.join(j["turns"], on=["episode_id", "turn"], how="left",
                                       maintain_order="left")
                rates = j["turns"].group_by("episode_id").agg(
                    pl.col(c).cast(pl.Float64).mean().alias(f"{c}_rate")
                    for c in j["turns"].columns if c.startswith("judge_"))
                m.episodes = m.episodes.join(rates, on="episode_id", how="left",
                                             maintain_order="left")
            if "episodes" in j:
                m.episodes = m.episodes.join(j["episodes"], on="episode_id", how="left",
                                             maintain_order="left")
            judge_frames.append(j["prompts"].with_columns(run=pl.lit(label)))
        results.append(res)
    an = _assemble(out_dir, results, keys, ref_stats)
    an.scenario.update(fork_effects(results))  # a fork analysed with its parent
    an.judge = pl.concat(judge_frames) if judge_frames else None
    from simlab.analysis.write import write_analysis

    write_analysis(an, formats, plots=plots)
    return an


def _tag(df: pl.DataFrame, r: RunResult) -> pl.DataFrame:
    """Prefix the run's label, group, model and scenario; a scenario table that has a
    column of the same name (an opinion table's ``group``) keeps it, and the tag
    becomes ``analysis_<name>``."""
    tags = {"run": r.label, "group": r.group, "model": r.model, "scenario_name": r.scenario}
    named = {(k if k not in df.columns else f"analysis_{k}"): v for k, v in tags.items()}
    return df.with_columns(pl.lit(v).alias(k) for k, v in named.items()).select(
        *named, *df.columns)


def _assemble(out: Path, results: list[RunResult], keys: list[str],
              ref: ReferenceStats | None) -> Analysis:
    turns = pl.concat([_tag(r.metrics.turns, r) for r in results], how="diagonal_relaxed")
    agents = pl.concat([_tag(r.metrics.agents, r) for r in results], how="diagonal_relaxed")
    episodes = pl.concat([_tag(r.metrics.episodes, r) for r in results], how="diagonal_relaxed")
    rows: list[dict[str, Any]] = []
    for r in results:
        rows.append({"run": r.label, "group": r.group, "model": r.model,
                     "scenario_name": r.scenario, "run_dir": str(r.tables.run_dir),
                     "seed": r.tables.manifest.get("seed"),
                     "episodes": r.tables.episodes.height,
                     "utterances": r.metrics.turns.height, **r.metrics.run})
    run_table = pl.DataFrame(rows, infer_schema_length=None)
    scenario: dict[str, list[pl.DataFrame]] = {}
    for r in results:
        for name, df in r.scenario_tables.items():
            scenario.setdefault(name, []).append(_tag(df, r))
    return Analysis(out, results, keys, turns, agents, episodes, run_table,
                    {k: pl.concat(v, how="diagonal_relaxed") for k, v in scenario.items()}, ref)
