"""Token counts for backends that render prompts with a bound :class:`ChatTemplate`.

llama.cpp, transformers and vLLM all send the ids their template encodes, so counting
with the same encoder is exact: the budget the engine checks is the prompt the model
gets, template tokens included.
"""

from __future__ import annotations

from collections.abc import Sequence

from simlab.backends.base import Message
from simlab.backends.templating import ChatTemplate


class TemplateCounting:
    """``count_text`` / ``count_tokens`` for a backend that has a ``template`` (the
    backend class defines it; mixed in before :class:`~simlab.backends.base.Backend`)."""

    template: ChatTemplate

    def count_text(self, text: str) -> int:
        return len(self.template.tokenize(text.encode("utf-8"), False))

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.template.encode([m.as_dict() for m in messages]).ids)
