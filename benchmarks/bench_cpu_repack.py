"""Benchmark: what turning llama.cpp's weight repacking off costs (``backend.cpu_repack``).

On CPUs that report AMX, ``cpu_repack=auto`` loads the embedded model without extra buffer
types, because llama.cpp's AMX kernels crash there (issue 12). This measures the price of
that choice side by side, in one run: the same 10 dialogue prompts as
``bench_embedded.py``, the same seeds and sampler settings, through ``LlamaCppBackend``
with ``cpu_repack=on`` and ``cpu_repack=off``, in alternating rounds (best of each kept,
as the least disturbed). It also says whether the two layouts gave the same text.

    python benchmarks/bench_cpu_repack.py [--rounds 3] [--max-tokens 48]
"""

from __future__ import annotations

import platform
import time

from bench_embedded import SAMPLING, prompt_args

from simlab.backends.base import ChatRequest
from simlab.backends.cpu import cpu_flags
from simlab.backends.llamacpp import LlamaCppBackend


def timed(backend: LlamaCppBackend, requests: list[ChatRequest]) -> tuple[int, int, float,
                                                                          list[str]]:
    t0 = time.perf_counter()
    prompt = completion = 0
    texts = []
    for r in requests:  # one request per tick, as a 2-party dialogue sends them
        out = backend.generate([r])[0]
        prompt += out.prompt_tokens
        completion += out.completion_tokens
        texts.append(out.text)
    return prompt, completion, time.perf_counter() - t0, texts


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    args, reqs = prompt_args()
    backends = {}
    for setting in ("on", "off"):
        t0 = time.perf_counter()
        # the one-at-a-time path with reuse_prefix off: every prompt is evaluated in
        # full, the same work each round, on the shipped Q4_1 file
        backends[setting] = LlamaCppBackend(n_threads=args.threads, cpu_repack=setting,
                                            reuse_prefix=False, batched=False,
                                            weights="shipped", **SAMPLING)
        load = time.perf_counter() - t0
        backends[setting].generate(reqs[:1])  # warm
        print(f"cpu_repack={setting}: loaded in {load:.2f} s; "
              f"{backends[setting].repack.reason}")
    best = {"on": 0.0, "off": 0.0}
    texts: dict[str, list[str]] = {}
    for i in range(args.rounds):
        for setting, backend in backends.items():
            prompt, completion, secs, texts[setting] = timed(backend, reqs)
            rate = (prompt + completion) / secs
            best[setting] = max(best[setting], rate)
            print(f"round {i}: cpu_repack={setting:>3}: {prompt} prompt + {completion} "
                  f"completion tokens in {secs:.2f} s = {rate:.1f} tok/s")
    amx = sorted(f for f in cpu_flags() if f.startswith("amx"))
    print(f"cpu: {cpu_name()}, AMX flags: {amx or 'none'}, threads {args.threads}")
    print(f"best on {best['on']:.1f} tok/s, best off {best['off']:.1f} tok/s, "
          f"off/on {best['off'] / best['on']:.3f}; same text: {texts['on'] == texts['off']}")


if __name__ == "__main__":
    main()
