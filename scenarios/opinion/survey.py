"""Survey waves of the opinion scenario: the questionnaire, its schema, the answers.

Every ``survey_every`` periods each agent answers a fixed questionnaire in one batch.
Questions are config (``scenario.questions``): an ``id`` (the JSON key and the column
value in the ``survey`` table), the ``text`` (``{topic}`` is replaced by the topic) and
a Likert ``scale`` (answers 1..scale). Answers are private: nobody else perceives them.
Parsing, the schema and validation are :mod:`simlab.research.questions`, the one
questionnaire machinery that ``simlab interview`` uses too; the wording is the survey's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from simlab.research import questions
from simlab.research.questions import Question

DEFAULT_QUESTIONS: tuple[dict[str, Any], ...] = (
    {"id": "support", "text": "How much do you agree with this: {topic}?", "scale": 7},
    {"id": "trust", "text": "How much do you trust people who disagree with you about it?",
     "scale": 5},
    {"id": "importance", "text": "How important is this issue to you personally?", "scale": 5},
)


def likert_labels(scale: int) -> str:
    return f"1 = strongly disagree, {scale} = strongly agree"


def parse_questions(raw: Sequence[Mapping[str, Any]], topic: str) -> list[Question]:
    """Validate the configured questionnaire (Likert items, through the shared
    questionnaire machinery); errors name ``scenario.questions[i]``."""
    return questions.parse_questions(raw, "scenario.questions", types=("likert",),
                                     replace={"topic": topic})


def survey_schema(items: Sequence[Question]) -> dict[str, Any]:
    return questions.questionnaire_schema(items)


def questionnaire_text(wave: int, items: Sequence[Question]) -> str:
    lines = "\n".join(f"- {q.id} (1 to {q.scale}): {q.text}" for q in items)
    example = ", ".join(f'"{q.id}": {(q.scale + 1) // 2}' for q in items)
    return (f"Survey wave {wave}. Please answer every question on its scale "
            f"(1 = not at all / strongly disagree, the top = very much / strongly agree):\n"
            f"{lines}\nReply with JSON only, like {{{example}}}.")


def read_answers(data: Any, items: Sequence[Question]) -> dict[str, int] | str:
    """Validated answers by question id, or an error message."""
    return questions.read_answers(data, items)


def rescale(value: int, scale: int, to: int) -> int:
    """``value`` on 1..scale mapped linearly onto 1..to, rounded half up."""
    if scale == 1:
        return 1
    return math.floor(1 + (value - 1) * (to - 1) / (scale - 1) + 0.5)


def rule_answers(stance: int, scale: int, items: Sequence[Question]) -> dict[str, int]:
    """A rule agent answers every question with its stance mapped onto that scale."""
    return {q.id: rescale(stance, scale, q.scale) for q in items}
