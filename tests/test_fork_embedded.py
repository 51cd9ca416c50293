"""A fork on the embedded model: with no change it reproduces its parent exactly, the
steps before K from the call journal (no model call) and the rest from a warm cache."""

from __future__ import annotations

import pytest
from conftest import compose

from simlab.events import WALL_CLOCK_COLUMNS
from simlab.runner import make_backend, run
from simlab.store import load_run

pytestmark = pytest.mark.embedded


def test_a_no_change_fork_on_the_embedded_model_is_its_parent(tmp_path):
    pytest.importorskip("llama_cpp")
    base = ("progress=false", "episodes=1", "scenario.min_turns=6", "scenario.max_turns=6",
            "scenario.max_tokens=24", "backend.cache.enabled=true",
            f"backend.cache.path={tmp_path / 'cache.sqlite'}")
    cfg = compose(*base)
    parent = make_backend(cfg.backend)
    run(cfg, tmp_path / "parent", backend=parent)
    assert parent.stats()["calls"] > 0 and parent.stats()["cache_hits"] == 0
    fork_cfg = compose(*base, f"fork.parent={tmp_path / 'parent'}", "fork.at_step=3")
    forked = make_backend(fork_cfg.backend)
    run(fork_cfg, tmp_path / "fork", backend=forked)
    events = [load_run(tmp_path / d).events.drop(WALL_CLOCK_COLUMNS) for d in ("parent", "fork")]
    assert events[1].equals(events[0])
    stats = forked.stats()
    # steps 0-2 never reached the backend; steps 3-5 were all cache hits
    assert stats["requests"] == 3 and stats["cache_hits"] == 3
    parent.close()
    forked.close()
