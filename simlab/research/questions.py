"""Questionnaires: the one way simlab asks agents questions with answers it can count.

A question has an ``id`` (its JSON key and its row in answer tables), a ``text``, and a
``type``:

- ``likert``: an integer from 1 to ``scale`` (2–11), with ``labels`` for its ends;
- ``choice``: one of ``options``;
- ``number``: a number from ``min`` to ``max``;
- ``text``: free text, up to ``max_chars``.

Structured types are asked under a JSON schema and validated on the way back, so an
invalid reply is re-asked like any structured action. The opinion scenario's survey
waves and ``simlab interview`` both use this module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TYPES = ("likert", "choice", "number", "text")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_FIELDS = {"likert": {"scale", "labels"}, "choice": {"options"}, "number": {"min", "max"},
           "text": {"max_chars"}}


@dataclass(frozen=True)
class Question:
    """One checked question."""

    id: str
    text: str
    type: str = "likert"
    scale: int = 5
    labels: tuple[str, str] = ("strongly disagree", "strongly agree")
    options: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_chars: int = 400

    @property
    def structured(self) -> bool:
        return self.type != "text"

    def value_schema(self) -> dict[str, Any]:
        """The JSON schema of one answer."""
        if self.type == "likert":
            return {"type": "integer", "enum": list(range(1, self.scale + 1))}
        if self.type == "choice":
            return {"type": "string", "enum": list(self.options)}
        if self.type == "number":
            out: dict[str, Any] = {"type": "number"}
            if self.min is not None:
                out["minimum"] = self.min
            if self.max is not None:
                out["maximum"] = self.max
            return out
        return {"type": "string", "minLength": 1, "maxLength": self.max_chars}

    def how(self) -> str:
        """How to answer, in words, for the prompt."""
        if self.type == "likert":
            return f"1 to {self.scale}: 1 = {self.labels[0]}, {self.scale} = {self.labels[1]}"
        if self.type == "choice":
            return "one of " + ", ".join(f'"{o}"' for o in self.options)
        if self.type == "number":
            lo = "" if self.min is None else f" from {self.min:g}"
            hi = "" if self.max is None else f" to {self.max:g}"
            return f"a number{lo}{hi}"
        return "in your own words"

    def example(self) -> Any:
        if self.type == "likert":
            return (self.scale + 1) // 2
        if self.type == "choice":
            return self.options[0]
        if self.type == "number":
            return self.min if self.min is not None else 0
        return "..."

    def read(self, value: Any) -> Any:
        """The validated answer, or raise ``ValueError`` saying what is wrong."""
        if self.type == "likert":
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    value != int(value) or not 1 <= value <= self.scale:
                raise ValueError(f"{self.id}: expected an integer from 1 to {self.scale}, "
                                 f"got {value!r}")
            return int(value)
        if self.type == "choice":
            if value not in self.options:
                raise ValueError(f"{self.id}: expected one of {list(self.options)}, "
                                 f"got {value!r}")
            return value
        if self.type == "number":
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    (self.min is not None and value < self.min) or \
                    (self.max is not None and value > self.max):
                raise ValueError(f"{self.id}: expected {self.how()}, got {value!r}")
            return float(value)
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{self.id}: expected non-empty text, got {value!r}")
        return " ".join(value.split())[: self.max_chars]


def parse_questions(raw: Sequence[Any], where: str, *, default_type: str = "likert",
                    types: Sequence[str] = TYPES,
                    replace: Mapping[str, str] | None = None) -> list[Question]:
    """Check a configured questionnaire; errors name ``<where>[i].<field>``.
    ``replace`` fills placeholders in the texts (``{topic}``)."""
    out: list[Question] = []
    for i, q in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(q, Mapping):
            raise ValueError(f"{at}: expected a mapping with id and text, got {q!r}")
        kind = q.get("type", default_type)
        if kind not in types:
            raise ValueError(f"{at}.type: expected one of {', '.join(types)}, got {kind!r}")
        extra = sorted(set(q) - {"id", "text", "type"} - _FIELDS[kind])
        if extra:
            raise ValueError(f"{at}.{extra[0]}: not a field of a {kind} question")
        qid, text = q.get("id"), q.get("text")
        if not isinstance(qid, str) or not _ID.match(qid):
            raise ValueError(f"{at}.id: expected a lower-case identifier, got {qid!r}")
        if any(o.id == qid for o in out):
            raise ValueError(f"{at}.id: duplicate question id {qid!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{at}.text: must be non-empty text")
        for key, value in (replace or {}).items():
            text = text.replace("{" + key + "}", value)
        out.append(Question(qid, text.strip(), kind, **_typed(kind, q, at)))
    return out


def _typed(kind: str, q: Mapping[str, Any], at: str) -> dict[str, Any]:
    if kind == "likert":
        scale = q.get("scale", 5)
        if isinstance(scale, bool) or not isinstance(scale, int) or not 2 <= scale <= 11:
            raise ValueError(f"{at}.scale: expected an integer from 2 to 11, got {scale!r}")
        labels = q.get("labels", ("strongly disagree", "strongly agree"))
        if not isinstance(labels, Sequence) or isinstance(labels, str) or len(labels) != 2 \
                or not all(isinstance(x, str) and x.strip() for x in labels):
            raise ValueError(f"{at}.labels: expected two texts (the scale's ends), "
                             f"got {labels!r}")
        return {"scale": scale, "labels": (labels[0], labels[1])}
    if kind == "choice":
        options = q.get("options")
        if not isinstance(options, Sequence) or isinstance(options, str) or \
                len(options) < 2 or not all(isinstance(o, str) and o for o in options) or \
                len(set(options)) != len(options):
            raise ValueError(f"{at}.options: expected at least two distinct texts, "
                             f"got {options!r}")
        return {"options": tuple(options)}
    if kind == "number":
        lo, hi = q.get("min"), q.get("max")
        for name, v in (("min", lo), ("max", hi)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ValueError(f"{at}.{name}: expected a number, got {v!r}")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{at}.min: {lo} is above max {hi}")
        return {"min": lo, "max": hi}
    chars = q.get("max_chars", 400)
    if isinstance(chars, bool) or not isinstance(chars, int) or chars < 1:
        raise ValueError(f"{at}.max_chars: expected a positive integer, got {chars!r}")
    return {"max_chars": chars}


def questionnaire_schema(questions: Sequence[Question]) -> dict[str, Any]:
    """One JSON object answering every question, each under its id."""
    return {"type": "object",
            "properties": {q.id: q.value_schema() for q in questions},
            "required": [q.id for q in questions], "additionalProperties": False}


def questionnaire_text(title: str, questions: Sequence[Question]) -> str:
    """The prompt asking ``questions`` at once, as one JSON object."""
    import json

    lines = "\n".join(f"- {q.id} ({q.how()}): {q.text}" for q in questions)
    example = json.dumps({q.id: q.example() for q in questions}, ensure_ascii=False)
    return (f"{title} Please answer every question:\n{lines}\n"
            f"Reply with JSON only, like {example}.")


def read_answers(data: Any, questions: Sequence[Question]) -> dict[str, Any] | str:
    """Validated answers by question id, or what is wrong with them."""
    if not isinstance(data, Mapping):
        return f"expected a JSON object of answers, got {type(data).__name__}"
    try:
        return {q.id: q.read(data.get(q.id)) for q in questions}
    except ValueError as exc:
        return str(exc)
