"""Every memory policy by name: the one place that imports them all."""

from __future__ import annotations

from simlab.context.budget import TokenCounter
from simlab.context.memory import FullMemory, Memory, MemoryConfig, MemoryName, WindowMemory
from simlab.context.retrieval import RetrievalMemory
from simlab.context.summary import SummaryMemory

POLICIES: dict[MemoryName, type[Memory]] = {
    MemoryName.window: WindowMemory,
    MemoryName.summary: SummaryMemory,
    MemoryName.retrieval: RetrievalMemory,
    MemoryName.full: FullMemory,
}


def make_memory(name: MemoryName, config: MemoryConfig, counter: TokenCounter) -> Memory:
    """The policy called ``name`` for one episode."""
    return POLICIES[MemoryName(name)](config, counter)
