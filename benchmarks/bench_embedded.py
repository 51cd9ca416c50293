"""Benchmark: embedded-model tokens/s through simlab vs calling llama-cpp-python directly.

The prompts are real: the egocentric views of a 2-party dialogue (recorded with the mock
backend, so both paths see identical prompts). Both paths use the same GGUF, context size,
threads, batch size and sampler settings, and generate exactly ``max_tokens`` tokens per
prompt (``ignore_eos`` is not available on both paths, so we compare completion tokens per
wall second, which includes prompt evaluation on both sides). Target (issue 3): simlab at
least 0.95 × direct.

    python benchmarks/bench_embedded.py [--rounds 3] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import os
import time

from simlab.backends.base import ChatRequest
from simlab.backends.llamacpp import LlamaCppBackend, default_model_path
from simlab.backends.mock import MockBackend
from simlab.backends.wrappers import wrap_backend
from simlab.personas import default_persona_path, load_personas
from simlab.scheduler import TickEngine, run_episode

SAMPLING = {"top_k": 40, "min_p": 0.05, "repeat_penalty": 1.2}


def dialogue_prompts(n_turns: int) -> list[ChatRequest]:
    """The requests of a real dialogue episode (views recorded from a mock run)."""
    from scenarios.dialogue import DialogueConfig, DialogueScenario
    from simlab.scheduler.settings import EngineConfig

    recorder = MockBackend()
    sc = DialogueScenario.create(DialogueConfig(min_turns=n_turns, max_turns=n_turns),
                                 load_personas(default_persona_path()), episode_id="b", seed=1)
    run_episode(TickEngine(sc, recorder, settings=EngineConfig(max_steps=4 * n_turns)))
    return list(recorder.calls)


def via_simlab(requests: list[ChatRequest], threads: int) -> tuple[int, float]:
    # the one-at-a-time path on the shipped file: the same calls as `direct` makes
    # (bench_batch.py measures the batch engine against itself called directly)
    backend = wrap_backend(LlamaCppBackend(n_threads=threads, batched=False, weights="shipped",
                                           **SAMPLING))
    backend.generate(requests[:1])  # load + warm
    t0 = time.perf_counter()
    toks = 0
    for r in requests:  # one request per tick, as a 2-party dialogue sends them
        toks += backend.generate([r])[0].completion_tokens
    return toks, time.perf_counter() - t0


def direct(requests: list[ChatRequest], threads: int) -> tuple[int, float]:
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=2048, n_threads=threads,
                          n_threads_batch=threads, n_batch=512, n_ubatch=512, verbose=False)
    llm.create_chat_completion(messages=requests[0].messages_dicts(), max_tokens=4)
    t0 = time.perf_counter()
    toks = 0
    for r in requests:
        out = llm.create_chat_completion(
            messages=r.messages_dicts(), max_tokens=r.max_tokens, temperature=r.temperature,
            top_p=r.top_p, seed=r.seed, **SAMPLING)
        toks += out["usage"]["completion_tokens"]
    return toks, time.perf_counter() - t0


def prompt_args() -> tuple[argparse.Namespace, list[ChatRequest]]:
    """The command line shared with bench_cpu_repack.py, and the requests it asks for."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    reqs = [ChatRequest(messages=r.messages, max_tokens=args.max_tokens, temperature=r.temperature,
                        top_p=r.top_p, seed=r.seed) for r in dialogue_prompts(args.turns)]
    return args, reqs


def main() -> None:
    args, reqs = prompt_args()
    best = {"simlab": 0.0, "direct": 0.0}
    for i in range(args.rounds):  # alternate, keep the best of each (least disturbed)
        for name, fn in (("simlab", via_simlab), ("direct", direct)):
            toks, secs = fn(reqs, args.threads)
            rate = toks / secs
            best[name] = max(best[name], rate)
            print(f"round {i}: {name:>6}: {toks} tokens in {secs:.2f} s = {rate:.1f} tok/s")
    ratio = best["simlab"] / best["direct"]
    print(f"prompts: {len(reqs)} dialogue views, max_tokens {args.max_tokens}, "
          f"threads {args.threads}")
    print(f"best simlab {best['simlab']:.1f} tok/s, best direct {best['direct']:.1f} tok/s, "
          f"ratio {ratio:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
