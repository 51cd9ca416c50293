"""The report's figures are drawn on Figure objects: no pyplot, no backend switch.

Run in a fresh interpreter, so that what another test imported (pyplot, a backend
choice) cannot hide what plotting does to the process.
"""

from __future__ import annotations

import subprocess
import sys

_DRAW = r"""
import sys
from pathlib import Path

import matplotlib
import numpy as np
import polars as pl

from simlab.analysis import plots

out = Path(sys.argv[1])
summary = pl.DataFrame({
    "metric": ["a", "a", "b", "b", "mrr_k2", "mrr_k2", "mrr_k8", "mrr_k8"],
    "group": ["x", "y"] * 4,
    "mean": [1.0, 2.0, 0.5, None, 0.8, 0.7, 0.4, 0.3],
    "ci_low": [0.5, 1.5, 0.2, None, 0.7, 0.6, 0.3, 0.2],
    "ci_high": [1.5, 2.5, 0.8, None, 0.9, 0.8, 0.5, 0.4],
})
turns = pl.DataFrame({"group": ["x", "x", "y", "y"], "turn": [0, 1, 0, 1],
                      "drift_rel": [0.1, 0.2, -0.1, 0.3], "n_words": [3, 8, 5, 13]})
made = [
    plots.headline_bars(summary, ["a", "b"], out / "bars.png"),
    plots.by_turn(turns, "drift_rel", "turn", out / "turn.png", "Drift", "rel"),
    plots.series_grid(turns, ["drift_rel", "n_words"], "turn", "group", out / "grid.png"),
    plots.mrr_curve(summary, out / "mrr.png"),
    plots.length_hist(turns, np.array([2, 4, 9]), out / "hist.png"),
]
assert all(p is not None and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in made), made
assert "matplotlib.pyplot" not in sys.modules, "plots imported pyplot"
assert matplotlib.rcParams._get_backend_or_none() is None, "plots chose a backend"
print("ok")
"""


def test_figures_are_png_files_and_leave_matplotlib_alone(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", _DRAW, str(tmp_path)], capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
