"""Derive the bundled compact census table from the full ACS PUMS person file.

    python -m simlab.census.derive --source ../shared/census/acs2024_1yr_persons_us.parquet \
        --codebook ../shared/census/acs_pums_codebook_person_cols.json --out personas/census

Steps (all seeded, so the committed table is reproducible byte for byte):

1. Prepare the full file: type, validate, hot-deck impute the CA/TX work/income columns
   (:mod:`simlab.census.impute`).
2. Draw ``n`` records by systematic PPS (probability proportional to ``PWGTP``) over the
   file sorted by state, PUMA, sex and age: implicit stratification, so geography, sex
   and age are spread exactly as in the file. A record drawn k times keeps one row with
   k times the weight.
3. Calibrate the compact weights by raking to the full file's weighted marginals (state,
   age group × sex, race, Hispanic origin, education, marital, employment and income
   bracket), so the compact table reproduces them exactly.
4. Write the table (zstd Parquet), the readable codebook and a derivation report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import polars as pl

from simlab.census.codebook import CODE_COLUMNS, ID_COLUMNS, build_codebook
from simlab.census.rake import rake
from simlab.census.recode import GROUPED, with_groups
from simlab.census.table import TABLE_FILE, prepare

CALIBRATE = ("STATE", "age_sex", "g_race", "g_hispanic_origin", "g_education",
             "g_marital_status", "g_employment_status", "g_income_bracket")


def systematic_pps(weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a systematic PPS sample of size ``n`` (repeats for heavy records)."""
    cum = np.cumsum(weights, dtype=np.float64)
    step = cum[-1] / n
    points = rng.random() * step + step * np.arange(n)
    return np.minimum(np.searchsorted(cum, points, side="right"), len(weights) - 1)


def marginals(df: pl.DataFrame, weight: str, columns: tuple[str, ...]) -> dict[str, dict]:
    out = {}
    total = df[weight].sum()
    for col in columns:
        agg = df.group_by(col).agg(pl.col(weight).sum()).sort(col)
        out[col] = {k: v / total for k, v in agg.iter_rows()}
    return out


def tvd(p: dict, q: dict) -> float:
    keys = set(p) | set(q)
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def derive(source: Path, codebook_src: Path, out: Path, n: int, seed: int) -> dict:
    official = json.loads(codebook_src.read_text())
    codebook = build_codebook(official, (*ID_COLUMNS, *CODE_COLUMNS))
    out.mkdir(parents=True, exist_ok=True)
    codebook.save(out / "codebook.json")
    full = prepare(pl.read_parquet(source), codebook, str(source), seed=seed)
    full = with_groups(full).with_columns(
        (pl.col("g_sex") + " " + pl.col("g_age_group")).alias("age_sex"))
    full = full.sort("STATE", "PUMA", "SEX", "AGEP", "SERIALNO", "SPORDER")
    rng = np.random.default_rng(seed)
    idx = systematic_pps(full["PWGTP"].to_numpy().astype(np.float64), n, rng)
    uniq, counts = np.unique(idx, return_counts=True)
    step = float(full["PWGTP"].sum()) / n
    compact = full[uniq].with_columns(pl.Series("WEIGHT", counts * step))
    target = marginals(full, "WEIGHT", CALIBRATE)
    before = marginals(compact, "WEIGHT", CALIBRATE)
    w = rake(compact, compact["WEIGHT"].to_numpy(), target)
    compact = compact.with_columns(pl.Series("WEIGHT", w))
    after = marginals(compact, "WEIGHT", CALIBRATE)
    keep = [c for c in compact.columns if not c.startswith("g_") and c != "age_sex"]
    compact = compact.select(keep).sort("STATE", "SERIALNO", "SPORDER")
    path = out / TABLE_FILE
    compact.write_parquet(path, compression="zstd", compression_level=19, statistics=False)
    report = {
        "source": source.name,
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "source_records": full.height,
        "source_people": int(full["PWGTP"].sum()),
        "imputed_records": int(full["IMPUTED"].sum()),
        "imputed_by_level": {str(k): v for k, v in full.filter(pl.col("IMPUTED"))
                             .group_by("HD_LEVEL").len().sort("HD_LEVEL").iter_rows()},
        "draws": n,
        "compact_records": compact.height,
        "seed": seed,
        "tvd_before_calibration": {k: round(tvd(target[k], before[k]), 6) for k in CALIBRATE},
        "tvd_after_calibration": {k: round(tvd(target[k], after[k]), 8) for k in CALIBRATE},
        "bytes": path.stat().st_size,
        "grouped_attributes": list(GROUPED),
    }
    (out / "derive_report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m simlab.census.derive", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, required=True, help="full PUMS person Parquet")
    ap.add_argument("--codebook", type=Path, required=True, help="codebook JSON")
    ap.add_argument("--out", type=Path, default=Path("personas/census"))
    ap.add_argument("--n", type=int, default=200_000, help="PPS draws (rows ≤ n)")
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args(argv)
    report = derive(args.source, args.codebook, args.out, args.n, args.seed)
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
