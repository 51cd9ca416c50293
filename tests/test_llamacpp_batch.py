"""The embedded model's batch engine: kept KV never changes a text, and the caps hold.

The offline tests check the saved-state store's LRU arithmetic. The embedded ones replay
four agents' growing views in several orders, batch widths and caps, and require every
text to equal the one a cold, one-at-a-time evaluation gives for the same request.
"""

from __future__ import annotations

import random

import pytest

from simlab.backends.base import ChatRequest, Message
from simlab.backends.llamacpp_kv import KVStats, Saved, SavedStates, common_prefix


def test_common_prefix() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2


def test_saved_states_evict_least_recently_used_within_the_cap() -> None:
    stats = KVStats()
    store = SavedStates(cap=10, stats=stats)
    store.put("a", Saved((1,), b"aaaa"))
    store.put("b", Saved((2,), b"bbbb"))
    assert store.get("a") is not None  # a is now the most recently used
    store.put("c", Saved((3,), b"cccc"))  # 12 bytes > 10: b goes, not a
    assert store.peek("b") is None and store.peek("a") and store.peek("c")
    assert (stats.saves, stats.evictions, stats.saved_bytes, stats.peak_saved_bytes) == (
        3, 1, 8, 8)
    store.put("a", Saved((1, 1), b"aaaaaa"))  # replacing a: 6 + 4 = 10 fits
    assert (len(store), stats.saved_bytes, stats.evictions) == (2, 10, 1)
    store.put("big", Saved((9,), b"x" * 11))  # larger than the cap: never kept
    assert store.peek("big") is None and stats.evictions == 2 and len(store) == 2
    assert stats.as_dict()["kv_evictions"] == 2


def test_engine_checks_the_installed_llama_cpp() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from simlab.backends.llamacpp_batch import CHECKED_VERSIONS, supported

    assert supported(llama_cpp) == []
    if llama_cpp.__version__ not in CHECKED_VERSIONS:
        pytest.fail(f"llama-cpp-python {llama_cpp.__version__} is not among the checked "
                    f"versions {CHECKED_VERSIONS}: re-check simlab/backends/llamacpp_batch.py")


def test_bad_settings_name_the_field() -> None:
    pytest.importorskip("llama_cpp")
    from simlab.backends.base import BackendError
    from simlab.backends.llamacpp import LlamaCppBackend

    with pytest.raises(BackendError, match=r"backend\.parallel"):
        LlamaCppBackend(parallel=0)


# --------------------------------------------------------------------- embedded model

AGENTS = ("ann", "bo", "cy", "di")
RULES = ("You are in a village meeting about a new bridge. Speak in the first person, "
         "in one or two short sentences, and stay in character. ") * 2


def view(agent: str, turn: int) -> tuple[Message, ...]:
    """``agent``'s egocentric view at ``turn``: it only grows, as under ECP."""
    msgs = [Message("system", f"{RULES}You are {agent.title()}, who keeps "
                              f"{len(agent) * 3} goats.")]
    for t in range(turn + 1):
        msgs.append(Message("user", f"Round {t}: the others spoke. What do you say?"))
        if t < turn:
            msgs.append(Message("assistant", f"In round {t} I said the bridge needs {t} "
                                             "more planks."))
    return tuple(msgs)


def request(agent: str, turn: int, tag: str | None = None) -> ChatRequest:
    return ChatRequest(view(agent, turn), max_tokens=14, temperature=0.9,
                       seed=100 * turn + AGENTS.index(agent), tag=agent if tag is None else tag)


@pytest.fixture(scope="module")
def cold() -> dict[tuple[str, int], str]:
    """Every request alone, untagged (nothing kept) and with no prefix sharing."""
    pytest.importorskip("llama_cpp")
    from simlab.backends.llamacpp import LlamaCppBackend

    backend = LlamaCppBackend(n_ctx=1024, parallel=1, share_prefix=0)
    out = {}
    for turn in range(3):
        for a in AGENTS:
            (reply,) = backend.generate([request(a, turn, tag="")])
            assert reply.ok, reply.error
            out[a, turn] = reply.text
    return out


def replay(backend, order, *, batch: bool) -> dict[tuple[str, int], str]:
    texts = {}
    for turn in range(3):
        agents = order(turn)
        if batch:
            replies = backend.generate([request(a, turn) for a in agents])
        else:
            replies = [backend.generate([request(a, turn)])[0] for a in agents]
        for a, reply in zip(agents, replies, strict=True):
            assert reply.ok, reply.error
            texts[a, turn] = reply.text
    return texts


@pytest.mark.embedded
@pytest.mark.parametrize(
    ("parallel", "cap_mb", "batch", "order"),
    [
        (8, 1024, True, "forward"),  # every agent stays resident in its stream
        (2, 1024, True, "reverse"),  # 4 agents on 2 streams: saved and restored
        (3, 1024, True, "shuffled"),  # continuous batching: streams freed mid-tick
        (2, 0, False, "shuffled"),  # one at a time; no state may be kept: all evicted
    ],
)
def test_kept_kv_changes_no_text(cold, parallel, cap_mb, batch, order) -> None:
    from simlab.backends.llamacpp import LlamaCppBackend

    rng = random.Random(parallel)
    orders = {"forward": lambda t: list(AGENTS), "reverse": lambda t: list(AGENTS[::-1]),
              "shuffled": lambda t: rng.sample(AGENTS, len(AGENTS))}
    backend = LlamaCppBackend(n_ctx=1024, parallel=parallel, kv_cache_mb=cap_mb)
    assert replay(backend, orders[order], batch=batch) == cold
    stats = backend.stats()
    assert stats["kv_requests"] == 12
    if cap_mb:  # later turns evaluated only their new tails
        assert stats["kv_evaluated_tokens"] < stats["kv_prompt_tokens"] / 2
    if parallel == 8:
        assert stats["kv_resident_hits"] == 8 and stats["kv_restores"] == 0
    elif cap_mb:
        assert stats["kv_restores"] > 0
    else:
        assert stats["kv_restores"] == 0 and stats["kv_evictions"] == stats["kv_saves"] > 0
        assert stats["kv_saved_bytes"] == 0


@pytest.mark.embedded
def test_a_batched_tick_gives_each_request_its_text_alone() -> None:
    """Structured and free-text requests, stop strings and a too-long prompt in one
    batch: each reply is what the request gets alone, and a failure stays its own."""
    from simlab.backends.llamacpp import LlamaCppBackend

    schema = {"type": "object", "properties": {"hours": {"type": "integer"}},
              "required": ["hours"]}
    reqs = [
        ChatRequest(view("ann", 1), max_tokens=20, seed=1, tag="ann", json_schema=schema),
        ChatRequest(view("bo", 0), max_tokens=20, seed=2, tag="bo", stop=("bridge",)),
        ChatRequest((Message("user", "word " * 1100),), max_tokens=8, seed=3, tag="long"),
        ChatRequest(view("cy", 2), max_tokens=20, seed=4, tag="cy"),
    ]
    batched = LlamaCppBackend(n_ctx=1024, parallel=4).generate(reqs)
    alone = LlamaCppBackend(n_ctx=1024, parallel=1, share_prefix=0)
    single = [alone.generate([r])[0] for r in reqs]
    assert [r.text for r in batched] == [r.text for r in single]
    assert batched[0].ok and isinstance(batched[0].parsed["hours"], int)
    assert "bridge" not in batched[1].text
    assert not batched[2].ok and "exceeds n_ctx 1024" in batched[2].error
    assert batched[3].ok and batched[3].completion_tokens > 0


@pytest.mark.embedded
def test_a_request_that_fails_frees_its_stream() -> None:
    """A grammar llama.cpp cannot parse fails that request alone, every time, and the
    stream it took is free again for the rest of the tick."""
    import llama_cpp

    from simlab.backends.llamacpp import LlamaCppBackend
    from simlab.backends.llamacpp_adapter import model_pointer
    from simlab.backends.llamacpp_batch import BatchEngine
    from simlab.backends.llamacpp_kv import SeqRequest

    backend = LlamaCppBackend(n_ctx=1024, parallel=1)
    engine = BatchEngine(llama_cpp, model_pointer(backend._llm), n_ctx=1024, parallel=1,
                         n_batch=512, n_threads=backend.n_threads, cache_bytes=1 << 20)
    tokens = tuple(backend.template.encode([m.as_dict() for m in view("ann", 0)]).ids)
    good = SeqRequest(tokens, 6, 0.0, 1.0, 40, 0.05, 1.2, 1, key="ann")
    bad = SeqRequest(tokens, 6, 0.0, 1.0, 40, 0.05, 1.2, 1, grammar="root ::= (", key="bo")
    try:
        out = engine.run([bad, good, bad])  # one stream: each must be given back
        assert [r.finish_reason == "error" for r in out] == [True, False, True]
        assert "grammar" in out[0].error and out[1].tokens
        assert engine.run([good])[0].text == out[1].text
    finally:
        engine.close()


@pytest.mark.embedded
def test_weights_copy_is_made_once_and_only_for_q4_1(tmp_path) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from simlab.backends.llamacpp import default_model_path
    from simlab.backends.llamacpp_weights import file_type, weights_for

    shipped = default_model_path()
    assert file_type(llama_cpp, shipped) == "3"  # LLAMA_FTYPE_MOSTLY_Q4_1
    assert weights_for(llama_cpp, shipped, "shipped", tmp_path) == shipped
    copy = weights_for(llama_cpp, shipped, "auto", tmp_path)
    assert copy.parent == tmp_path and copy.name.endswith(".q8_0.gguf")
    assert file_type(llama_cpp, copy) == "7"  # LLAMA_FTYPE_MOSTLY_Q8_0
    made = copy.stat().st_mtime_ns
    assert weights_for(llama_cpp, shipped, "q8_0", tmp_path) == copy  # found, not made
    assert copy.stat().st_mtime_ns == made
    assert weights_for(llama_cpp, copy, "auto", tmp_path) == copy  # not Q4_1: as it is
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(ValueError, match=r"backend\.weights: expected one of"):
        weights_for(llama_cpp, shipped, "fp4", tmp_path)


@pytest.mark.embedded
def test_a_step_decodes_its_streams_in_order() -> None:
    """llama.cpp splits a call wherever stream ids step back, computing each piece as a
    separate ubatch; requests that arrive in reverse stream order still step as one."""
    import llama_cpp

    from simlab.backends.llamacpp import LlamaCppBackend
    from simlab.backends.llamacpp_adapter import model_pointer
    from simlab.backends.llamacpp_batch import BatchEngine
    from simlab.backends.llamacpp_kv import SeqRequest

    backend = LlamaCppBackend(n_ctx=1024, parallel=1)
    engine = BatchEngine(llama_cpp, model_pointer(backend._llm), n_ctx=1024, parallel=3,
                         n_batch=512, n_threads=backend.n_threads, cache_bytes=1 << 24)

    def req(agent: str) -> SeqRequest:
        tokens = tuple(backend.template.encode([m.as_dict() for m in view(agent, 0)]).ids)
        return SeqRequest(tokens, 5, 0.0, 1.0, 40, 0.05, 1.0, 1, key=agent)

    calls: list[list[int]] = []
    decode = engine._decode
    engine._decode = lambda rows: (calls.append([r[2] for r in rows]), decode(rows))[1]
    try:
        first = engine.run([req(a) for a in ("ann", "bo", "cy")])  # streams 0, 1, 2
        calls.clear()
        again = engine.run([req(a) for a in ("cy", "bo", "ann")])  # each in its own stream
        steps = [sids for sids in calls if len(sids) == len(set(sids)) > 1]
        assert steps and all(sids == sorted(sids) for sids in steps)
        assert [r.text for r in again] == [r.text for r in first][::-1]
    finally:
        engine.close()
