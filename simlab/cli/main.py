"""``simlab``: run experiments with Hydra, plus a few subcommands.

    simlab [overrides…]            run (Hydra; ``-m`` for sweeps)
    simlab show RUN_DIR [--episode ID]   print transcripts
    simlab graph                   print the scheduler graph as Mermaid
    simlab analyze RUN_DIR...      metrics tables and a comparative report
    simlab export RUN_DIR --format openai|sharegpt|hf   dialogue corpus export
    simlab population n=N [KEY=VALUE…]   census personas + fidelity report
    simlab scenarios [NAME]        the installed scenarios, or one's settings
    simlab fork RUN_DIR --at-step K [--episode ID] [--intervene SPEC] [overrides…]
                                   replay a run up to step K, then diverge (a new run)
    simlab interview RUN_DIR --questions FILE|TEXT [--at-step K] [--agent ID|--role R]
                                   ask stored agents; answers in RUN/interviews/<name>/

Subcommands are dispatched before Hydra sees argv, so Hydra's override grammar and
flags (``-m``, ``--cfg job``, ``--help``) work unchanged for runs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from simlab.resources import conf_dir

CONF_DIR = str(conf_dir())
SUBCOMMANDS = ("show", "graph", "analyze", "export", "population", "scenarios", "fork",
               "interview", "ui")
log = logging.getLogger("simlab")


def _show(argv: list[str]) -> int:
    from simlab.store import StoreError, format_transcripts, load_run

    parser = argparse.ArgumentParser(prog="simlab show", description="Print transcripts.")
    parser.add_argument("run_dir", help="a run directory written by simlab")
    parser.add_argument("--episode", help="only this episode id (e.g. ep00001)")
    parser.add_argument("--width", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        print(format_transcripts(load_run(args.run_dir), episode=args.episode, width=args.width))
    except StoreError as exc:
        print(f"simlab show: {exc}", file=sys.stderr)
        return 2
    return 0


def _graph(argv: list[str]) -> int:
    from simlab.scheduler.graph import mermaid

    argparse.ArgumentParser(prog="simlab graph", description="Mermaid of the episode graph.") \
        .parse_args(argv)
    print(mermaid())
    return 0


def _analyze(argv: list[str]) -> int:
    from simlab.cli.analyze import main as analyze_main

    return analyze_main(argv)


def _export(argv: list[str]) -> int:
    from simlab.cli.export import main as export_main

    return export_main(argv)


def _population(argv: list[str]) -> int:
    from simlab.cli.population import run

    return run(argv)


def _scenarios(argv: list[str]) -> int:
    from simlab.cli.scenarios import main as scenarios_main

    return scenarios_main(argv)


def _interview(argv: list[str]) -> int:
    from simlab.cli.interview import main as interview_main

    return interview_main(argv)


def _ui(argv: list[str]) -> int:
    from simlab.cli.ui import main as ui_main

    return ui_main(argv)


def _fork(argv: list[str]) -> list[str] | int:
    from simlab.cli.fork import main as fork_main

    return fork_main(argv)


def _hydra_main() -> None:
    import hydra

    from simlab.cli.job import run_job
    from simlab.config import register_configs

    register_configs()
    hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")(run_job)()


def _on_sigterm(signum: int, frame: object) -> None:
    # A terminated run unwinds like an interrupted one: its manifest says so.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int | None:
    import faulthandler
    import signal

    from simlab.cli.guard import SecretInConfig, check_overrides

    # A native crash (llama.cpp, a BLAS kernel) prints where it happened, not nothing.
    if not faulthandler.is_enabled():
        faulthandler.enable()
    from_shell = argv is None
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "fork":  # a fork is a run: its overrides, then on as one
        prepared = _fork(args[1:])
        if isinstance(prepared, int):
            return prepared
        args = argv = prepared
    try:
        check_overrides(args)
    except SecretInConfig as exc:
        print(f"simlab: error: {exc}", file=sys.stderr)
        return 2
    from simlab.cli.extras import missing_extra

    if (missing := missing_extra(args)) is not None:
        print(f"simlab: error: {missing}", file=sys.stderr)
        return 2
    if args and args[0] in SUBCOMMANDS:
        return {"show": _show, "graph": _graph, "analyze": _analyze, "export": _export,
                "population": _population, "scenarios": _scenarios,
                "interview": _interview, "ui": _ui}[args[0]](args[1:])
    from simlab.cli.scenarios import moved_key

    moved = next(filter(None, map(moved_key, args)), None)
    if moved:
        print(f"simlab: error: {moved}", file=sys.stderr)
        return 2
    if from_shell:
        signal.signal(signal.SIGTERM, _on_sigterm)
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    _hydra_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
