"""Survey waves of the opinion scenario: the questionnaire, its schema, the answers.

Every ``survey_every`` periods each agent answers a fixed questionnaire in one batch.
Questions are config (``scenario.questions``): an ``id`` (the JSON key and the column
value in the ``survey`` table), the ``text`` (``{topic}`` is replaced by the topic) and
a Likert ``scale`` (answers 1..scale). Answers are private: nobody else perceives them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_QUESTIONS: tuple[dict[str, Any], ...] = (
    {"id": "support", "text": "How much do you agree with this: {topic}?", "scale": 7},
    {"id": "trust", "text": "How much do you trust people who disagree with you about it?",
     "scale": 5},
    {"id": "importance", "text": "How important is this issue to you personally?", "scale": 5},
)
_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    scale: int


def likert_labels(scale: int) -> str:
    return f"1 = strongly disagree, {scale} = strongly agree"


def parse_questions(raw: Sequence[Mapping[str, Any]], topic: str) -> list[Question]:
    """Validate the configured questionnaire; errors name ``scenario.questions[i]``."""
    out: list[Question] = []
    for i, q in enumerate(raw):
        where = f"scenario.questions[{i}]"
        if not isinstance(q, Mapping):
            raise ValueError(f"{where}: expected a mapping with id, text, scale; got {q!r}")
        qid, text, scale = q.get("id"), q.get("text"), q.get("scale", 5)
        if not isinstance(qid, str) or not _ID.match(qid):
            raise ValueError(f"{where}.id: expected a lower-case identifier, got {qid!r}")
        if any(o.id == qid for o in out):
            raise ValueError(f"{where}.id: duplicate question id {qid!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}.text: must be non-empty text")
        if isinstance(scale, bool) or not isinstance(scale, int) or not 2 <= scale <= 11:
            raise ValueError(f"{where}.scale: expected an integer from 2 to 11, got {scale!r}")
        out.append(Question(qid, text.replace("{topic}", topic).strip(), scale))
    return out


def survey_schema(questions: Sequence[Question]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {q.id: {"type": "integer", "enum": list(range(1, q.scale + 1))}
                       for q in questions},
        "required": [q.id for q in questions],
        "additionalProperties": False,
    }


def questionnaire_text(wave: int, questions: Sequence[Question]) -> str:
    lines = "\n".join(f"- {q.id} (1 to {q.scale}): {q.text}" for q in questions)
    example = ", ".join(f'"{q.id}": {(q.scale + 1) // 2}' for q in questions)
    return (f"Survey wave {wave}. Please answer every question on its scale "
            f"(1 = not at all / strongly disagree, the top = very much / strongly agree):\n"
            f"{lines}\nReply with JSON only, like {{{example}}}.")


def read_answers(data: Any, questions: Sequence[Question]) -> dict[str, int] | str:
    """Validated answers by question id, or an error message."""
    if not isinstance(data, Mapping):
        return f"expected a JSON object of answers, got {type(data).__name__}"
    answers = {}
    for q in questions:
        v = data.get(q.id)
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v) \
                or not 1 <= v <= q.scale:
            return f"{q.id}: expected an integer from 1 to {q.scale}, got {v!r}"
        answers[q.id] = int(v)
    return answers


def rescale(value: int, scale: int, to: int) -> int:
    """``value`` on 1..scale mapped linearly onto 1..to, rounded half up."""
    if scale == 1:
        return 1
    return math.floor(1 + (value - 1) * (to - 1) / (scale - 1) + 0.5)


def rule_answers(stance: int, scale: int, questions: Sequence[Question]) -> dict[str, int]:
    """A rule agent answers every question with its stance mapped onto that scale."""
    return {q.id: rescale(stance, scale, q.scale) for q in questions}
