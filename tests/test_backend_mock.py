"""The mock backend is what every other unit test stands on, so pin its behaviour exactly."""

from __future__ import annotations

import json
import random

import pytest
from conftest import AUCTION_SCHEMA

from simlab.backends import ChatRequest, Message
from simlab.backends.mock import GOODBYE, MockBackend
from simlab.backends.schema import example_instance, parse_reply, validate


def req(text: str = "Hi there", *, seed: int | None = 7, tag: str = "", **kw) -> ChatRequest:
    msgs = (Message("system", "You are Ann."), Message("user", text))
    return ChatRequest(messages=msgs, seed=seed, tag=tag, **kw)


def test_generated_text_is_exact_and_deterministic() -> None:
    first = MockBackend().generate([req(), req()])
    again = MockBackend().generate([req()])
    expected = (
        "Could good we tired plan a know yesterday the yesterday sure could sounds we "
        "think why work."
    )
    assert [r.text for r in first + again] == [expected] * 3
    r = first[0]
    assert (r.prompt_tokens, r.completion_tokens, r.latency_s) == (5, 17, 0.0)
    assert (r.finish_reason, r.model, r.error, r.parsed) == ("stop", "mock/mock-1", "", None)


def test_text_varies_with_messages_and_seed_and_stays_in_length() -> None:
    mock = MockBackend()
    texts = {r.text for r in mock.generate([req(f"turn {i}", seed=i) for i in range(20)])}
    assert len(texts) == 20
    assert all(8 <= len(t.split()) <= 20 for t in texts)
    assert mock.generate([req(seed=1)])[0].text != mock.generate([req(seed=2)])[0].text


def test_queued_replies_come_first_then_generated() -> None:
    mock = MockBackend(replies=["one", "two words"])
    out = mock.generate([req(), req(), req()])
    assert [r.text for r in out[:2]] == ["one", "two words"]
    assert [r.completion_tokens for r in out[:2]] == [1, 2]
    assert out[2].text == MockBackend().generate([req()])[0].text
    assert len(mock.calls) == 3 and mock.calls[0] == req()


def test_close_after_counts_per_tag() -> None:
    mock = MockBackend(close_after=2)
    out = mock.generate([req("a", tag="ann"), req("b", tag="bob"), req("c", tag="ann")])
    assert [r.text.endswith(GOODBYE) for r in out] == [False, False, True]
    assert mock.generate([req("d", tag="bob")])[0].text.endswith(GOODBYE)


def test_fail_every_returns_errors_without_consuming_replies() -> None:
    mock = MockBackend(replies=["r1", "r2", "r3"], fail_every=2)
    out = mock.generate([req() for _ in range(5)])
    fails = ["", "mock failure on call 2", "", "mock failure on call 4", ""]
    assert [r.error for r in out] == fails
    assert [r.text for r in out] == ["r1", "", "r2", "", "r3"]
    assert out[1].finish_reason == "error" and not out[1].ok
    with pytest.raises(ValueError):
        MockBackend(fail_every=0)


def test_max_tokens_and_stop_are_honoured() -> None:
    short = MockBackend().generate([req(max_tokens=3)])[0]
    assert (short.text, short.finish_reason) == ("Work price sounds", "length")
    stopped = MockBackend().generate([req(stop=(" the",))])[0]
    assert (stopped.text, stopped.finish_reason) == ("To to good little but", "stop")


def test_json_schema_request_returns_valid_parsed_instance() -> None:
    out = MockBackend().generate([req(json_schema=AUCTION_SCHEMA)])[0]
    assert out.text == '{"action": "out", "amount": 31}'
    assert out.parsed == {"action": "out", "amount": 31} and out.ok


def test_queued_reply_is_validated_against_schema() -> None:
    bad_json, bad_schema = MockBackend(replies=["nope", '{"action": "fold"}']).generate(
        [req(json_schema=AUCTION_SCHEMA), req(json_schema=AUCTION_SCHEMA)]
    )
    assert bad_json.error.startswith("invalid JSON: ") and bad_json.text == "nope"
    assert bad_schema.error == "schema: $.action: 'fold' is not one of ['bid', 'out']"
    assert bad_schema.parsed is None


RICH_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2, "maxLength": 4},
        "price": {"type": "number", "minimum": 1.5, "maximum": 2.5},
        "qty": {"type": "integer", "minimum": -3, "maximum": 3},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"enum": ["x", "y"]}, "minItems": 2, "maxItems": 4},
        "inner": {"properties": {"n": {"type": ["null", "integer"], "maximum": 0}}},
    },
    "required": ["name", "price", "qty", "ok", "tags", "inner"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", range(50))
def test_example_instances_are_valid(seed: int) -> None:
    for schema in (AUCTION_SCHEMA, RICH_SCHEMA):
        instance = example_instance(schema, random.Random(seed))
        assert validate(instance, schema) == []
        assert parse_reply(json.dumps(instance), schema) == (instance, "")


def test_a_raw_line_break_inside_a_json_string_is_read_not_failed() -> None:
    schema = {"type": "object", "properties": {"post": {"type": "string"},
                                               "stance": {"type": "integer"}}}
    reply = '{ "post": "Good idea.\n[Narrator] Day 2\t", "stance" :3}'
    assert parse_reply(reply, schema) == ({"post": "Good idea.\n[Narrator] Day 2\t",
                                           "stance": 3}, "")
    parsed, error = parse_reply('{"post": "cut off', schema)
    assert parsed is None and error.startswith("invalid JSON: Unterminated string")


def test_validator_reports_each_violation() -> None:
    bad = {"name": "a", "price": 3, "qty": True, "ok": 1, "tags": ["z"], "inner": {}, "x": 0}
    assert validate(bad, RICH_SCHEMA) == [
        "$.name: shorter than minLength 2",
        "$.price: 3 > maximum 2.5",
        "$.qty: expected integer, got bool",
        "$.ok: expected boolean, got int",
        "$.tags: fewer than minItems 2",
        "$.tags[0]: 'z' is not one of ['x', 'y']",
        "$: unexpected property 'x'",
    ]
    assert validate({}, AUCTION_SCHEMA) == ["$: missing required property 'action'"]
    assert validate(2.0, {"type": "integer"}) == []
    assert validate("s", {"type": ["integer", "null"]}) == ["$: expected integer or null, got str"]
