"""What retrieval memory asks the agent's model: importance scores and reflections.

Both after Generative Agents (Park et al., 2023), batched and structured:

- **importance**: the agent rates, 1 to 10, how much each of a batch of events it
  perceived matters to it (``memory.importance=model``). Each event is rated once, when
  its agent's view first outgrows the budget (before that nothing is recalled), then as
  it is perceived.
- **reflection**: every ``memory.reflect_every`` ticks, once its view outgrows the
  budget (before that it sees every event itself), the agent draws at most three
  high-level conclusions from what it perceived since its last reflection. They are
  recalled like events (with the highest rule importance).

Replies are JSON under a schema. One that misses it is repaired where its intent is
plain (the integers in order; one conclusion per line), and whatever stays unscored
takes the rule's importance, so a bad reply never stalls or kills the run.
"""

from __future__ import annotations

import json
import re
from typing import Any

from simlab.backends.base import ChatResponse

IMPORTANCE_PROMPT = (
    "On a scale of 1 to 10, where 1 is purely mundane (small talk, a routine) and 10 is "
    "extremely poignant (a betrayal, a promise, a large loss or gain), rate how much "
    "each of these events matters to you. Reply as JSON with one integer per event, in "
    "order.\n\n{events}"
)

REFLECTION_PROMPT = (
    "Here is what you remember of recent events.\n\n{events}\n\nWhat are at most three "
    "high-level conclusions you draw from them, about the others, the situation or "
    "yourself? Write each in the first person, in one sentence. Reply as JSON."
)

#: Longest text of one event in an importance or reflection prompt (characters).
EVENT_CHARS = 400
_SCORE = re.compile(r"(?<![\d.])(10|[1-9])(?![\d.])")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*")


def importance_schema(n: int) -> dict[str, Any]:
    """Exactly ``n`` integers from 1 to 10."""
    return {"type": "object", "additionalProperties": False, "required": ["scores"],
            "properties": {"scores": {"type": "array", "minItems": n, "maxItems": n,
                                      "items": {"type": "integer", "minimum": 1,
                                                "maximum": 10}}}}


REFLECTION_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["insights"],
    "properties": {"insights": {"type": "array", "minItems": 1, "maxItems": 3,
                                "items": {"type": "string", "minLength": 1,
                                          "maxLength": 160}}},
}


def numbered(lines: list[str]) -> str:
    return "\n".join(f"{i}. {line[:EVENT_CHARS]}" for i, line in enumerate(lines, 1))


def parse_scores(response: ChatResponse, n: int) -> tuple[list[int | None], bool]:
    """``n`` scores (None where the reply gave none) and whether it was repaired."""
    values: Any = None
    if response.ok and isinstance(response.parsed, dict):
        values = response.parsed.get("scores")
    repaired = False
    if not isinstance(values, list) or len(values) != n:
        repaired = True
        values = [int(m) for m in _SCORE.findall(response.text or "")]
    scores: list[int | None] = []
    for v in values[:n]:
        scores.append(min(10, max(1, v)) if isinstance(v, int) and not isinstance(v, bool)
                      else None)
    return scores + [None] * (n - len(scores)), repaired


def parse_insights(response: ChatResponse) -> list[str]:
    """At most three one-line conclusions: from the JSON, or a prose reply's lines;
    none from a failed call or from JSON cut off at the reply's length."""
    text = response.text.strip()
    if not text:
        return []
    values: Any = response.parsed.get("insights") if (
        response.ok and isinstance(response.parsed, dict)) else None
    if not isinstance(values, list):
        try:
            values = json.loads(text).get("insights")
        except (ValueError, AttributeError):
            values = None
    if not isinstance(values, list):
        if text[0] in "{[":  # JSON cut off or malformed: nothing to trust in it
            return []
        values = [_BULLET.sub("", line) for line in text.splitlines()]  # prose: per line
    out = [" ".join(str(v).split())[:160] for v in values if str(v).strip()]
    return out[:3]
