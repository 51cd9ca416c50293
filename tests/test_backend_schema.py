"""Structured replies are checked with jsonschema: every keyword is enforced.

The hand-written validator this replaced accepted any reply under ``anyOf``, ``oneOf``,
``pattern`` or ``$ref``; these cases each failed it. Its wording and order are kept for
the keywords it did check (``tests/test_backend_mock.py`` pins those).
"""

from __future__ import annotations

import pytest

from simlab.backends.schema import parse_reply, validate

ACTION = {
    "type": "object",
    "properties": {
        "amount": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
        "kind": {"oneOf": [{"const": "bid"}, {"const": "out"}, {"enum": ["bid", "x"]}]},
        "id": {"type": "string", "pattern": "^lot-[0-9]+$"},
        "who": {"$ref": "#/$defs/name"},
        "allies": {"type": "array", "items": {"$ref": "#/$defs/name"}},
    },
    "$defs": {"name": {"type": "string", "minLength": 2}},
}


@pytest.mark.parametrize(("reply", "error"), [
    ({"amount": -1}, "$.amount: -1 is not valid under any of the given schemas"),
    ({"amount": "5"}, "$.amount: '5' is not valid under any of the given schemas"),
    ({"kind": "bid"}, "$.kind: 'bid' is valid under each of"),
    ({"kind": "fold"}, "$.kind: 'fold' is not valid under any of the given schemas"),
    ({"id": "lot-7a"}, "$.id: 'lot-7a' does not match '^lot-[0-9]+$'"),
    ({"who": "A"}, "$.who: shorter than minLength 2"),
    ({"allies": ["Bo", 3]}, "$.allies[1]: expected string, got int"),
])
def test_combinators_patterns_and_refs_are_enforced(reply: dict, error: str) -> None:
    problems = validate(reply, ACTION)
    assert len(problems) == 1 and problems[0].startswith(error), problems


def test_replies_that_satisfy_them_pass() -> None:
    good = {"amount": None, "kind": "out", "id": "lot-12", "who": "Ann", "allies": ["Bo"]}
    assert validate(good, ACTION) == []
    assert validate({**good, "amount": 3, "kind": "x"}, ACTION) == []


def test_parse_reply_reports_the_path_and_value() -> None:
    parsed, error = parse_reply('{"id": "LOT-1", "who": "Zed"}', ACTION)
    assert parsed is None
    assert error == "schema: $.id: 'LOT-1' does not match '^lot-[0-9]+$'"


def test_other_keywords_are_enforced_too() -> None:
    schema = {"type": "object", "properties": {
        "n": {"type": "number", "exclusiveMaximum": 1, "multipleOf": 0.25},
        "tags": {"type": "array", "uniqueItems": True, "contains": {"const": "a"}},
        "no": {"not": {"type": "string"}}},
        "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False,
        "dependentRequired": {"n": ["tags"]}}
    assert validate({"n": 0.5, "tags": ["a", "b"], "no": 1, "x-1": 2}, schema) == []
    problems = validate({"n": 1, "tags": ["b", "b"], "no": "s", "x-1": "2", "y": 0}, schema)
    assert problems == [
        "$.n: 1 is greater than or equal to the maximum of 1",
        "$.tags: ['b', 'b'] has non-unique elements",
        "$.tags: ['b', 'b'] does not contain items matching the given schema",
        "$.no: 's' should not be valid under {'type': 'string'}",
        "$.x-1: expected integer, got str",
        "$: unexpected property 'y'",
    ]
    assert validate({"n": 0.5}, schema) == ["$: 'tags' is a dependency of 'n'"]


def test_format_is_an_annotation_as_the_standard_says() -> None:
    assert validate("not an email", {"type": "string", "format": "email"}) == []


@pytest.mark.parametrize(("schema", "message"), [
    ({"type": "text"}, "invalid JSON schema: 'text' is not valid under any of the given "
                       "schemas at schema.type"),
    ({"required": "name"}, "invalid JSON schema: 'name' is not of type 'array' at "
                           "schema.required"),
    ({"$ref": "#/$defs/missing"}, "cannot resolve $ref"),
    ({"$ref": "https://example.com/schema.json"}, "cannot resolve $ref "
                                                  "'https://example.com/schema.json'"),
])
def test_a_broken_schema_is_an_error_not_a_pass(schema: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("$", r"\$").replace("(", r"\(")):
        validate({}, schema)


def test_a_schema_edited_after_use_is_checked_as_edited() -> None:
    schema = {"type": "object", "required": ["a"]}
    assert validate({}, schema) == ["$: missing required property 'a'"]
    schema["required"] = ["b"]
    assert validate({}, schema) == ["$: missing required property 'b'"]


def test_the_draft_named_by_dollar_schema_is_used() -> None:
    draft4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "integer"}
    assert validate(2.0, draft4) == ["$: expected integer, got float"]  # draft 4: no 2.0
    assert validate(2.0, {"type": "integer"}) == []  # 2020-12: 2.0 is an integer


def test_a_lone_surrogate_escape_becomes_the_replacement_character() -> None:
    """``"\\uddda"`` is valid JSON but no character: stored as is, it crashed a run when
    the events were written. Pairs stay the character they encode."""
    import json

    text = '{"post": "a \\uddda b \\ud83d\\ude00", "\\udc00k": ["\\ud800"]}'
    parsed, error = parse_reply(text, {"type": "object"})
    assert error == ""
    assert parsed == {"post": "a \ufffd b \U0001f600", "\ufffdk": ["\ufffd"]}
    json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # storable


def test_a_reply_text_never_keeps_a_lone_surrogate() -> None:
    from simlab.backends.base import ChatResponse

    assert ChatResponse(text="ok \udc80!").text == "ok \ufffd!"
    assert ChatResponse(text="\U0001f600").text == "\U0001f600"
