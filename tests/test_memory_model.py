"""Retrieval memory's model parts: importance rated by the agent's model, reflections,
and relevance by embeddings (through a fake embedder, and a real llama.cpp server)."""

from __future__ import annotations

import json
import math
import sqlite3

import polars as pl
import pytest
from conftest import compose
from servers.llama import free_port, llama_server
from test_memory import S, Words, _log_and_projector

from simlab.backends.base import BackendError, ChatResponse
from simlab.backends.embeddings import Embedder, EmbeddingConfig, LiteLLMEmbedder
from simlab.context.budget import Budget
from simlab.context.importance import parse_insights, parse_scores
from simlab.context.memory import MemoryConfig, Note
from simlab.context.relevance import EmbeddingIndex, cosine
from simlab.context.retrieval import RetrievalMemory
from simlab.runner import run
from simlab.store import load_run

WIDE = Budget(window=400, max_tokens=10, margin=0)  # prompt 390: requests fit
# prompt 15: the 3-event view (20 words) is over; the window still holds the requests
TIGHT = Budget(window=400, max_tokens=385, margin=0)


def test_scores_parsed_repaired_or_left_to_the_rule():
    ok = ChatResponse(text='{"scores": [7, 2, 10]}', parsed={"scores": [7, 2, 10]})
    assert parse_scores(ok, 3) == ([7, 2, 10], False)
    # a reply that missed its schema: the integers in order, clipped to 1..10
    prose = ChatResponse(text="1. 7/10 2. 3 and 3. 12 (or 0.5)", error="invalid")
    assert parse_scores(prose, 3) == ([7, 10, 3], True)
    assert parse_scores(ChatResponse(text="", error="timeout"), 2) == ([None, None], True)
    short = ChatResponse(text='{"scores": [4]}', parsed={"scores": [4]})
    assert parse_scores(short, 2) == ([4, None], True)


def test_insights_parsed_or_taken_line_by_line():
    ok = ChatResponse(text="x", parsed={"insights": ["Tom likes  bread.", "I am tired."]})
    assert parse_insights(ok) == ["Tom likes bread.", "I am tired."]
    prose = ChatResponse(text="- Tom likes bread\n\n2) I am tired\n3. a\n4. b", error="bad")
    assert parse_insights(prose) == ["Tom likes bread", "I am tired", "a"]
    assert parse_insights(ChatResponse(text="", error="timeout")) == []
    cut = ChatResponse(text='{"insights": ["Tom likes', error="invalid structured reply")
    assert parse_insights(cut) == []  # JSON cut off at max_tokens: nothing recorded


def _memory(**config) -> tuple[RetrievalMemory, object, object]:
    log, projector = _log_and_projector()
    memory = RetrievalMemory(MemoryConfig(policy="retrieval", **config), Words())
    memory.bind(projector, lambda: log)
    return memory, log, projector


def test_importance_is_asked_in_batches_once_the_view_is_over_budget():
    memory, log, projector = _memory(importance="model", importance_batch=2)
    view = projector.view("me", log)  # 3 + 13 + 4 = 20 words
    assert memory.prepare("me", 3, view, WIDE, lambda: 5) == []  # it fits: nothing asked
    seeds = iter(range(100, 200))
    first, second = memory.prepare("me", 3, view, TIGHT, lambda: next(seeds))
    assert first.messages[0] == S("You are Me.")
    assert first.messages[1].content.endswith(
        "1. - (tick 0) [Narrator] The bakery on Main Street closes\n"
        "2. - (tick 1) Tom: I love the new bakery bread")
    assert second.messages[1].content.endswith("1. - (tick 2) You: The weather is nice")
    assert first.json_schema["properties"]["scores"]["minItems"] == 2
    assert (first.seed, second.seed, first.temperature) == (100, 101, 0.0)
    # asked once: pending events are not asked again
    assert memory.prepare("me", 3, view, TIGHT, lambda: 9) == []
    note = memory.absorb("me", 3, first, ChatResponse(text="x", parsed={"scores": [2, 9]}))
    assert note == Note("importance: 0=2, 1=9", {"importance": {"0": 2, "1": 9},
                                                  "repaired": False, "by_rule": []})
    # a failed rating falls back to the rule (own words 0.3 -> 3), and is recorded so
    note = memory.absorb("me", 3, second, ChatResponse(text="", error="boom"))
    assert note.data == {"importance": {"2": 3}, "repaired": True, "by_rule": [2]}
    assert memory.prepare("me", 3, view, TIGHT, lambda: 9) == []  # all rated


def test_model_importance_changes_the_ranking_by_hand():
    memory, log, projector = _memory(importance="model")
    view = projector.view("me", log)
    (request,) = memory.prepare("me", 4, view, TIGHT, lambda: 1)
    memory.absorb("me", 4, request, ChatResponse(text="", parsed={"scores": [1, 1, 10]}))
    # importance 0.1, 0.1, 1.0 -> normalised 0, 0, 1; recency 0, 0.0099/0.0199, 1;
    # relevance to "bread" 0, 1, 0 (as in test_retrieval_scores_by_hand)
    ranked = memory.ranked("me", 4, 3, "Where can we buy bread?")
    assert [seq for _, seq in ranked] == [2, 1, 0]
    assert [s for s, _ in ranked] == pytest.approx([2.0, 0.0099 / 0.0199 + 1, 0.0])


def test_reflection_every_n_ticks_is_recalled_as_a_memory():
    memory, log, projector = _memory(reflect_every=2)
    view = projector.view("me", log)
    assert memory.prepare("me", 2, view, WIDE, lambda: 1) == []  # the whole view fits
    assert memory.prepare("me", 1, view, TIGHT, lambda: 1) == []  # not due before tick 2
    (request,) = memory.prepare("me", 2, view, TIGHT, lambda: 7)
    assert request.json_schema["properties"]["insights"]["maxItems"] == 3
    assert "- (tick 1) Tom: I love the new bakery bread" in request.messages[1].content
    reply = ChatResponse(text="x", parsed={"insights": ["Tom cares about bread."]})
    note = memory.absorb("me", 2, request, reply)
    assert note == Note("Tom cares about bread.", {"reflection": True, "about": [0, 2]})
    log.append(step=2, speaker="me", audience=("me",), kind="memory", content=note.content,
               data=json.dumps({"memory": "retrieval", **note.data}))
    # not due again until tick 4, and then only with 3 new events to reflect on
    assert memory.prepare("me", 3, view, TIGHT, lambda: 1) == []
    assert memory.prepare("me", 4, view, TIGHT, lambda: 1) == []
    lines = memory.recall("me", 4, 99, "bread", room=100)
    assert "- (tick 2) You concluded: Tom cares about bread." in lines


class Vectors(Embedder):
    """Embeds by word presence over a tiny vocabulary; counts calls; fails on demand."""

    VOCAB = ("bread", "bakery", "weather", "buy")

    def __init__(self) -> None:
        self.calls, self.fail = 0, False

    def embed(self, texts):
        self.calls += 1
        if self.fail:
            raise BackendError("embedding server down")
        return [[float(w in t.lower()) for w in self.VOCAB] for t in texts]


def test_embedding_relevance_is_cosine_and_falls_back_to_bm25():
    embedder = Vectors()
    index = EmbeddingIndex(embedder)
    for seq, text in enumerate(["The bakery closes", "I love bakery bread", "Nice weather"]):
        index.add(seq, text)
    # query "buy bread": (1, 0, 0, 1); docs (0,1,0,0), (1,1,0,0), (0,0,1,0)
    assert index.scores("buy bread", [0, 1, 2]) == pytest.approx([0.0, 0.5, 0.0])
    assert cosine([1, 0, 0, 1], [1, 1, 0, 0]) == pytest.approx(0.5)
    assert index.scores("bakery", [0, 1]) == pytest.approx([1.0, 1 / math.sqrt(2)])
    assert embedder.calls == 2  # documents embedded once; the query per call
    embedder.fail = True
    assert index.scores("bread", [0, 1, 2]) == index.lexical.scores("bread", [0, 1, 2])
    assert index.fallbacks == 1


def test_retrieval_uses_the_bound_embedder():
    log, projector = _log_and_projector()
    memory = RetrievalMemory(MemoryConfig(policy="retrieval",
                                          embedding={"model": "openai/x"}), Words())
    embedder = Vectors()
    memory.bind(projector, lambda: log, embedder)
    ranked = memory.ranked("me", 4, 3, "Where can we buy bread?")
    assert [seq for _, seq in ranked] == [1, 2, 0]
    assert embedder.calls == 1


def test_embedding_config_checks():
    with pytest.raises(ValueError, match=r"memory\.embedding\.api_key_env"):
        EmbeddingConfig(model="x", api_key_env="sk-123 456")
    with pytest.raises(ValueError, match=r"memory\.embedding\.batch"):
        MemoryConfig(embedding={"batch": 0})
    with pytest.raises(ValueError, match=r"memory\.importance"):
        MemoryConfig(importance="llm")


def test_model_memory_on_a_scenario_is_recorded_and_deterministic(tmp_path):
    """An opinion run far past a small window with rated importance and reflections:
    the ratings and reflections are memory events, no request exceeds the window, and
    a second run with the same seed has identical events."""
    overrides = ("scenario=opinion", "scenario.ticks=12", "scenario.n_agents=4",
                 "backend=mock", "+backend.context_window=600", "memory=retrieval",
                 "memory.importance=model", "memory.reflect_every=4", "episodes=1")
    for name in ("a", "b"):
        run(compose(*overrides), tmp_path / name)
    a, b = (load_run(tmp_path / n).events.drop("latency_s") for n in ("a", "b"))
    assert a.equals(b)
    memory = a.filter(pl.col("kind") == "memory")
    data = [json.loads(d) for d in memory["data"]]
    rated = [d for d in data if "importance" in d]
    reflections = [d for d in data if d.get("reflection")]
    assert rated and reflections
    assert all(d["memory"] == "retrieval" for d in data)
    assert (memory["audience"].list.len() == 1).all()
    assert a.filter(pl.col("kind") == "failure").height == 0
    assert (a["prompt_tokens"] + a["completion_tokens"] <= 600).all()


# ------------------------------------------------------------- a real embedding server
@pytest.mark.embedded
def test_litellm_embeddings_from_a_real_llama_cpp_server(tmp_path):
    """``litellm.embedding`` against llama.cpp's OpenAI-compatible server on 127.0.0.1:
    vectors come back, and a second embedder on the same cache makes no call."""
    with llama_server(tmp_path, "--n_ctx", "512", "--embedding", "true") as api_base:
        config = EmbeddingConfig(model="openai/smollm2", api_base=api_base)
        cache = tmp_path / "cache.sqlite"
        first = LiteLLMEmbedder(config, cache)
        texts = ["I love the new bakery bread", "Where can we buy bread?", "The weather"]
        vectors = first.embed(texts)
        assert first.calls == 1 and len(vectors) == 3
        assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) >= 64
        assert cosine(vectors[0], vectors[0]) == pytest.approx(1.0)
        first.close()
        again = LiteLLMEmbedder(config, cache)
        assert again.embed(texts) == vectors and again.calls == 0 and again.hits == 3
        again.close()
        # a whole run: mock agents far past a small window, relevance from the server
        run(compose("scenario=opinion", "scenario.ticks=6", "scenario.n_agents=3",
                    "scenario.degree=2", "backend=mock", "+backend.context_window=400",
                    "memory=retrieval", "memory.embedding.model=openai/smollm2",
                    f"memory.embedding.api_base={api_base}", "episodes=1",
                    "backend.cache.enabled=true",
                    f"backend.cache.path={tmp_path / 'run-cache.sqlite'}"), tmp_path / "run")
        events = load_run(tmp_path / "run").events
        assert events.filter(pl.col("kind") == "failure").height == 0
        with sqlite3.connect(tmp_path / "run-cache.sqlite") as db:
            assert db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] > 10


def test_token_level_embeddings_are_mean_pooled():
    from simlab.backends.embeddings import _pooled

    assert _pooled([[1.0, 2.0], [3.0, 6.0]]) == [2.0, 4.0]
    assert _pooled([0.5, 1]) == [0.5, 1.0]


def test_an_unset_key_variable_is_an_error_not_another_key(monkeypatch):
    monkeypatch.delenv("SIMLAB_TEST_EMBED_KEY", raising=False)
    embedder = LiteLLMEmbedder(EmbeddingConfig(model="openai/x", api_base="http://127.0.0.1:9",
                                               api_key_env="SIMLAB_TEST_EMBED_KEY"))
    with pytest.raises(BackendError, match="SIMLAB_TEST_EMBED_KEY is not set"):
        embedder.embed(["hello"])
    assert embedder.calls == 0


def test_an_embedding_failure_names_the_model():
    embedder = LiteLLMEmbedder(EmbeddingConfig(model="openai/none", api_base=(
        f"http://127.0.0.1:{free_port()}/v1"), num_retries=0))
    with pytest.raises(BackendError, match="embedding with openai/none failed"):
        embedder.embed(["hello"])
