"""One sequence's sampler on llama.cpp's low-level API, with the grammar checked lazily.

The chain is llama-cpp-python's: repetition penalty over the last 64 tokens, then top-k,
top-p, min-p, temperature and a seeded draw (greedy at temperature 0). A JSON-schema
grammar applied to every one of the 49,152 candidates costs about 7 ms a token here, a
fifth of an opinion run. So, as llama.cpp's own ``common_sampler`` does, the token is
first drawn without the grammar and then checked against it alone; only a rejected token
is drawn again with the grammar applied to all candidates. Either way the token obeys the
grammar, and the result is a pure function of the logits and the seed.

Checked against llama-cpp-python 0.3.36, with :mod:`simlab.backends.llamacpp_batch`.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

SEED_MODULUS = 2**32 - 1  # llama.cpp reads seed 0xFFFFFFFF as "pick a random seed"
_PENALTY_LAST_N = 64  # as llama-cpp-python's last_n_tokens_size


class Sampler:
    """Draws one sequence's tokens from logits rows of a llama context."""

    def __init__(self, ll: Any, vocab: Any, n_vocab: int, *, temperature: float,
                 top_p: float, top_k: int, min_p: float, repeat_penalty: float, seed: int,
                 grammar: str | None) -> None:
        self._ll, self._n_vocab = ll, n_vocab
        self.redraws = 0  # tokens the grammar rejected, drawn again under it
        self.chain = chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        # 0.3.36's binding takes n_vocab first; llama.cpp's own header does not
        first = (n_vocab,) if len(ll.llama_sampler_init_penalties.argtypes) == 5 else ()
        add = ll.llama_sampler_chain_add
        add(chain, ll.llama_sampler_init_penalties(*first, _PENALTY_LAST_N, repeat_penalty,
                                                   0.0, 0.0))
        if temperature <= 0.0:
            add(chain, ll.llama_sampler_init_greedy())
        else:
            add(chain, ll.llama_sampler_init_top_k(top_k))
            add(chain, ll.llama_sampler_init_top_p(top_p, 1))
            add(chain, ll.llama_sampler_init_min_p(min_p, 1))
            add(chain, ll.llama_sampler_init_temp(temperature))
            add(chain, ll.llama_sampler_init_dist(seed % SEED_MODULUS))
        self.grammar = None
        if grammar is not None:
            self.grammar = ll.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
            if not self.grammar:
                self.free()
                raise ValueError("llama.cpp could not parse the grammar")
            self._data = (ll.llama_token_data * n_vocab)()
            self._rows = np.ctypeslib.as_array(self._data).view(
                np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)]))
            self._rows["id"] = np.arange(n_vocab, dtype=np.int32)
            self._one = (ll.llama_token_data * 1)()

    def sample(self, ctx: Any, row: int) -> int:
        """The next token from logits row ``row``, accepted into the sampler's state."""
        ll = self._ll
        if self.grammar is None:
            return ll.llama_sampler_sample(self.chain, ctx, row)
        logits = np.ctypeslib.as_array(ll.llama_get_logits_ith(ctx, row), shape=(self._n_vocab,))
        token = self._draw(logits, with_grammar=False)
        if not self._allowed(token):
            self.redraws += 1
            token = self._draw(logits, with_grammar=True)
        ll.llama_sampler_accept(self.grammar, token)
        ll.llama_sampler_accept(self.chain, token)
        return token

    def _draw(self, logits: np.ndarray, *, with_grammar: bool) -> int:
        rows = self._rows
        rows["logit"] = logits
        rows["p"] = 0.0
        cur = self._ll.llama_token_data_array(self._data, self._n_vocab, -1, False)
        if with_grammar:
            self._ll.llama_sampler_apply(self.grammar, ctypes.byref(cur))
        self._ll.llama_sampler_apply(self.chain, ctypes.byref(cur))
        return int(cur.data[cur.selected].id)

    def _allowed(self, token: int) -> bool:
        one = self._one
        one[0].id, one[0].logit, one[0].p = token, 1.0, 0.0
        cur = self._ll.llama_token_data_array(one, 1, -1, False)
        self._ll.llama_sampler_apply(self.grammar, ctypes.byref(cur))
        return not math.isinf(cur.data[0].logit)

    def free(self) -> None:
        for s in (self.chain, self.grammar):
            if s:
                self._ll.llama_sampler_free(s)
        self.chain = self.grammar = None
