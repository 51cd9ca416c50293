"""JSON Schema for structured replies: validation, parsing of model replies, minimal instances.

Backends that support structured output all need the same three things: check a reply
against the request's schema, turn raw text into ``parsed`` or a recorded error, and (for
the mock) produce a valid instance without a model. Validation is the ``jsonschema``
library's (draft 2020-12 unless the schema names another with ``$schema``), so every
keyword is enforced: ``anyOf``/``oneOf``/``allOf``/``not``, ``pattern``, local ``$ref``
and the rest. ``format`` stays an annotation (the standard's default); a remote ``$ref``
is an error, never a download.

Errors read ``"<json path>: <reason>"`` (``$.tags[0]: 'z' is not one of ['x', 'y']``),
in instance order. For the keywords simlab's earlier hand-written validator covered the
wording and order are that validator's, because a re-asked model is shown them; others
take jsonschema's message, which names the offending value.
:func:`example_instance` (the mock's replies) still covers only that subset.
"""

from __future__ import annotations

import functools
import json
import random
import re
from collections.abc import Iterator
from typing import Any

import referencing.exceptions
from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError

#: Keywords with the old validator's wording, in the order it checked them at one value.
_RANK = {k: i for i, k in enumerate((
    "type", "enum", "const", "minimum", "maximum", "minLength", "maxLength", "minItems",
    "maxItems", "required"))}


def _message(error: ValidationError) -> str:
    word, value, instance = error.validator, error.validator_value, error.instance
    if word == "type":
        names = [value] if isinstance(value, str) else list(value)
        return f"expected {' or '.join(map(str, names))}, got {type(instance).__name__}"
    known = {
        "enum": lambda: f"{instance!r} is not one of {value!r}",
        "const": lambda: f"expected {value!r}",
        "minimum": lambda: f"{instance} < minimum {value}",
        "maximum": lambda: f"{instance} > maximum {value}",
        "minLength": lambda: f"shorter than minLength {value}",
        "maxLength": lambda: f"longer than maxLength {value}",
        "minItems": lambda: f"fewer than minItems {value}",
        "maxItems": lambda: f"more than maxItems {value}",
    }
    return known[word]() if word in known else error.message


def _required(base: Any) -> Any:
    """``required``, naming the missing key in simlab's wording."""

    def check(validator: Any, required: Any, instance: Any, schema: Any
              ) -> Iterator[ValidationError]:
        if not validator.is_type(instance, "object") or not isinstance(required, list):
            yield from base(validator, required, instance, schema)  # e.g. draft 3's boolean
            return
        for key in required:
            if key not in instance:
                yield ValidationError(f"missing required property {key!r}")

    return check


def _additional(base: Any) -> Any:
    """``additionalProperties: false`` as one error per unexpected key (jsonschema lists
    them all in one); any other value is jsonschema's own."""

    def check(validator: Any, extra: Any, instance: Any, schema: Any
              ) -> Iterator[ValidationError]:
        if extra is not False or not validator.is_type(instance, "object"):
            yield from base(validator, extra, instance, schema)
            return
        declared = schema.get("properties", {})
        patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
        for key in instance:
            if key not in declared and not any(p.search(key) for p in patterns):
                error = ValidationError(f"unexpected property {key!r}")
                error.unexpected_key = key  # type: ignore[attr-defined]  # where it sorts
                yield error

    return check


@functools.cache
def _checker(base: type) -> type:
    """``base`` (a jsonschema validator class) with simlab's two reworded keywords."""
    own = base.VALIDATORS  # type: ignore[attr-defined]
    mine = {"required": _required, "additionalProperties": _additional}
    return validators.extend(base, {k: wrap(own[k]) for k, wrap in mine.items() if k in own})


@functools.lru_cache(maxsize=256)
def _validator(text: str) -> Any:
    """A checked validator for the schema ``text`` (its own copy: immune to later edits)."""
    schema = json.loads(text)
    base = validators.validator_for(schema, default=Draft202012Validator)
    try:
        base.check_schema(schema)
    except SchemaError as exc:
        where = _path(exc.absolute_path, "schema")
        raise ValueError(f"invalid JSON schema: {exc.message} at {where}") from None
    return _checker(base)(schema)


def _path(parts: Any, root: str = "$") -> str:
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _order(instance: Any, error: ValidationError) -> tuple[Any, ...]:
    """Sort key: depth-first through the instance (values in their own order, each value's
    own errors before its children's), then by keyword as the old validator checked."""
    key: list[Any] = []
    node = instance
    parts = list(error.absolute_path)
    if hasattr(error, "unexpected_key"):
        parts.append(error.unexpected_key)
    for part in parts:
        if isinstance(node, dict):
            key.append(list(node).index(part) if part in node else len(node))
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            key.append(part)
            node = node[part]
        else:  # a path into a missing value (draft 3 reports ``required`` there)
            key.append(0)
            node = None
    return (*key, -1, _RANK.get(str(error.validator), len(_RANK)))


def validate(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Return every violation as ``"<json path>: <reason>"``; empty means valid.

    Raises ``ValueError`` for a schema that is not valid JSON Schema, or whose ``$ref``
    cannot be resolved locally (nothing is fetched).
    """
    validator = _validator(json.dumps(schema))
    try:
        errors = list(validator.iter_errors(instance))
    except referencing.exceptions.Unresolvable as exc:
        ref = getattr(exc, "ref", exc)
        raise ValueError(f"invalid JSON schema: cannot resolve $ref {ref!r} "
                         "(only references inside the schema are followed)") from None
    if not errors:
        return []
    # The old validator stopped at a value of the wrong type: no enum/const noise after it.
    typed = {(tuple(e.absolute_path), id(e.schema)) for e in errors if e.validator == "type"}
    errors = [e for e in errors if e.validator == "type"
              or (tuple(e.absolute_path), id(e.schema)) not in typed]
    errors.sort(key=lambda e: _order(instance, e))
    return [f"{_path(e.absolute_path, path)}: {_message(e)}" for e in errors]


def parse_reply(text: str, schema: dict[str, Any]) -> tuple[Any, str]:
    """Parse a model's structured reply: ``(parsed, "")`` or ``(None, error)``.

    Errors start with ``"invalid JSON: "`` or ``"schema: "`` so failure tables can group
    them; the caller keeps the raw text alongside. A raw line break or tab inside a JSON
    string (small models under a grammar write them) is read as that character
    (``strict=False``), not failed: the value is unambiguous. A ``\\u`` escape of a lone
    surrogate (``"\\uddda"``: no character at all, which no UTF-8 file can store) is
    read as U+FFFD, as a decoder reads bytes that are not UTF-8.
    """
    try:
        value = _no_lone_surrogates(json.loads(text, strict=False))
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    problems = validate(value, schema)
    if problems:
        return None, "schema: " + "; ".join(problems)
    return value, ""


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD
    (``json.loads`` has already joined the valid pairs)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_no_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_no_lone_surrogates(k): _no_lone_surrogates(v) for k, v in value.items()}
    return value


_WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor")


def example_instance(schema: dict[str, Any], rng: random.Random) -> Any:
    """A small valid instance of ``schema``, drawn from ``rng`` (deterministic per seed).

    Optional object properties are included too, so consumers see every field exercised.
    """
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(list(schema["enum"]))
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {key: example_instance(sub, rng) for key, sub in props.items()}
    if kind == "array":
        items = schema.get("items", {"type": "string"})
        low = schema.get("minItems", 1)
        high = max(low, min(schema.get("maxItems", 3), low + 2))
        return [example_instance(items, rng) for _ in range(rng.randint(low, high))]
    if kind in ("integer", "number"):
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 100)
        if kind == "integer":
            return rng.randint(int(-(-low // 1)), int(high // 1))
        return min(max(round(rng.uniform(low, high), 2), low), high)
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    word = rng.choice(_WORDS)
    word = word.ljust(schema.get("minLength", 0), "x")
    return word[: schema["maxLength"]] if "maxLength" in schema else word
