"""The perspective-agnostic event log: the single source of truth of an episode.

Prompts, metrics, exports and transcripts are all derived from it, so an event records
*what happened* (who said what, to whom) and never how any one agent saw it. Each agent's
chat view is a projection of this log (see ``simlab.context``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from simlab.usage import Usage

#: Speaker id used for events the environment (not an agent) emits.
ENV = "env"

#: Event kinds the engine itself writes. Scenarios may add their own.
UTTERANCE = "utterance"  # an agent said something, in character
NARRATION = "narration"  # the environment announced something
FAILURE = "failure"  # an agent's model call failed after retries/repair; content = reason
NOTE = "note"  # a private note (audience is the speaker only)
#: what a memory policy wrote for its agent (a summary of older events; audience: that
#: agent only). Projections never show it as a turn; the policy places it in the view.
MEMORY = "memory"
#: a change made to the world from outside it (config ``interventions``): a broadcast, a
#: setting, a persona, an agent or edges added or removed. ``data`` says which and how;
#: a broadcast's audience perceives it as narration.
INTERVENTION = "intervention"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in an episode.

    ``audience`` lists the agent ids that could perceive the event, fixed when it is
    recorded (from the interaction graph), so projection never needs the graph again.
    Call metadata (tokens, latency, model) is empty for events no model produced.
    """

    episode_id: str
    step: int
    seq: int
    speaker: str
    audience: tuple[str, ...]
    kind: str
    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = ""
    backend: str = ""
    model: str = ""
    request_seed: int = -1
    attempts: int = 0
    cost_usd: float = 0.0
    data: str = ""  # JSON text of a structured action or scenario payload, "" if none
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def usage(self) -> Usage:
        """The call metadata's counters as one value."""
        return Usage(self.prompt_tokens, self.completion_tokens, self.latency_s,
                     self.cost_usd, self.attempts)

    def visible_to(self, agent_id: str) -> bool:
        """Whether ``agent_id`` perceived this event (speakers perceive their own)."""
        return agent_id == self.speaker or agent_id in self.audience

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("meta")
        row["audience"] = list(self.audience)
        return row


#: Column order of the ``events`` table; wall-clock columns are listed separately so that
#: determinism checks can drop them.
EVENT_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(Event) if f.name != "meta")
WALL_CLOCK_COLUMNS: tuple[str, ...] = ("latency_s",)


class EventLog(Sequence[Event]):
    """Append-only list of one episode's events.

    Append-only is what lets projections be incremental: a projector remembers how far
    it has read and only looks at the new tail.
    """

    def __init__(self, episode_id: str) -> None:
        self.episode_id = episode_id
        self._events: list[Event] = []
        # agent id -> seqs of the events it perceived (spoke or was in the audience), so a
        # projection reads only its own tail: O(visible) per turn, not O(all events).
        self._inbox: dict[str, list[int]] = {}

    def append(
        self,
        *,
        step: int,
        speaker: str,
        audience: Sequence[str],
        kind: str,
        content: str,
        **call: Any,
    ) -> Event:
        event = Event(
            episode_id=self.episode_id,
            step=step,
            seq=len(self._events),
            speaker=speaker,
            audience=tuple(audience),
            kind=kind,
            content=content,
            **call,
        )
        self._events.append(event)
        for agent in {speaker, *event.audience}:
            self._inbox.setdefault(agent, []).append(event.seq)
        return event

    def restore(self, events: Sequence[Event]) -> None:
        """Refill an empty log with events read back from a checkpoint, in seq order."""
        if self._events:
            raise ValueError("restore() needs an empty log")
        for seq, event in enumerate(events):
            if event.seq != seq or event.episode_id != self.episode_id:
                raise ValueError(f"event {seq} of {self.episode_id} is out of place: "
                                 f"{event.episode_id} seq {event.seq}")
            self._events.append(event)
            for agent in {event.speaker, *event.audience}:
                self._inbox.setdefault(agent, []).append(seq)

    def __getitem__(self, index):  # type: ignore[override]
        return self._events[index]

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self._events)

    def since(self, seq: int) -> list[Event]:
        """Events with ``seq >= seq``: the tail a projector has not seen yet."""
        return self._events[seq:]

    def perceived(self, agent_id: str, start: int = 0) -> tuple[list[Event], int]:
        """Events ``agent_id`` perceived, from position ``start`` of its index on; also
        returns the position to resume from next time."""
        seqs = self._inbox.get(agent_id, ())
        return [self._events[i] for i in seqs[start:]], len(seqs)

    def rows(self) -> list[dict[str, Any]]:
        return [e.to_row() for e in self._events]
