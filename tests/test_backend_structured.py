"""One way to read a reply's structured value (``simlab.backends.structured``).

Each case pins what a call site did before it used these functions: the analysis judge
and the closing judge read the whole text strictly; the economy and opinion scenarios
(``phases.structured``) search the text for an object and read it leniently.
"""

from __future__ import annotations

import pytest

from simlab.backends.base import ChatResponse
from simlab.backends.structured import (
    StructuredOutputError,
    decode_structured,
    read_structured,
)


def reply(text: str, parsed=None, error: str = "") -> ChatResponse:
    return ChatResponse(text=text, parsed=parsed, error=error)


@pytest.mark.parametrize(("response", "plain", "searched"), [
    (reply('{"a": 1}', parsed={"b": 2}), {"b": 2}, {"b": 2}),  # parsed wins over text
    (reply('{"a": 1}'), {"a": 1}, {"a": 1}),
    (reply('[1, 2]'), [1, 2], None),  # search looks for an object only
    (reply('Sure! {"a": 1} Hope that helps.'), None, {"a": 1}),
    (reply('{"a": "line\nbreak"}'), None, {"a": "line\nbreak"}),  # strict vs lenient
    (reply("no json here"), None, None),
    (reply(""), None, None),
    (reply("null"), None, None),
    (reply('{"a": 1}', error="schema: $: missing required property 'b'"), None, None),
    (ChatResponse.of_data({"hours": 8}, "rule:worker"), {"hours": 8}, {"hours": 8}),
])
def test_read_structured(response: ChatResponse, plain, searched) -> None:
    assert read_structured(response) == plain
    assert read_structured(response, search=True) == searched


def test_decode_structured_says_why_not() -> None:
    with pytest.raises(StructuredOutputError, match="Expecting value: line 1 column 1"):
        decode_structured(reply("nope"))
    with pytest.raises(StructuredOutputError, match="no JSON object in the reply"):
        decode_structured(reply("nope"), search=True)
    with pytest.raises(StructuredOutputError, match="the request failed: HTTP 500"):
        decode_structured(reply("", error="HTTP 500"))
    assert issubclass(StructuredOutputError, ValueError)
