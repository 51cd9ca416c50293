"""A small JSON-schema subset: validation, parsing of model replies, minimal instances.

Backends that support structured output all need the same three things: check a reply
against the request's schema, turn raw text into ``parsed`` or a recorded error, and (for
the mock) produce a valid instance without a model. The subset covers what scenarios
ask for — ``type`` (single or list), ``properties``, ``required``, ``additionalProperties``,
``enum``, ``const``, ``minimum``/``maximum``, ``items``, ``minItems``/``maxItems``,
``minLength``/``maxLength`` — so no third-party validator is needed. Unknown keywords are
ignored rather than rejected, matching JSON Schema's own rule.
"""

from __future__ import annotations

import json
import random
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if name not in _TYPES:
        return True  # unknown type names are not ours to reject
    if isinstance(value, bool) and name not in ("boolean",):
        return False  # JSON booleans are not numbers, though Python says otherwise
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[name])


def validate(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Return every violation as ``"<json path>: <reason>"``; empty means valid."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(instance, t) for t in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']!r}")
    if "const" in schema and instance != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}")
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            errors.append(f"{path}: {instance} < minimum {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            errors.append(f"{path}: {instance} > maximum {schema['maximum']}")
    if isinstance(instance, str):
        if len(instance) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than minLength {schema['minLength']}")
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            errors.append(f"{path}: longer than maxLength {schema['maxLength']}")
    if isinstance(instance, list):
        if len(instance) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than minItems {schema['minItems']}")
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            errors.append(f"{path}: more than maxItems {schema['maxItems']}")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(instance):
                errors.extend(validate(item, items, f"{path}[{i}]"))
    if isinstance(instance, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing required property {key!r}")
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                errors.extend(validate(value, props[key], f"{path}.{key}"))
            elif extra is False:
                errors.append(f"{path}: unexpected property {key!r}")
            elif isinstance(extra, dict):
                errors.extend(validate(value, extra, f"{path}.{key}"))
    return errors


def parse_reply(text: str, schema: dict[str, Any]) -> tuple[Any, str]:
    """Parse a model's structured reply: ``(parsed, "")`` or ``(None, error)``.

    Errors start with ``"invalid JSON: "`` or ``"schema: "`` so failure tables can group
    them; the caller keeps the raw text alongside. A raw line break or tab inside a JSON
    string (small models under a grammar write them) is read as that character
    (``strict=False``), not failed: the value is unambiguous.
    """
    try:
        value = json.loads(text, strict=False)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc}"
    problems = validate(value, schema)
    if problems:
        return None, "schema: " + "; ".join(problems)
    return value, ""


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
