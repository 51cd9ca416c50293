"""Census personas at scale: one million structured personas with template text.

    .venv/bin/python benchmarks/bench_census.py [--n 1000000] [--repeats 3]
                                                [--reference ../shared/census/…parquet]

Target (issue 4): 1,000,000 personas (weighted draws, plausibility rules, readable labels,
Big Five, idiosyncrasies, template descriptions) in at most 10 s on 2 cores, peak memory
at most 2 GB. Each repeat runs in a fresh subprocess so peak RSS includes imports and the
bundled table. With ``--reference``, also prints the fidelity (TVD) of a 100,000-adult
sample against the full census file.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
from simlab.census.population import CensusSpec, census_population
t_import = time.perf_counter() - t0
t1 = time.perf_counter()
pop = census_population(CensusSpec(n=int(sys.argv[1]), min_age=None), np.random.default_rng(0))
t_pop = time.perf_counter() - t1
print(json.dumps({"rows": pop.frame.height, "cols": pop.frame.width, "import_s": t_import,
                  "population_s": t_pop, "total_s": time.perf_counter() - t0,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "rejection_rate": pop.sample.rejection_rate,
                  "desc_chars": int(pop.frame["description"].str.len_chars().mean())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference", default=None)
    args = ap.parse_args()
    runs = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.n)], check=True,
                             capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                          for k, v in runs[-1].items()}))
    best = min(runs, key=lambda r: r["population_s"])
    machine = platform.processor() or platform.machine()
    print(f"\n{args.n:,} personas × {best['cols']} columns, machine: {machine}")
    print(f"population time: best {best['population_s']:.2f} s, "
          f"median {sorted(r['population_s'] for r in runs)[len(runs) // 2]:.2f} s "
          f"(+ {best['import_s']:.2f} s imports)")
    print(f"peak RSS: {max(r['peak_rss_gb'] for r in runs):.2f} GB")
    if args.reference:
        import numpy as np

        from simlab.census.fidelity import fidelity
        from simlab.census.population import CensusSpec, census_population
        from simlab.census.sampler import CensusFilter, eligible
        from simlab.census.table import load_census

        t = time.perf_counter()
        pop = census_population(CensusSpec(n=100_000), np.random.default_rng(0))
        full = load_census(args.reference)
        summary, _ = fidelity(pop.frame, eligible(full, CensusFilter(min_age=18)))
        took = time.perf_counter() - t
        print(f"\nfidelity of 100,000 adults vs {args.reference} ({took:.0f} s):")
        for row in summary.iter_rows(named=True):
            print(f"  {row['check']:<28} TVD {row['tvd']:.4f}")


if __name__ == "__main__":
    main()
