"""Which llama.cpp CPU weight layout is safe here: the ``backend.cpu_repack`` decision.

llama.cpp can repack quantised weights into "extra buffer types" laid out for a CPU's
wide instructions (AVX2/AVX-512 interleaved blocks, Intel AMX tiles). On Intel Xeons that
report AMX (Sapphire Rapids and later), llama-cpp-python 0.3.36 built natively repacks the
embedded model's Q4_1 weights into the AMX buffer type and then segfaults in
``ggml_backend_amx_mul_mat`` (at ``ldtilecfg``, in an OpenMP worker). Loading with
``use_extra_bufts = False`` avoids the crash and changes nothing else.

``auto`` therefore turns the extra buffer types off where the CPU reports AMX and leaves
them on elsewhere; ``on``/``off`` force the choice. The decision is a pure function of
the setting and the CPU flags, so it is tested without such a CPU
(``tests/test_cpu_repack.py``); ``benchmarks/bench_cpu_repack.py`` measures what turning
repacking off costs.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

SETTINGS = ("auto", "on", "off")
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True)
class RepackDecision:
    """Whether llama.cpp may use extra (repacking) buffer types, and why."""

    setting: str
    use_extra_bufts: bool
    reason: str

    def describe(self) -> dict[str, object]:
        return {"cpu_repack": self.setting, "extra_buffer_types": self.use_extra_bufts,
                "cpu_repack_reason": self.reason}


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The ``flags`` of the first processor in ``/proc/cpuinfo`` text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This machine's CPU flags (Linux); empty where they cannot be read."""
    try:
        return parse_cpu_flags(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return frozenset()


def decide_repack(setting: str, flags: frozenset[str] | None = None,
                  machine: str | None = None) -> RepackDecision:
    """The repack decision for ``setting`` on a CPU with ``flags``.

    ``flags`` and ``machine`` default to this machine's; tests pass their own.
    """
    if setting not in SETTINGS:
        raise ValueError(f"backend.cpu_repack: expected one of {list(SETTINGS)}, "
                         f"got {setting!r}")
    if setting == "on":
        return RepackDecision(setting, True, "forced on (backend.cpu_repack=on)")
    if setting == "off":
        return RepackDecision(setting, False, "forced off (backend.cpu_repack=off)")
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    amx = sorted(f for f in flags if f in AMX_FLAGS)
    if amx and machine in ("x86_64", "amd64"):
        return RepackDecision(setting, False, f"CPU reports {', '.join(amx)}: llama.cpp's "
                              "AMX weight repacking crashes on such CPUs, so it is off")
    return RepackDecision(setting, True, "no AMX reported: llama.cpp's default layout")
