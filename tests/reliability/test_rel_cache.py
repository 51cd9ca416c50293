"""The response cache never serves a reply made under other settings, and retries of a
sweep's jobs do not back off in lock-step."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rel_helpers import FakeServer, free_port, manifest, simlab

from simlab.backends.base import ChatRequest, Message
from simlab.backends.fingerprint import file_identity
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import CachedBackend, RetryingBackend
from simlab.runner import retry_seed

REQUEST = ChatRequest(messages=(Message("user", "hi"),), seed=1)


class Configured(MockBackend):
    """A mock whose replies depend on a setting the request does not carry."""

    def __init__(self, **settings) -> None:
        super().__init__()
        self.settings = settings

    def fingerprint(self):
        return {**super().fingerprint(), **self.settings}


def _key(backend, path: Path) -> str:
    cache = CachedBackend(backend, path)
    try:
        return cache.key_for(REQUEST)
    finally:
        cache.close()


def test_every_setting_in_the_fingerprint_changes_the_key(tmp_path):
    db = tmp_path / "c.sqlite"
    keys = {_key(Configured(api_base=a, top_k=k), db)
            for a in ("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1") for k in (40, 50)}
    assert len(keys) == 4
    assert _key(Configured(api_base="x", top_k=40), db) == _key(Configured(api_base="x",
                                                                           top_k=40), db)


def test_two_api_bases_serving_one_model_name_do_not_share_entries(tmp_path):
    cache = tmp_path / "cache.sqlite"
    common = ["backend=litellm", "backend.model=openai/same-name", "progress=false",
              "episodes=1", "scenario.min_turns=1", "scenario.max_turns=2",
              f"backend.cache.path={cache}"]
    with FakeServer(free_port()) as a, FakeServer(free_port()) as b:
        first = simlab(*common, f"backend.api_base={a.url}", f"hydra.run.dir={tmp_path}/a")
        assert first.returncode == 0, first.stderr
        second = simlab(*common, f"backend.api_base={b.url}", f"hydra.run.dir={tmp_path}/b")
        assert second.returncode == 0, second.stderr
        assert a.requests() > 0 and b.requests() == a.requests()  # b was asked, not a's cache
    assert manifest(tmp_path / "b")["backend_stats"]["cache_hits"] == 0


def test_another_gguf_under_the_same_name_has_another_identity(tmp_path):
    one, two = tmp_path / "1" / "model.gguf", tmp_path / "2" / "model.gguf"
    for p, byte in ((one, b"a"), (two, b"b")):
        p.parent.mkdir()
        p.write_bytes(b"GGUF" + byte * 5000)
    assert file_identity(one) != file_identity(two)
    copy = tmp_path / "3" / "renamed.gguf"
    copy.parent.mkdir()
    shutil.copy(one, copy)
    assert file_identity(copy) == file_identity(one)  # content, not path


@pytest.mark.parametrize("big", [False, True])
def test_file_identity_reads_head_and_tail(tmp_path, big):
    path = tmp_path / "m.gguf"
    size = (3 << 20) if big else 1000
    path.write_bytes(bytes(size))
    before = file_identity(path)
    with open(path, "r+b") as fh:
        fh.seek(size - 1)
        fh.write(b"\x01")
    assert file_identity(path) != before


def test_retry_jitter_differs_between_jobs_and_repeats_within_one(tmp_path):
    seeds = {retry_seed(0, tmp_path / f"job{i}") for i in range(4)}
    assert len(seeds) == 4
    assert retry_seed(0, tmp_path / "job0") == retry_seed(0, tmp_path / "job0")
    assert retry_seed(0, tmp_path / "job0") != retry_seed(1, tmp_path / "job0")
    waits = {RetryingBackend(MockBackend(), seed=s).backoff_s(3) for s in seeds}
    assert len(waits) == 4


def test_make_backend_seeds_the_retry_jitter(tmp_path):
    from simlab.cli.compose import compose
    from simlab.runner import make_backend

    cfg = compose(["backend=mock"])
    draws = []
    for job in ("a", "b"):
        backend = make_backend(cfg.backend, retry_seed=retry_seed(0, tmp_path / job))
        retry = backend.inner
        assert isinstance(retry, RetryingBackend)
        draws.append(retry.backoff_s(3))
    assert draws[0] != draws[1]
