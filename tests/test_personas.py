"""Personas as data: curated set, loader errors, save/load, schema sampler and rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from simlab.personas import (
    Persona,
    PersonaFileError,
    PersonaSampler,
    SamplingError,
    check_plausibility,
    default_persona_path,
    load_personas,
    render_description,
    save_personas,
)
from simlab.personas.vocab import default_vocab_path

GOOD = {"id": "ok", "name": "Ok Person", "age": 40, "description": "Fine."}


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, *records: object) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in records))


# --- curated set -----------------------------------------------------------------------


def test_curated_set_is_large_unique_and_varied() -> None:
    personas = load_personas(default_persona_path())
    assert default_persona_path().name == "curated.yaml"
    assert len(personas) >= 20
    assert len({p.id for p in personas}) == len(personas)
    assert len({p.name for p in personas}) == len(personas)
    ages = [p.age for p in personas]
    assert min(ages) <= 20 and max(ages) >= 80
    assert len({a // 10 for a in ages}) >= 7  # every decade from teens to eighties
    assert {"female", "male", "non-binary"} <= {p.gender for p in personas}
    assert all(2 <= len(p.goals) <= 3 and p.hobbies and p.speaking_style for p in personas)


def test_curated_set_is_plausible() -> None:
    personas = load_personas(default_persona_path())
    assert {p.id: check_plausibility(p) for p in personas} == {p.id: [] for p in personas}


# --- loader errors ---------------------------------------------------------------------

BAD_AGE_YAML = """\
personas:
  - id: ok
    name: Ok Person
    age: 40
    description: Fine.
  - id: maya
    name: Maya
    age: 250
    description: Too old.
"""


def test_yaml_field_error_names_file_line_record_field_and_value(tmp_path: Path) -> None:
    path = _write(tmp_path / "curated.yaml", BAD_AGE_YAML)
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    assert str(info.value) == (
        f"{path}:6: record 2 (id='maya'): field 'age': "
        "Input should be less than or equal to 120 (got 250)"
    )
    assert info.value.path == str(path)


def test_jsonl_error_names_line(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", GOOD, {**GOOD, "id": "bo", "age": "old"})
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    assert str(info.value) == (
        f"{path}:2: record 2 (id='bo'): field 'age': "
        "Input should be a valid integer, unable to parse string as an integer (got 'old')"
    )


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            {**GOOD, "occupaton": "nurse"},
            "field 'occupaton': unknown field; did you mean 'occupation'? (got 'nurse')",
        ),
        (
            {**GOOD, "goals": ["a", "  "]},
            "field 'goals[1]': String should have at least 1 character (got '  ')",
        ),
        (
            {k: v for k, v in GOOD.items() if k != "description"},
            "field 'description': Field required",
        ),
        ({**GOOD, "id": "has space"}, "field 'id': String should match pattern"),
        ({**GOOD, "occupation": " "}, "field 'occupation': Value error, must not be blank"),
    ],
)
def test_field_errors(tmp_path: Path, record: dict, expected: str) -> None:
    path = _jsonl(tmp_path / "p.jsonl", record)
    with pytest.raises(PersonaFileError, match="^" + re.escape(str(path))) as info:
        load_personas(path)
    assert f"record 1 (id='{record['id']}'): {expected}" in str(info.value)


def test_all_bad_records_reported_at_once(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "p.jsonl", {**GOOD, "age": -1}, GOOD, {**GOOD, "id": "x", "age": 999})
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    assert [e.split(": ", 2)[1] for e in info.value.errors] == [
        "record 1 (id='ok')",
        "record 3 (id='x')",
    ]


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("e.yaml", "", "{p}: file is empty; expected a list of personas"),
        ("e.yaml", "# nothing\n", "{p}: file is empty; expected a list of personas"),
        ("e.jsonl", "\n\n", "{p}: file is empty; expected a list of personas"),
        ("e.yaml", "personas: []\n", "{p}: contains no personas"),
        ("b.yaml", "- id: a\n  name: [unclosed\n", "{p}:3: invalid YAML: "),
        ("b.jsonl", json.dumps(GOOD) + "\n{oops\n", "{p}:2: invalid JSON: Expecting property"),
        ("m.yaml", "people: []\n", "{p}: expected a list of personas or a 'personas:' key"),
        ("s.yaml", "just text\n", "{p}: expected a list of personas, got str"),
        ("r.yaml", "- hello\n", "{p}:1: record 1: expected a mapping of fields, got 'hello'"),
        ("k.yaml", "- id: a\n  age: 3\n  age: 4\n", "{p}:3: duplicate key 'age' in a mapping"),
        ("p.txt", "whatever", "{p}: unknown persona file extension '.txt'"),
    ],
)
def test_file_level_errors(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    assert str(info.value).startswith(expected.format(p=path))


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PersonaFileError, match=r"nope\.yaml: persona file not found"):
        load_personas(path)


def test_duplicate_ids_name_both_records(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", GOOD, {**GOOD, "id": "b"}, {**GOOD, "name": "Twin"})
    with pytest.raises(PersonaFileError) as info:
        load_personas(path)
    assert str(info.value) == f"{path}: duplicate id 'ok' in records 1 and 3 (lines 1 and 3)"


def test_yaml_list_form_and_whitespace_stripping(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.yml", "- {id: a, name: ' Ann Lee ', age: 30, description: x}\n")
    assert load_personas(path) == [Persona(id="a", name="Ann Lee", age=30, description="x")]


# --- save / load -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["snap.jsonl", "nested/snap.yaml"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    personas = load_personas(default_persona_path())[:5]
    personas.append(Persona(id="x", name="Zoë Ünal", age=9, description="Line\nbreak."))
    out = save_personas(personas, tmp_path / name)
    assert load_personas(out) == personas
    assert [p.name for p in load_personas(out)][-1] == "Zoë Ünal"


def test_save_rejects_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(PersonaFileError, match=r"unknown persona file extension '\.csv'"):
        save_personas([], tmp_path / "p.csv")
    assert list(tmp_path.iterdir()) == []


# --- plausibility rules -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        (
            {"age": 9, "occupation": "surgeon", "education": "doctorate"},
            [
                "occupation_min_age: age 9 is below the minimum age 30 for occupation 'surgeon'",
                "education_age: education 'doctorate' at age 9; it needs age >= 26",
            ],
        ),
        (
            {"age": 19, "occupation": "retired teacher"},
            [
                "occupation_min_age: age 19 is below the minimum age 50 for occupation "
                "'retired teacher'",
                "retired_age: retired at age 19; retirement needs age >= 50",
            ],
        ),
        (
            {"age": 19, "occupation": "retiree"},
            ["retired_age: retired at age 19; retirement needs age >= 50"],
        ),
        (
            {"age": 20, "education": "PhD"},
            ["education_age: education 'PhD' at age 20; it needs age >= 26"],
        ),
        (
            {"age": 20, "education": "bachelor"},
            ["education_age: education 'bachelor' at age 20; it needs age >= 21"],
        ),
        (
            {"age": 55, "occupation": "PhD student", "education": "master"},
            ["student_age: student at age 55; students are at most 40"],
        ),
        (
            {"age": 80, "occupation": "firefighter", "education": "secondary"},
            ["occupation_max_age: age 80 is above the maximum age 60 for occupation 'firefighter'"],
        ),
        (
            {"age": 40, "occupation": "dentist", "education": "secondary"},
            [
                "occupation_education: occupation 'dentist' needs education 'doctorate' or higher, "
                "has 'secondary'"
            ],
        ),
        ({"age": 40, "occupation": "dentist", "education": "doctorate"}, []),
        ({"age": 40, "occupation": "astronaut"}, []),  # unknown occupation: nothing to check
        ({"occupation": "surgeon"}, []),  # no age: rules skip
    ],
)
def test_check_plausibility(attrs: dict, expected: list[str]) -> None:
    assert check_plausibility(attrs) == expected


# --- sampler ---------------------------------------------------------------------------


def test_sampler_is_deterministic_given_rng() -> None:
    a = PersonaSampler().sample(30, np.random.default_rng(7))
    b = PersonaSampler().sample(30, np.random.default_rng(7))
    c = PersonaSampler().sample(30, np.random.default_rng(8))
    assert a == b
    assert [p.model_dump() for p in a] != [p.model_dump() for p in c]
    assert [p.id for p in a[:3]] == ["sampled-0000", "sampled-0001", "sampled-0002"]
    # Pinned so that a change to the draw order or the vocabulary is a visible decision.
    assert (a[0].name, a[0].age, a[0].occupation, a[0].attributes) == (
        "Lucia Yilmaz",
        48,
        "barista",
        {"education": "vocational", "life_stage": "adult"},
    )


def test_sampled_personas_are_plausible_and_complete() -> None:
    sampler = PersonaSampler(id_prefix="pop")
    personas = sampler.sample(300, np.random.default_rng(0), start=10)
    assert personas[0].id == "pop-0010" and personas[-1].id == "pop-0309"
    assert all(check_plausibility(p) == [] for p in personas)
    assert len({p.name for p in personas}) == 300
    lo, hi = sampler.vocab.age_range
    assert all(lo <= p.age <= hi for p in personas)
    assert all(2 <= len(p.goals) <= 3 and 1 <= len(p.hobbies) <= 3 for p in personas)
    assert all(set(p.attributes) == {"education", "life_stage"} for p in personas)


def test_sampler_stats_are_consistent() -> None:
    sampler = PersonaSampler()
    sampler.sample(200, np.random.default_rng(3))
    stats = sampler.stats
    assert stats["draws"] == 200 + stats["rejections"]
    assert stats["rejections"] > 0
    assert stats["rejection_rate"] == stats["rejections"] / stats["draws"]
    assert sum(stats["per_rule"].values()) >= stats["rejections"]
    assert list(stats["per_rule"]) == [
        "occupation_min_age",
        "occupation_max_age",
        "retired_age",
        "student_age",
        "education_age",
        "occupation_education",
        "unique_name",
    ]


def test_sampler_gives_up_with_clear_error() -> None:
    def never(attrs: dict) -> str | None:
        return "always wrong"

    sampler = PersonaSampler(rules=[never], max_attempts=5)
    with pytest.raises(SamplingError, match=r"after 5 draws for sampled-0000.*never \(5\)"):
        sampler.sample(1, np.random.default_rng(0))
    assert sampler.stats["draws"] == 5 and sampler.stats["per_rule"]["never"] == 5


def test_sampler_needs_a_generator() -> None:
    with pytest.raises(TypeError, match="default_rng"):
        PersonaSampler().sample(1, 42)  # type: ignore[arg-type]


def test_render_description() -> None:
    attrs = {
        "name": "Ana Silva",
        "age": 18,
        "gender": "female",
        "occupation": "barista",
        "location": "Porto, Portugal",
        "temperament": "shy until comfortable",
        "hobbies": ("chess", "yoga"),
        "goals": ("find a steady job", "learn Spanish", "get fitter"),
    }
    assert render_description(attrs) == (
        "Ana Silva is an 18-year-old barista from Porto, Portugal. She is shy until "
        "comfortable and enjoys chess and yoga. She wants to find a steady job, learn "
        "Spanish and get fitter."
    )
    assert render_description(
        {"name": "Kai", "age": 30, "gender": "non-binary", "temperament": "calm", "goals": ["rest"]}
    ) == ("Kai is a 30-year-old person. They are calm. They want to rest.")


def test_bad_vocab_names_file_and_field(tmp_path: Path) -> None:
    text = default_vocab_path().read_text(encoding="utf-8")
    bad = tmp_path / "vocab.yaml"
    _write(bad, text.replace("education: doctorate}", "education: phd}", 1))
    with pytest.raises(PersonaFileError) as info:
        PersonaSampler(vocab_path=bad)
    assert str(info.value) == (
        f"{bad}: Value error, occupation 'surgeon' requires unknown education 'phd' "
        "(known: bachelor, doctorate, master, none, secondary, vocational)"
    )
    _write(bad, text.replace("min_age: 30, max_age: 75", "min_age: old, max_age: 75", 1))
    with pytest.raises(PersonaFileError, match=r"field 'occupations\[11\]\.min_age'.*'old'"):
        PersonaSampler(vocab_path=bad)
