"""The one way to read a reply's structured value: ``parsed``, else JSON in its text.

Backends that support structured output fill :attr:`ChatResponse.parsed` (and set
``error`` when a reply fails its schema); the text fallback covers replies that came
without it (a backend or server with no schema support, a wrapper that kept only text).
Callers used to write this fallback each their own way; these two functions are those
ways, so behaviour is unchanged where a call site switches to them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from simlab.backends.base import ChatResponse

#: From the first ``{`` to the last ``}``: the object a chatty reply wraps in prose.
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


class StructuredOutputError(ValueError):
    """A reply carries no structured value; the message says why (the JSON error)."""


def decode_structured(response: ChatResponse, *, search: bool = False) -> Any:
    """The reply's structured value, or :class:`StructuredOutputError` saying why not.

    ``response.parsed`` when the backend set it; else the reply text read as JSON: the
    whole text, strictly (``json.loads``). ``search=True`` is for text that may wrap the
    object in prose: the span from the first ``{`` to the last ``}`` is read, and raw
    line breaks or tabs inside its strings are accepted, as
    :func:`~simlab.backends.schema.parse_reply` accepts them.
    """
    if not response.ok:
        raise StructuredOutputError(f"the request failed: {response.error}")
    if response.parsed is not None:
        return response.parsed
    text = response.text or ""
    if search:
        match = _OBJECT.search(text)
        if not match:
            raise StructuredOutputError("no JSON object in the reply")
        text = match.group(0)
    try:
        return json.loads(text, strict=not search)
    except json.JSONDecodeError as exc:
        raise StructuredOutputError(str(exc)) from None


def read_structured(response: ChatResponse, *, search: bool = False) -> Any:
    """Like :func:`decode_structured`, but ``None`` where it would raise (a failed
    request, or text that is no JSON). The value may be any JSON value; callers that
    need an object check for a ``dict``."""
    try:
        return decode_structured(response, search=search)
    except StructuredOutputError:
        return None
