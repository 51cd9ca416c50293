"""The scheduler graph: a LangGraph ``StateGraph`` that drives one episode.

    schedule → project → act → resolve → record → (done? END : schedule)

Nodes are thin wrappers over :class:`~simlab.scheduler.engine.TickEngine`. The state
holds only the current tick's working data; the event log itself lives in the scenario,
which is the single source of truth.
"""

from __future__ import annotations

import itertools
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from simlab.scheduler.engine import TickEngine


class TickState(TypedDict, total=False):
    """Working state of the graph between nodes of one tick."""

    step: int
    actors: list[str]
    views: dict[str, Any]
    outcomes: list[Any]
    pending: list[Any]
    done: bool
    reason: str


#: Node names, in order: also what ``simlab graph`` draws.
NODES = ("schedule", "project", "act", "resolve", "record")


def build_graph(engine: TickEngine | None = None) -> Any:
    """Compile the episode graph for ``engine`` (or an unbound one, for drawing)."""

    def schedule(state: TickState) -> TickState:
        assert engine is not None
        return {"actors": engine.schedule(state.get("step", 0))}

    def project(state: TickState) -> TickState:
        assert engine is not None
        return {"views": engine.project(state["actors"])}

    def act(state: TickState) -> TickState:
        assert engine is not None
        return {"outcomes": engine.act(state["actors"], state["views"])}

    def resolve(state: TickState) -> TickState:
        assert engine is not None
        return {"pending": engine.resolve(state.get("step", 0), state["outcomes"])}

    def record(state: TickState) -> TickState:
        assert engine is not None
        step = state.get("step", 0)
        done, reason = engine.record(step, state["pending"])
        return {"step": step + 1, "done": done, "reason": reason,
                "views": {}, "outcomes": [], "pending": []}

    def go_on(state: TickState) -> str:
        return END if state.get("done") else "schedule"

    builder = StateGraph(TickState)
    for name, fn in zip(NODES, (schedule, project, act, resolve, record), strict=True):
        builder.add_node(name, fn)
    builder.add_edge(START, "schedule")
    for a, b in itertools.pairwise(NODES):
        builder.add_edge(a, b)
    builder.add_conditional_edges("record", go_on, {"schedule": "schedule", END: END})
    return builder.compile()


def run_episode(engine: TickEngine, start: int = 0) -> TickState:
    """Run the scenario bound to ``engine`` from tick ``start`` (a restored checkpoint's,
    else 0) until it terminates; return the final state."""
    graph = build_graph(engine)
    # Each tick is len(NODES) supersteps; leave room for the engine's own step cap.
    limit = len(NODES) * (engine.max_steps - start + 1) + 10
    return graph.invoke({"step": start, "done": False}, config={"recursion_limit": limit})


def mermaid() -> str:
    """The episode graph as Mermaid text (``simlab graph``)."""
    return build_graph().get_graph().draw_mermaid()
