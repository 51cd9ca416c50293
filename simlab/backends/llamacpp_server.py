"""``python -m simlab.backends.llamacpp_server [--cpu-repack auto|on|off] ARGS…``

llama-cpp-python's own OpenAI-compatible server (``python -m llama_cpp.server ARGS…``),
started with the same weight-repacking decision as the embedded backend, so it does not
crash on CPUs that report AMX (:mod:`simlab.backends.cpu`). Every other argument goes to
``llama_cpp.server`` unchanged. Tests and benchmarks start their local servers with it.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    from simlab.backends.cpu import decide_repack
    from simlab.backends.llamacpp_adapter import install_for_process

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--cpu-repack", default="auto", choices=("auto", "on", "off"))
    ours, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    decision = decide_repack(ours.cpu_repack)
    print(f"simlab llamacpp_server: cpu_repack={decision.setting}: {decision.reason}",
          file=sys.stderr, flush=True)
    import llama_cpp
    from llama_cpp.server.__main__ import main as server_main

    install_for_process(llama_cpp, use_extra_bufts=decision.use_extra_bufts)
    sys.argv = [sys.argv[0], *rest]
    server_main()


if __name__ == "__main__":
    main()
