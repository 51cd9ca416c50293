"""``simlab population``: sample census personas and report their fidelity.

    simlab population n=100000                      # adults nationwide (the default filter)
    simlab population n=500 states=[CA,TX] employed=true --out pop/   # or hydra.run.dir=pop/
    simlab population n=100000 --reference ../shared/census/acs2024_1yr_persons_us.parquet

``KEY=VALUE`` arguments are Hydra overrides of the ``population`` group (``population.``
may be left off) plus ``seed=``; they are checked against the config schema, so a typo
fails with the key named. Writes ``personas.parquet``, ``fidelity.md``/``.parquet``/
``.png`` and ``population.json`` to the output directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

from simlab.cli.compose import compose

TOP_LEVEL = ("seed", "backend", "population")


def _overrides(items: list[str]) -> list[str]:
    out = ["population=census"]
    for item in items:
        key = item.split("=", 1)[0].lstrip("+~")
        if "=" not in item:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        if key.split(".")[0] in TOP_LEVEL:
            out.append(item)
        else:
            out.append(f"population.{item}")
    return out


def run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="simlab population", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE population settings")
    ap.add_argument("--out", type=Path, default=None, help="output directory")
    ap.add_argument("--reference", default=None,
                    help="census file to compare against (default: the sampled table)")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_intermixed_args(argv)
    # Like every other subcommand's run, the output directory may be given Hydra's way.
    for item in list(args.overrides):
        if item.lstrip("+").startswith("hydra.run.dir="):
            args.overrides.remove(item)
            args.out = args.out or Path(item.split("=", 1)[1])
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from simlab.census.fidelity import fidelity, markdown, plot, raking_check
    from simlab.census.population import CensusSpec, census_population, typed_marginals
    from simlab.census.sampler import eligible
    from simlab.census.table import CensusDataError, load_census

    try:
        cfg = compose(_overrides(args.overrides))
        spec = CensusSpec.from_config(cfg.population)
        backend = None
        if spec.llm_validate or spec.llm_describe:
            from simlab.runner import make_backend

            backend = make_backend(cfg.backend)
        t0 = time.perf_counter()
        pop = census_population(spec, np.random.default_rng(cfg.seed), backend)
        wall = time.perf_counter() - t0
        reference = load_census(args.reference) if args.reference else pop.table
        census = eligible(reference, spec.filter)
    except (ValueError, CensusDataError, OmegaConfBaseException, HydraException,
            FileNotFoundError) as exc:
        # Hydra's own message ("Error merging override n=abc") keeps the reason in the
        # exception it chains: say both.
        cause = exc.__cause__
        reason = f": {str(cause).splitlines()[0]}" if cause and str(cause) else ""
        print(f"simlab population: error: {exc}{reason}", file=sys.stderr)
        return 2
    out = args.out or Path("runs/population") / time.strftime("%Y-%m-%d_%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    frame = pop.frame.drop("_row", strict=False)
    frame.write_parquet(out / "personas.parquet")
    summary, detail = fidelity(frame, census)
    summary.write_parquet(out / "fidelity.parquet")
    detail.write_parquet(out / "fidelity_detail.parquet")
    meta = {
        "n": frame.height, "seed": int(cfg.seed), "filters": str(spec.filter),
        "source": pop.table.source, "reference": reference.source,
        "eligible records": pop.sample.eligible_records,
        "eligible people (weighted)": round(pop.sample.eligible_weight),
        "draws": pop.sample.draws,
        "rejection rate": f"{pop.sample.rejection_rate:.4%}",
        "rejected by rule": dict(pop.sample.rejected),
        "sampling wall time (s)": round(wall, 2),
    }
    report = markdown(summary, detail, meta)
    if spec.marginals:
        check = raking_check(frame, typed_marginals(pop.table, spec.marginals))
        check.write_parquet(out / "raking_check.parquet")
        worst = float(check["diff"].abs().max())
        report += ("\n## Raking targets\n\n| attribute | category | target | sample | diff |\n"
                   "|---|---|---:|---:|---:|\n" + "".join(
                       f"| {r['attribute']} | {r['category']} | {r['target']:.4f} | "
                       f"{r['sample_share']:.4f} | {r['diff']:+.4f} |\n"
                       for r in check.iter_rows(named=True))
                   + f"\nLargest deviation from a target: {worst:.4f}.\n")
        print(f"raking: largest deviation of a sampled share from its target {worst:.4f}")
    if not args.no_plot:
        plot(detail, out / "fidelity.png")
    (out / "fidelity.md").write_text(report)
    (out / "population.json").write_text(json.dumps(meta, indent=1, default=str) + "\n")
    with pl.Config(tbl_rows=40, tbl_hide_dataframe_shape=True):
        print(summary.with_columns(pl.col("tvd").round(4)))
    print(f"simlab population: {frame.height} personas in {wall:.1f}s → {out}")
    return 0
