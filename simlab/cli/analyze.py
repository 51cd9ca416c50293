"""``simlab analyze RUN_DIR... [--reference PATH] [--out DIR] [--judge BACKEND]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from simlab.backends.base import Backend


def make_judge(name: str, overrides: Sequence[str], cache: str | Path) -> Backend:
    """A judge backend from the ``conf/backend/<name>.yaml`` group, with the response
    cache on at ``cache``; ``overrides`` are Hydra overrides of ``backend.*``."""
    from simlab.cli.compose import compose
    from simlab.runner import make_backend

    extra = [o if o.startswith("backend.") else f"backend.{o}" for o in overrides]
    cfg = compose([f"backend={name}", *extra, "backend.cache.enabled=true",
                   f"backend.cache.path={Path(cache).resolve()}"])
    return make_backend(cfg.backend)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simlab analyze",
        description="Persona consistency, drift, adherence, echoing, role confusion and "
                    "naturalness metrics for stored runs, compared across runs/groups.")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR",
                   help="run directories, folders of runs (sweeps), or corpus files "
                        "(.csv/.jsonl) to analyse as runs")
    p.add_argument("--reference", metavar="PATH",
                   help="reference corpus (.csv in the Synthetic-Persona-Chat layout or "
                        ".jsonl) for naturalness distances")
    p.add_argument("--distractors", metavar="PATH",
                   help="persona file (.yaml), corpus file or run(s) whose personas are "
                        "added as distractors to the persona-retrieval pools (for MRR at "
                        "pools beyond the run's own personas)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/analysis, "
                   "or <common folder>/analysis for several runs)")
    p.add_argument("--format", default="md,html", help="report formats: md, html (default both)")
    p.add_argument("--group-by", metavar="KEY", action="append",
                   help="config key to group runs by (repeatable; default: keys that differ)")
    p.add_argument("--no-plots", action="store_true", help="skip the figures (faster)")
    p.add_argument("--seed", type=int, default=0, help="seed for distractor sampling")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed corpus record instead of skipping it")
    p.add_argument("--jobs", type=int, default=1, help="processes for vectorising text")
    p.add_argument("--judge", metavar="BACKEND",
                   help="also run the LLM judges through this backend config "
                        "(mock, llamacpp, litellm …)")
    p.add_argument("--judge-set", metavar="KEY=VALUE", action="append", default=[],
                   help="override of the judge backend config, e.g. model=openai/gpt-4o-mini")
    p.add_argument("--judge-tasks", default="contradiction,naturalness,roles",
                   help="comma-separated judge tasks")
    p.add_argument("--judge-max", type=int, default=200,
                   help="at most this many items per task and run (sampled; 0 = all)")
    p.add_argument("--judge-cache", metavar="PATH",
                   help="SQLite cache for judge replies (default: OUT/judge_cache.sqlite)")
    return p


def main(argv: list[str]) -> int:
    from omegaconf.errors import OmegaConfBaseException

    from simlab.analysis.analyze import analyze, default_out
    from simlab.backends.base import BackendError
    from simlab.store import StoreError

    args = parser().parse_args(argv)
    out = Path(args.out) if args.out else default_out(args.paths)
    judge = None
    try:
        if args.judge:
            cache = args.judge_cache or out / "judge_cache.sqlite"
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            judge = make_judge(args.judge, args.judge_set, cache)
        an = analyze(args.paths, out=out, reference=args.reference,
                     distractors=args.distractors, judge=judge,
                     judge_tasks=[t.strip() for t in args.judge_tasks.split(",") if t.strip()],
                     judge_max=args.judge_max or None, group_by=args.group_by,
                     formats=[f.strip() for f in args.format.split(",") if f.strip()],
                     seed=args.seed, n_jobs=args.jobs, plots=not args.no_plots,
                     strict=args.strict)
    except (StoreError, FileNotFoundError, ValueError, BackendError,
            OmegaConfBaseException) as exc:
        print(f"simlab analyze: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if judge is not None:
            judge.close()
    groups = an.episodes["group"].unique(maintain_order=True).to_list()
    print(f"simlab analyze: {len(an.runs)} run(s), {an.episodes.height} episodes, "
          f"groups: {', '.join(groups)}")
    for f in an.files:
        print(f"  {f}")
    return 0
