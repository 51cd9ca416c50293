"""The ``summary`` memory policy: what a window cuts is folded into a rolling summary.

Like ``window``, the newest messages are kept and history is cut in steps (to
``memory.refill`` of the budget). Before a cut, the messages about to fall out, with the
agent's previous summary, go to the agent's own backend with a request to summarise
them in the first person, in at most ``memory.summary_tokens`` tokens. The engine sends
every agent's summary request of a tick as one batch (cached like every call) and
records each reply as a ``memory`` event with the agent as its only audience, so a run
is reproducible from its log and analysis can read what each agent remembered. The
summary then stands where history was cut, until the next cut replaces it.
"""

from __future__ import annotations

from collections.abc import Callable

from simlab.backends.base import ChatRequest, ChatResponse, Message
from simlab.context.budget import Budget, TokenCounter
from simlab.context.memory import OMITTED, MemoryConfig, Note, WindowMemory

#: Heads the summary in the view: fixed text, so the agent knows what it is reading.
HEADER = "(What you remember of earlier events:)"

PROMPT = (
    "Here is what you remembered so far, then what happened after it. Write, in the "
    "first person and in at most {words} words, what you want to remember: facts, names, "
    "numbers, promises and how you feel about them. Reply with the summary only.\n\n"
    "What you remembered so far:\n{previous}\n\nWhat happened after it:\n{events}"
)


class SummaryMemory(WindowMemory):
    """Window memory whose cuts are summarised by the agent's backend."""

    name = "summary"

    def __init__(self, config: MemoryConfig, counter: TokenCounter) -> None:
        super().__init__(config, counter)
        self._summary: dict[str, str] = {}  # agent -> its latest summary
        self._pending: dict[str, int] = {}  # agent -> the cut awaiting its summary

    def note(self, agent: str) -> str:
        summary = self._summary.get(agent)
        return f"{HEADER}\n{summary}" if summary else OMITTED

    def note_reserve(self, agent: str) -> int:
        """Room for a summary not yet written: its header and ``summary_tokens``."""
        return self.counter.count_text(HEADER) + self.config.summary_tokens

    def prepare(self, agent: str, step: int, view: tuple[Message, ...], budget: Budget,
                seed: Callable[[], int]) -> list[ChatRequest]:
        if len(view) < 3:
            return []
        start = min(self._start.get(agent, 0), len(view) - 2)
        if self.counter.count_tokens(self.windowed(agent, view, start)) <= budget.prompt:
            return []
        cut = self.trim_start(agent, view, round(budget.prompt * self.config.refill))
        folded = view[1 + start:1 + cut]
        if not folded:
            return []
        self._pending[agent] = cut
        words = max(8, self.config.summary_tokens * 3 // 4)
        previous = self._summary.get(agent) or "(nothing yet)"
        lines = [m.content if m.role == "user" else f"You: {m.content}" for m in folded]
        # the summary request has its own reply size: its budget is the window's
        room = budget.window - budget.margin - self.config.summary_tokens - 8
        room -= self.counter.count_tokens(view[:1]) + self.counter.count_text(
            PROMPT.format(words=words, previous=previous, events=""))
        lines = _newest_lines(lines, room, self.counter)
        if not lines:  # the window cannot hold a summary request: cut as window does
            self._pending.pop(agent)
            return []
        text = PROMPT.format(words=words, previous=previous, events="\n".join(lines))
        return [ChatRequest(messages=(view[0], Message("user", text)),
                            max_tokens=self.config.summary_tokens, temperature=0.2,
                            top_p=0.9, seed=seed(), tag=f"{agent}:summary")]

    def absorb(self, agent: str, step: int, request: ChatRequest,
               response: ChatResponse) -> Note | None:
        cut = self._pending.pop(agent, None)
        text = " ".join(response.text.split()) if response.ok else ""
        if cut is None or not text:
            return None  # fit() cuts as window does, keeping the previous summary
        self._summary[agent] = text
        self._start[agent] = cut
        return Note(text)


def _newest_lines(lines: list[str], room: int, counter: TokenCounter) -> list[str]:
    """The newest of ``lines`` (one per message, split per event) that fit ``room``."""
    out: list[str] = []
    for line in reversed("\n".join(lines).split("\n")):
        cost = counter.count_text(line) + 1
        if cost > room:
            break
        out.append(line)
        room -= cost
    return out[::-1]
