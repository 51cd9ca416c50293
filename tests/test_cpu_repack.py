"""The ``backend.cpu_repack`` decision and what reaches llama.cpp.

The embedded model segfaults on Intel Xeons that report AMX when llama.cpp repacks its
weights into the AMX buffer type. This machine may have no AMX, so the decision is pinned
here by CPU flag sets, and a fake ``llama_cpp`` module records the parameters a load
would pass; the embedded tests then load the real model with repacking off.
"""

from __future__ import annotations

import types

import pytest

from simlab.backends import llamacpp_adapter
from simlab.backends import llamacpp_model as llamacpp
from simlab.backends.cpu import decide_repack, parse_cpu_flags

XEON = frozenset({"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx_int8", "amx_bf16"})
EPYC = frozenset({"avx2", "fma", "avx512f"})


@pytest.mark.parametrize(("setting", "flags", "machine", "expected"), [
    ("auto", XEON, "x86_64", False),
    ("auto", frozenset({"amx_tile"}), "x86_64", False),
    ("auto", EPYC, "x86_64", True),
    ("auto", frozenset(), "x86_64", True),
    ("auto", XEON, "aarch64", True),  # amx_* names mean nothing off x86
    ("on", XEON, "x86_64", True),
    ("off", EPYC, "x86_64", False),
])
def test_decision_by_setting_and_cpu_flags(setting, flags, machine, expected):
    decision = decide_repack(setting, flags, machine)
    assert decision.use_extra_bufts is expected
    assert decision.describe()["cpu_repack"] == setting
    if setting == "auto" and not expected:
        assert "amx_tile" in decision.reason


def test_bad_setting_names_the_key():
    with pytest.raises(ValueError, match=r"backend\.cpu_repack: expected one of"):
        decide_repack("maybe", EPYC, "x86_64")


def test_cpu_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nmodel name\t: Xeon\nflags\t\t: fpu avx2 amx_tile amx_int8\n"
    assert parse_cpu_flags(text) == {"fpu", "avx2", "amx_tile", "amx_int8"}
    assert parse_cpu_flags("Features\t: fp asimd\n") == {"fp", "asimd"}
    assert parse_cpu_flags("") == frozenset()


class _Params:
    use_extra_bufts = True


def _fake_llama_cpp(seen: list) -> types.ModuleType:
    """A stand-in for the package: ``Llama`` reads the default-parameters factory the way
    llama-cpp-python 0.3.36 does, at construction time."""
    low = types.ModuleType("llama_cpp.llama_cpp")
    low.llama_model_params = type("llama_model_params", (), {
        "_fields_": [("use_extra_bufts", bool), ("vocab_only", bool)]})
    low.llama_model_default_params = _Params

    class Llama:
        def __init__(self, **kwargs):
            self.model_params = low.llama_model_default_params()
            seen.append(self.model_params.use_extra_bufts)

    pkg = types.ModuleType("llama_cpp")
    pkg.llama_cpp, pkg.Llama, pkg.__version__ = low, Llama, "0.3.36"
    return pkg


@pytest.mark.parametrize(("flags", "expected"), [(XEON, False), (EPYC, True)])
def test_load_passes_the_decision_to_llama_cpp(monkeypatch, tmp_path, flags, expected):
    seen: list = []
    fake = _fake_llama_cpp(seen)
    monkeypatch.setattr(llamacpp, "import_llama_cpp", lambda: fake)
    monkeypatch.setattr(llamacpp, "_SLOTS", {})
    decision = decide_repack("auto", flags, "x86_64")
    slot, _ = llamacpp.load_model(tmp_path / "m.gguf", 512, 1, 64,
                                  use_extra_bufts=decision.use_extra_bufts)
    assert seen == [expected]
    assert llamacpp_adapter.loaded_extra_bufts(slot.llm) is expected
    # the factory is put back: a later default load repacks again
    assert fake.llama_cpp.llama_model_default_params is _Params
    llamacpp.load_model(tmp_path / "other.gguf", 512, 1, 64)
    assert seen[-1] is True


def test_adapter_refuses_a_package_without_the_switch():
    pkg = types.ModuleType("llama_cpp")
    pkg.llama_cpp = types.SimpleNamespace(
        llama_model_default_params=_Params,
        llama_model_params=type("p", (), {"_fields_": [("vocab_only", bool)]}))
    with pytest.raises(RuntimeError, match=r"lacks .*use_extra_bufts"), \
            llamacpp_adapter.model_params(pkg, use_extra_bufts=False):
        pass


def test_adapter_matches_installed_llama_cpp():
    """Fails loudly when an upgrade of llama-cpp-python moves what the adapter patches
    or reads (default parameters, KV-cache bookkeeping, the internal model)."""
    llama_cpp = pytest.importorskip("llama_cpp")
    assert llamacpp_adapter.supported(llama_cpp) == []
    import inspect

    source = inspect.getsource(llama_cpp.Llama.__init__)
    assert "llama_cpp.llama_model_default_params()" in source
    version = llama_cpp.__version__
    if version not in llamacpp_adapter.CHECKED_VERSIONS:
        pytest.fail(f"llama-cpp-python {version} is not among the checked versions "
                    f"{llamacpp_adapter.CHECKED_VERSIONS}: re-check simlab/backends/"
                    "llamacpp_adapter.py and add it")


def test_cache_and_token_functions_touch_only_what_they_say():
    """The adapter's reads and writes of ``Llama`` internals, on a stand-in object."""
    resets = []
    model = types.SimpleNamespace(token_get_text=lambda t: f"<{t}>", add_bos_token=lambda: 1)
    llm = types.SimpleNamespace(input_ids=[5, 6, 7, 8], n_tokens=3, _model=model,
                                reset=lambda: resets.append(True))
    assert list(llamacpp_adapter.cached_tokens(llm)) == [5, 6, 7]
    llamacpp_adapter.keep_cached(llm, 2)
    assert llm.n_tokens == 2 and resets == []
    llamacpp_adapter.keep_cached(llm, 0)
    assert resets == [True]
    assert llamacpp_adapter.token_text(llm, 1) == "<1>"
    assert llamacpp_adapter.adds_bos(llm) is True


def test_adapter_lists_what_a_changed_package_lacks():
    missing = llamacpp_adapter.supported(types.ModuleType("llama_cpp"))
    assert "Llama.reset" in missing and "_internals.LlamaModel.token_get_text" in missing
    assert "llama_cpp.llama_cpp.llama_model_default_params" in missing


@pytest.mark.embedded
def test_embedded_model_runs_with_repacking_off_and_says_so():
    from simlab.backends.base import ChatRequest, Message
    from simlab.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(cpu_repack="off", n_ctx=512)
    assert llamacpp_adapter.loaded_extra_bufts(backend._llm) is False
    info = backend.describe()
    assert info["cpu_repack"] == "off" and info["extra_buffer_types"] is False
    assert info["extra_buffer_types_loaded"] is False
    reply = backend.generate([ChatRequest(messages=(Message("user", "Say hello."),),
                                          max_tokens=8, seed=1)])[0]
    assert reply.ok and reply.completion_tokens > 0
    assert backend.fingerprint()["extra_buffer_types"] is False


@pytest.mark.embedded
def test_manifest_records_the_repack_choice(tmp_path):
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "simlab.cli.main", "episodes=1",
                           "scenario.min_turns=1", "scenario.max_turns=2", "progress=false",
                           "backend.n_ctx=512",
                           "backend.cpu_repack=off", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    backend = json.loads((tmp_path / "manifest.json").read_text())["backend"]
    assert backend["cpu_repack"] == "off" and backend["extra_buffer_types"] is False
    assert backend["cpu_repack_reason"].startswith("forced off")
