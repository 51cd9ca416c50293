"""Termination detection for dialogues: has the conversation come to a natural close?

Two detectors share one sliding window over the last utterances: a rule detector that
looks for leave-taking phrases, and a judge that asks the backend. The rule detector is
the default because it is free, deterministic and explainable.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from simlab.backends.base import Backend, ChatRequest, Message
from simlab.backends.structured import read_structured

CLOSING_CUES = re.compile(
    r"\b(good\s?bye|bye|farewell|see you|see ya|take care|talk (?:to you )?(?:soon|later)"
    r"|have a (?:good|great|nice|lovely) (?:day|one|evening|night|weekend)"
    r"|catch you later|until next time|good night)\b",
    re.IGNORECASE,
)

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"ended": {"type": "boolean"}},
    "required": ["ended"],
}
JUDGE_PROMPT_VERSION = "closing-judge-v1"
_JUDGE_SYSTEM = (
    "You read the end of a conversation and decide whether it has come to a natural "
    'close (everyone has said goodbye or the matter is settled). Answer as JSON: {"ended": '
    "true} or {\"ended\": false}."
)


def has_closing_cue(text: str) -> bool:
    return CLOSING_CUES.search(text) is not None


def rule_closed(window: Sequence[str], size: int) -> bool:
    """True when each of the last ``size`` utterances takes leave."""
    tail = list(window)[-size:]
    return len(tail) >= size and all(has_closing_cue(t) for t in tail)


def judge_request(lines: Sequence[str], seed: int) -> ChatRequest:
    transcript = "\n".join(lines)
    return ChatRequest(
        messages=(Message("system", _JUDGE_SYSTEM), Message("user", transcript)),
        max_tokens=16,
        temperature=0.0,
        seed=seed,
        json_schema=JUDGE_SCHEMA,
        tag="closing-judge",
    )


def judge_closed(backend: Backend, lines: Sequence[str], seed: int) -> tuple[bool | None, str]:
    """Ask the backend; returns (verdict or None if unusable, raw reply or error)."""
    (resp,) = backend.generate([judge_request(lines, seed)])
    if not resp.ok:
        return None, resp.error
    parsed = read_structured(resp)
    if parsed is None:
        return None, resp.text
    ended = parsed.get("ended") if isinstance(parsed, dict) else None
    return (ended if isinstance(ended, bool) else None), resp.text
