"""``simlab interview RUN_DIR --questions FILE|TEXT [--episode ID] [--agent ID | --role R]
[--at-step K] [--name NAME] [overrides…]``: ask stored agents, store the answers beside
the run (:mod:`simlab.research.interview`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml


def load_questions(spec: str) -> tuple[str, list]:
    """A questionnaire file (YAML or JSON: ``{name, questions: [...]}`` or a bare list)
    or one free-text question; its default name and its checked questions."""
    from simlab.research.questions import parse_questions

    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        if not path.is_file():
            raise ValueError(f"--questions: {path}: no such file")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        name = path.stem
        if isinstance(data, dict):
            name = str(data.get("name") or name)
            data = data.get("questions")
        if not isinstance(data, list) or not data:
            raise ValueError(f"{path}: expected a list of questions (or a mapping with "
                             f"'questions')")
        return name, parse_questions(data, f"{path}: questions", default_type="text")
    if not spec.strip():
        raise ValueError("--questions: empty")
    return "interview", parse_questions([{"id": "q1", "text": spec, "type": "text"}],
                                        "--questions")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="simlab interview", description="Ask the agents of a stored run questions, "
        "from their own views at a step; answers go to RUN/interviews/<name>/.")
    parser.add_argument("run_dir")
    parser.add_argument("--questions", required=True,
                        help="a questionnaire file (.yaml/.json) or one question's text")
    parser.add_argument("--episode", action="append", default=[], help="repeatable")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--agent", action="append", default=[], help="repeatable")
    who.add_argument("--role", default="")
    parser.add_argument("--at-step", type=int, default=None,
                        help="ask as of this step (default: the episode's end)")
    parser.add_argument("--name", help="the interview's folder (default: the file's name)")
    parser.add_argument("--max-reasks", type=int, default=2)
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-") or "=" not in o]
    if bad:
        parser.error(f"not an override (key=value): {bad[0]}")
    if args.at_step is not None and args.at_step < 0:
        parser.error("--at-step: must be >= 0")
    from simlab.research.interview import Target, run_interview
    from simlab.store import StoreError

    try:
        name, questions = load_questions(args.questions)
        run_dir = Path(args.run_dir).resolve()
        manifest = json.loads((run_dir / "manifest.json").read_text()) \
            if (run_dir / "manifest.json").is_file() else {}
        cwd = manifest.get("cwd")
        if cwd and Path(cwd).is_dir():  # relative paths in the run's config resolve there
            os.chdir(cwd)
        out = run_interview(
            run_dir, questions, Target(tuple(args.episode), tuple(args.agent),
                                            args.role, args.at_step),
            name=args.name or name, overrides=overrides, max_reasks=args.max_reasks)
    except (ValueError, StoreError, yaml.YAMLError) as exc:
        print(f"simlab interview: {exc}", file=sys.stderr)
        return 2
    import polars as pl

    answers = pl.read_parquet(out)
    failed = answers.filter(~pl.col("ok")).height
    print(f"simlab interview: {answers.height} answers ({failed} failed) → {out}")
    return 1 if failed == answers.height and answers.height else 0
