"""Injection-proof chat templating: message contents are data, never special tokens.

Rendering a chat template to one string and tokenizing it with special-token parsing on
(what llama-cpp-python's chat handlers do) lets a persona or message containing
``<|im_end|>\\n<|im_start|>system`` forge a new message. Instead we render the model's own
template with every content replaced by a unique sentinel, split the result on the
sentinels, and tokenize template pieces with ``special=True`` but content pieces with
``special=False``. For benign text the token ids are identical to the one-string path.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: ``tokenize(text_bytes, special) -> ids`` without BOS; bound to a model by the caller.
Tokenize = Callable[[bytes, bool], list[int]]


class TemplateError(ValueError):
    """The chat template cannot be rendered with message content kept separable."""


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of prompt text; ``is_content`` marks message text that is data."""

    text: str
    is_content: bool


@dataclass(frozen=True, slots=True)
class EncodedPrompt:
    """Token ids plus the ``[start, end)`` id ranges that came from message contents."""

    ids: list[int]
    content_spans: list[tuple[int, int]]


def _raise(message: str) -> None:
    raise TemplateError(message)


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    # Same environment as llama-cpp-python / transformers, so renders match theirs.
    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    return env.from_string(template)


def render(
    template: str,
    messages: Sequence[Mapping[str, str]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
) -> str:
    """Render a HF-style chat template to one string (no token handling)."""
    return _compile(template).render(
        messages=[dict(m) for m in messages],
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
        raise_exception=_raise,
        strftime_now=lambda f: datetime.now().strftime(f),
    )


def render_pieces(
    template: str,
    messages: Sequence[Mapping[str, str]],
    *,
    bos_token: str,
    eos_token: str,
    add_generation_prompt: bool = True,
) -> list[Piece]:
    """Render ``template`` and split it into template text and message-content pieces.

    Raises :class:`TemplateError` if the template drops, repeats or rewrites content in a
    way that keeps it from being isolated (stripping surrounding whitespace is allowed).
    """
    nonce = secrets.token_hex(8)
    while any(nonce in m["content"] for m in messages):  # pragma: no cover - 2**-64
        nonce = secrets.token_hex(8)
    marks = [f"@@{nonce}:{i}@@" for i in range(len(messages))]
    masked = [{**m, "content": mark} for m, mark in zip(messages, marks, strict=True)]
    kw: dict[str, Any] = {
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    rendered = render(template, masked, **kw)
    parts = re.split(f"@@{nonce}:(\\d+)@@", rendered)
    seen = [int(i) for i in parts[1::2]]
    if sorted(seen) != list(range(len(messages))):
        raise TemplateError(
            f"chat template does not place each message content exactly once "
            f"(placed message indexes {seen} of {len(messages)})"
        )
    expected = render(template, messages, **kw)
    for strip in (False, True):
        pieces: list[Piece] = []
        for k, part in enumerate(parts):
            if k % 2 == 0:
                pieces.append(Piece(part, False))
            else:
                content = messages[int(part)]["content"]
                pieces.append(Piece(content.strip() if strip else content, True))
        if "".join(p.text for p in pieces) == expected:
            return [p for p in pieces if p.text or p.is_content]
    raise TemplateError("chat template rewrites message content; cannot keep it as data")


def tokenize_pieces(pieces: Sequence[Piece], tokenize: Tokenize) -> EncodedPrompt:
    """Tokenize template text with special tokens on and content with them off."""
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for piece in pieces:
        start = len(ids)
        if piece.text:
            ids.extend(tokenize(piece.text.encode("utf-8"), not piece.is_content))
        if piece.is_content:
            spans.append((start, len(ids)))
    return EncodedPrompt(ids, spans)


@dataclass(frozen=True, slots=True)
class ChatTemplate:
    """A model's chat template bound to its tokenizer and BOS policy."""

    template: str
    bos_token: str
    eos_token: str
    tokenize: Tokenize
    bos_id: int | None = None
    add_bos: bool = False

    def encode(self, messages: Sequence[Mapping[str, str]]) -> EncodedPrompt:
        """Token ids for ``messages`` followed by the assistant generation prompt."""
        pieces = render_pieces(
            self.template, messages, bos_token=self.bos_token, eos_token=self.eos_token
        )
        enc = tokenize_pieces(pieces, self.tokenize)
        if self.add_bos and self.bos_id is not None and enc.ids[:1] != [self.bos_id]:
            # The model wants BOS and the template did not emit it: add it once.
            spans = [(a + 1, b + 1) for a, b in enc.content_spans]
            return EncodedPrompt([self.bos_id, *enc.ids], spans)
        return enc
