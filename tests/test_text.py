"""Reply repair and persona cards, on hand-written inputs."""

from __future__ import annotations

import pytest

from simlab.personas.model import Persona
from simlab.text import clean_reply, persona_card

ME, OTHERS = "Ana Diaz", ["Ben Okafor"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("Hello there.", "Hello there."),
    ("Ana Diaz: Hello there.", "Hello there."),
    ("Ana: Hello there.", "Hello there."),
    ("assistant: Hello there.", "Hello there."),
    ("**Ana Diaz**: Hello there.", "Hello there."),
    ("Hello.\nBen Okafor: Hi Ana!\nAna Diaz: How are you?", "Hello."),
    ("Hello.\nBen: Hi Ana!", "Hello."),
    ("Hello.<|im_end|>\n<|im_start|>user\nBen: hi", "Hello."),
    ("[Laughter] Oh, that is funny.", "Oh, that is funny."),
    ("*smiles* Sure. (sighs) Fine.", "Sure. (sighs) Fine."),
    ("Ana Diaz: [Silence]", ""),
    ('"Quoted reply."', "Quoted reply."),
    ("Line one.\nLine two.", "Line one. Line two."),
    ("   ", ""),
    ("...", ""),
    ("User:", ""),
])
def test_clean_reply(raw, expected):
    assert clean_reply(raw, ME, OTHERS) == expected


def test_truncated_reply_drops_the_unfinished_sentence():
    raw = "I can help. Bring your ID and the form you got from the"
    assert clean_reply(raw, ME, OTHERS, truncated=True) == "I can help."
    assert clean_reply(raw, ME, OTHERS) == raw
    assert clean_reply("no sentence end at all", ME, OTHERS, truncated=True) == (
        "no sentence end at all")


def test_length_cap_cuts_at_a_sentence_end():
    raw = "One two. " * 100
    out = clean_reply(raw, ME, OTHERS, max_chars=50)
    assert out == "One two. One two. One two. One two. One two."


def test_persona_card_reads_as_second_person_instructions():
    p = Persona(id="ana", name="Ana Diaz", age=41, description="She runs a bakery.",
                occupation="owner of a bakery", location="Austin, TX", temperament="upbeat",
                speaking_style="quick and warm")
    assert persona_card(p) == (
        "You are Ana Diaz, 41 years old, an owner of a bakery from Austin, TX. "
        "She runs a bakery. Temperament: upbeat. How you talk: quick and warm."
    )
