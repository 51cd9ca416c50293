"""Backend wrappers: the persistent response cache."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from _wrapper_fakes import SCHEMA, DeadBackend, FlakyBackend, req

from simlab.backends import BackendError
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import CachedBackend

# --- cache -------------------------------------------------------------------------------


def test_cache_counts_hits_and_misses_and_warm_hits_equal_cold(tmp_path: Path) -> None:
    mock = MockBackend()
    cache = CachedBackend(mock, tmp_path / "c.sqlite")
    batch = [req("a"), req("b"), req("c", json_schema=SCHEMA)]
    cold = cache.generate(batch)
    assert (cache.hits, cache.misses, len(mock.calls)) == (0, 3, 3)
    warm = cache.generate(batch)
    assert (cache.hits, cache.misses, len(mock.calls)) == (3, 3, 3)
    for c, w in zip(cold, warm, strict=True):
        assert not c.cached and w.cached
        assert (w.text, w.prompt_tokens, w.completion_tokens, w.finish_reason, w.model) == (
            c.text, c.prompt_tokens, c.completion_tokens, c.finish_reason, c.model,
        )  # fmt: skip
        assert (w.parsed, w.cost_usd, w.attempts, w.latency_s) == (c.parsed, 0.0, 1, 0.0)
        assert w.extra == {"original_latency_s": c.latency_s}
    assert warm[2].parsed == json.loads(cold[2].text)
    assert cache.stats() == {"cache": {"hits": 3, "misses": 3, "stored": 3}}


def test_warm_cache_with_unreachable_backend_makes_zero_calls(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    batch = [req("a", tag="x"), req("b", tag="y")]
    with CachedBackend(MockBackend(), path) as cold_cache:
        cold = cold_cache.generate(batch)
    dead = DeadBackend()
    warm_cache = CachedBackend(dead, path)
    warm = warm_cache.generate(batch)
    assert dead.calls == 0
    assert [w.text for w in warm] == [c.text for c in cold]
    assert all(w.cached and w.ok for w in warm)


def test_only_misses_go_inward_as_one_batch_in_order(tmp_path: Path) -> None:
    flaky = FlakyBackend()
    cache = CachedBackend(flaky, tmp_path / "c.sqlite")
    cache.generate([req("b", tag="b")])
    out = cache.generate([req("a", tag="a"), req("b", tag="b"), req("c", tag="c")])
    assert flaky.batches == [["b"], ["a", "c"]]
    assert [(r.text, r.cached) for r in out] == [("a ok", False), ("b ok", True), ("c ok", False)]


def test_cache_key_depends_on_everything_that_shapes_the_reply(tmp_path: Path) -> None:
    cache = CachedBackend(MockBackend(), tmp_path / "c.sqlite")
    base = cache.key_for(req())
    assert cache.key_for(req()) == base
    assert cache.key_for(req(tag="someone else")) == base  # tags are not sent to the model
    variants = [
        req(seed=8), req(seed=None), req(temperature=0.2), req(top_p=0.5), req(max_tokens=5),
        req("Hello"), req(stop=("\n",)), req(json_schema=SCHEMA),
    ]  # fmt: skip
    keys = {cache.key_for(r) for r in variants}
    assert len(keys) == len(variants) and base not in keys
    other_model = CachedBackend(MockBackend(model="mock-2"), tmp_path / "c.sqlite")
    assert other_model.key_for(req()) != base
    assert len(base) == 64 and int(base, 16) >= 0


def test_errors_are_never_cached(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    mock = MockBackend(fail_every=2)
    cache = CachedBackend(mock, path)
    first = cache.generate([req("a"), req("b")])
    assert [r.ok for r in first] == [True, False]
    second = cache.generate([req("a"), req("b")])
    assert [(r.ok, r.cached) for r in second] == [(True, True), (True, False)]
    assert (cache.hits, cache.misses, cache.stored, len(mock.calls)) == (1, 3, 2, 3)
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone() == (2,)


def test_read_only_cache_serves_hits_and_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with CachedBackend(MockBackend(), path) as cache:
        cache.generate([req("a")])
    ro = CachedBackend(MockBackend(), path, read_only=True)
    out = ro.generate([req("a"), req("b")])
    assert [r.cached for r in out] == [True, False]
    ro.generate([req("b")])
    assert (ro.hits, ro.misses, ro.stored) == (1, 2, 0)
    with pytest.raises(BackendError, match=r"missing\.sqlite: response cache not found"):
        CachedBackend(MockBackend(), tmp_path / "missing.sqlite", read_only=True)


def test_cache_keeps_name_model_and_describes_itself(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.sqlite"
    cache = CachedBackend(MockBackend(), path)
    assert (cache.name, cache.model_id) == ("mock", "mock/mock-1")
    assert cache.describe() == {
        "backend": "mock", "model": "mock/mock-1", "close_after": None, "fail_every": None,
        "wrappers": ["cache"], "cache": {"path": str(path), "read_only": False},
    }  # fmt: skip
    assert path.is_file()


def test_corrupt_entry_is_a_miss_and_gets_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    cache = CachedBackend(MockBackend(), path)
    key = cache.key_for(req())
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO responses VALUES (?, ?)", (key, "{not json"))
    assert cache.generate([req()])[0].cached is False
    assert cache.generate([req()])[0].cached is True


def test_unopenable_cache_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackendError, match=r"c\.sqlite: cannot open response cache"):
        CachedBackend(MockBackend(), path)


