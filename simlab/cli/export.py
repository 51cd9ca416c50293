"""``simlab export RUN_DIR --format openai|sharegpt|hf [--out PATH] [--min-consistency X]``."""

from __future__ import annotations

import argparse
import sys

from simlab.export.formats import FORMATS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simlab export",
        description="Export stored dialogues as a training corpus: chat JSONL from each "
                    "agent's egocentric perspective, ShareGPT, or HF-datasets Parquet.")
    p.add_argument("paths", nargs="+", metavar="RUN_DIR",
                   help="run directories, folders of runs, or corpus files (.csv/.jsonl)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--out", metavar="PATH",
                   help="output file (default: RUN_DIR/export/<format>.jsonl|.parquet)")
    p.add_argument("--min-consistency", type=float, metavar="X",
                   help="keep episodes whose authorship consistency (0-1) is at least X")
    p.add_argument("--max-echo-rate", type=float, metavar="X")
    p.add_argument("--max-role-confusion", type=float, metavar="X",
                   help="keep episodes with at most this share of role-confused turns")
    p.add_argument("--max-naturalness-distance", type=float, metavar="X",
                   help="needs --reference")
    p.add_argument("--min-turns", type=int, metavar="N")
    p.add_argument("--reference", metavar="PATH",
                   help="reference corpus for the naturalness_distance metric")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true",
                   help="stop at the first malformed corpus record instead of skipping it")
    return p


def main(argv: list[str]) -> int:
    from simlab.export.api import export
    from simlab.export.rows import Filters
    from simlab.store import StoreError

    args = parser().parse_args(argv)
    filters = Filters(args.min_consistency, args.max_echo_rate, args.max_role_confusion,
                      args.max_naturalness_distance, args.min_turns)
    try:
        res = export(args.paths, args.format, args.out, filters, args.reference, args.seed,
                     strict=args.strict)
    except (StoreError, FileNotFoundError, ValueError) as exc:
        print(f"simlab export: error: {exc}", file=sys.stderr)
        return 2
    print(f"simlab export: {res.rows} rows from {res.episodes_kept} of {res.episodes_total} "
          f"episodes -> {res.path}")
    return 0
