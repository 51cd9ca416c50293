"""Text helpers shared by talking scenarios: persona cards and reply repair.

Small models often write the other side of the conversation, prefix their own name, or
leak template tokens. ``clean_reply`` repairs those deterministically, so a reply is kept
when it can be saved and re-asked only when nothing usable is left.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from simlab.personas.model import Persona

_GENERIC_SPEAKERS = ("user", "assistant", "system", "narrator", "human", "ai")
_TEMPLATE_TOKEN = re.compile(r"<\|[^|>]{1,40}\|>|</?s>|\[/?INST\]")
# Stage directions small models like to open with: "[Laughter]", "*smiles*", "(sighs)".
_STAGE = re.compile(r"^\s*(?:\[[^\]]{0,40}\]|\*[^*]{0,40}\*|\([^)]{0,40}\))\s*")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)")


def persona_card(p: Persona) -> str:
    """The persona as second-person instructions for a system message."""
    who = f"You are {p.name}, {p.age} years old"
    if p.occupation:
        who += f", {_article(p.occupation)} {p.occupation}"
    if p.location:
        who += f" from {p.location}"
    lines = [who + ".", p.description.strip()]
    if p.temperament:
        lines.append(f"Temperament: {p.temperament}.")
    if p.speaking_style:
        lines.append(f"How you talk: {p.speaking_style}.")
    return " ".join(lines)


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def _speaker_prefix(names: Iterable[str]) -> re.Pattern[str]:
    return _compiled_prefix(tuple(sorted(names)))


@functools.lru_cache(maxsize=1024)
def _compiled_prefix(names: tuple[str, ...]) -> re.Pattern[str]:
    """Compiled once per set of names: reply repair runs on every turn."""
    labels = set(_GENERIC_SPEAKERS)
    for name in names:
        labels.add(name.lower())
        labels.add(name.split()[0].lower())
    alts = "|".join(sorted((re.escape(x) for x in labels if x), key=len, reverse=True))
    return re.compile(rf"^\s*\**\s*(?:{alts})\s*\**\s*:\s*", re.IGNORECASE)


def clean_reply(
    text: str,
    own_name: str,
    other_names: Iterable[str],
    max_chars: int = 600,
    truncated: bool = False,
) -> str:
    """Repair a chat reply: keep only what the speaker itself says.

    - cut at leaked template tokens (``<|im_end|>`` …);
    - drop a leading ``Own Name:`` / ``Assistant:`` label and stage directions;
    - cut where the model starts writing another speaker's line (``Other:``);
    - trim surrounding quotes and whitespace, and cap the length at a sentence end;
    - if the reply was cut off by the token limit (``truncated``), drop the unfinished
      last sentence when a finished one precedes it.
    Returns "" when nothing usable is left.
    """
    m = _TEMPLATE_TOKEN.search(text)
    if m:
        text = text[: m.start()]
    own = _speaker_prefix([own_name])
    others = _speaker_prefix(list(other_names))
    text = text.strip()
    for _ in range(3):
        before = text
        text = _STAGE.sub("", own.sub("", text, count=1), count=1)
        if text == before:
            break
    kept: list[str] = []
    for line in text.splitlines():
        if others.match(line) or (kept and own.match(line)):
            break
        kept.append(line.strip())
    text = " ".join(x for x in kept if x).strip().strip('"').strip()
    if len(text) > max_chars:
        text, truncated = text[:max_chars], True
    if truncated:
        ends = list(_SENTENCE_END.finditer(text))
        if ends and ends[-1].end() < len(text.rstrip()):
            text = text[: ends[-1].end()]
    return text if re.search(r"\w", text) else ""
