"""Secrets never reach the disk or the console, whichever way they are given.

The documented way (a key in the environment variable named by ``backend.api_key_env``)
works and leaks nowhere; every other way is refused before Hydra writes anything, with an
error that names the key and never its value. Each case greps the whole run or sweep
directory (file names too) and the captured stdout and stderr.
"""

from __future__ import annotations

import pytest
from rel_helpers import FakeServer, free_port, leaks, manifest, simlab

SECRET = "sk-test-0123456789abcdefSECRET"


def _base(url: str) -> list[str]:
    return ["backend=litellm", "backend.model=openai/fake-model", f"backend.api_base={url}",
            "backend.cache.enabled=false", "progress=false", "episodes=1",
            "scenario.min_turns=1", "scenario.max_turns=2"]


@pytest.fixture(scope="module")
def server():
    with FakeServer(free_port()) as s:
        yield s


def _userinfo(url: str) -> str:
    return url.replace("http://", f"http://user:{SECRET}@")


CASES = {
    "userinfo in api_base": lambda url: [f"backend.api_base={_userinfo(url)}"],
    "token-only userinfo": lambda url: [
        f"backend.api_base={url.replace('http://', f'http://{SECRET}@')}"],
    "+backend.extra.api_key": lambda url: [f"+backend.extra.api_key={SECRET}"],
    "+backend.api_key": lambda url: [f"+backend.api_key={SECRET}"],
    "backend.api_key": lambda url: [f"backend.api_key={SECRET}"],
    "extra header": lambda url: [f"+backend.extra.headers.Authorization=Bearer {SECRET}"],
    "env_set in hydra": lambda url: [f"+hydra.job.env_set.OPENAI_API_KEY={SECRET}"],
}


@pytest.mark.parametrize("how", sorted(CASES))
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_secret_in_config_is_refused_and_written_nowhere(tmp_path, server, how, sweep):
    overrides = CASES[how](server.url)
    if sweep:
        args = ["-m", *_base(server.url), *overrides, "seed=0,1",
                f"hydra.sweep.dir={tmp_path}/sweep"]
    else:
        args = [*_base(server.url), *overrides, f"hydra.run.dir={tmp_path}/run"]
    before = server.requests()
    proc = simlab(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "looks like a secret" in proc.stderr or "carries credentials" in proc.stderr
    assert "environment variable" in proc.stderr
    assert leaks(SECRET, tmp_path, texts=(proc.stdout, proc.stderr)) == []
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()
    assert server.requests() == before


def test_secret_from_a_config_file_is_refused_before_hydra_writes(tmp_path, server):
    conf = tmp_path / "conf" / "backend"
    conf.mkdir(parents=True)
    (conf / "leaky.yaml").write_text(
        "defaults:\n  - litellm_schema\n  - _self_\n"
        f"model: openai/fake-model\napi_base: {_userinfo(server.url)}\n")
    for flags, args in (([], [f"hydra.run.dir={tmp_path}/run"]),
                        (["-m"], ["seed=0,1", f"hydra.sweep.dir={tmp_path}/sweep"])):
        proc = simlab(*flags, "--config-dir", str(tmp_path / "conf"), "backend=leaky",
                      "progress=false", "episodes=1", *args)
        assert proc.returncode == 2, proc.stderr
        assert "config key 'backend.api_base': the URL carries credentials" in proc.stderr
        out = tmp_path / ("sweep" if flags else "run")
        assert not out.exists()
        assert leaks(SECRET, tmp_path / "run", tmp_path / "sweep",
                     texts=(proc.stdout, proc.stderr)) == []


def test_key_in_the_named_environment_variable_works_and_leaks_nowhere(tmp_path, server):
    sweep = tmp_path / "sweep"
    proc = simlab("-m", *_base(server.url), "backend.api_key_env=SIMLAB_TEST_KEY",
                  "seed=0,1", f"hydra.sweep.dir={sweep}", SIMLAB_TEST_KEY=SECRET)
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p.parent for p in sweep.glob("*/manifest.json"))
    assert len(runs) == 2
    for run in runs:
        m = manifest(run)
        assert m["status"] == "complete"
        assert m["backend"]["api_key_env"] == "SIMLAB_TEST_KEY"
    assert leaks(SECRET, tmp_path, texts=(proc.stdout, proc.stderr)) == []
    assert SECRET in server.stats()["keys"]  # it was sent, as a bearer token


@pytest.mark.parametrize("key", ["backend.key", "backend.password", "backend.credentials"])
def test_secret_named_unknown_key_is_refused_before_hydra_can_echo_it(tmp_path, server, key):
    """Hydra's own "Could not override … use +key=<value>" error would print the value."""
    proc = simlab(*_base(server.url), f"{key}={SECRET}", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 2
    assert f"override {key!r}" in proc.stderr and "looks like a secret" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


LEAKY = {
    "secret-named key": "extra:\n  api_key: {secret}\n",
    "credentials in a URL": "api_base: http://user:{secret}@127.0.0.1:9/v1\n",
    "hydra env_set": "hydra:\n  job:\n    env_set:\n      OPENAI_API_KEY: {secret}\n",
}


@pytest.mark.parametrize("how", sorted(LEAKY))
def test_a_swept_config_group_holding_a_secret_is_refused_per_job(tmp_path, server, how):
    """A sweep over config groups: the secret is only in one job's config, which Hydra
    composes per job; that job is refused before anything of it is written, the other
    job runs, and the sweep fails at its end."""
    conf = tmp_path / "conf" / "backend"
    conf.mkdir(parents=True)
    body = LEAKY[how].format(secret=SECRET)
    if how == "hydra env_set":  # a global group that sets hydra.job.env_set
        (conf / "leaky.yaml").write_text(
            "defaults:\n  - mock_schema\n  - _self_\nmodel: mock-1\n")
        (tmp_path / "conf" / "leak").mkdir()
        (tmp_path / "conf" / "leak" / "on.yaml").write_text("# @package _global_\n" + body)
        sweep = ["+leak=on"]
    else:
        (conf / "leaky.yaml").write_text("defaults:\n  - litellm_schema\n  - _self_\n"
                                         f"model: openai/fake-model\n{body}")
        sweep = []
    proc = simlab("-m", "--config-dir", str(tmp_path / "conf"), "backend=mock,leaky",
                  *sweep, "progress=false", "episodes=1", "scenario.min_turns=1",
                  "scenario.max_turns=2", f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode != 0
    assert "simlab: error: config key" in proc.stderr and "environment variable" in \
        proc.stderr
    assert leaks(SECRET, tmp_path / "sweep", texts=(proc.stdout, proc.stderr)) == []
    if how != "hydra env_set":
        mock_job = next((tmp_path / "sweep").glob("0_*"))
        assert manifest(mock_job)["status"] == "complete"  # the other job ran
