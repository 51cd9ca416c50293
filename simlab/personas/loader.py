"""Read and write persona files (YAML or JSONL).

Every failure raises :class:`PersonaFileError` naming the file, the line, the record and
the field, because persona files are hand-edited and a vague "validation error" sends
users bisecting a 200-record file by hand.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from simlab.personas.model import Persona
from simlab.resources import personas_dir

PERSONA_DATA_DIR = personas_dir()
YAML_SUFFIXES = (".yaml", ".yml")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


class PersonaFileError(ValueError):
    """A persona (or vocabulary) file could not be read; ``errors`` lists every problem."""

    def __init__(self, path: str | Path, problems: str | Sequence[str]) -> None:
        self.path = str(path)
        self.errors = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.errors))


def default_persona_path() -> Path:
    """The curated persona set shipped with simlab (``personas/curated.yaml``)."""
    return PERSONA_DATA_DIR / "curated.yaml"


def _fmt_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def format_validation_error(
    exc: ValidationError, prefix: str, known_fields: Iterable[str] = ()
) -> list[str]:
    """One line per pydantic error: ``<prefix>: field 'age': <msg> (got 250)``."""
    known = list(known_fields)
    lines = []
    for err in exc.errors():
        msg = err["msg"]
        if not err["loc"]:  # whole-record check: the input is the record itself, skip it
            lines.append(f"{prefix}: {msg}")
            continue
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
            msg = f"unknown field{f'; did you mean {close[0]!r}?' if close else ''}"
        got = "" if err["type"] == "missing" else f" (got {err['input']!r})"
        lines.append(f"{prefix}: field '{_fmt_loc(err['loc'])}': {msg}{got}")
    return lines


def _record_prefix(path: Path, index: int, line: int | None, raw: Any) -> str:
    rid = raw.get("id") if isinstance(raw, dict) else None
    who = f"record {index}" + (f" (id={rid!r})" if rid is not None else "")
    return f"{path}:{line}: {who}" if line is not None else f"{path}: {who}"


def _read_text(path: Path) -> str:
    if not path.exists():
        raise PersonaFileError(path, f"{path}: persona file not found")
    if path.is_dir():
        raise PersonaFileError(path, f"{path}: is a directory; expected one persona file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PersonaFileError(path, f"{path}: not UTF-8 text ({exc.reason})") from exc
    if not text.strip():
        raise PersonaFileError(path, f"{path}: file is empty; expected a list of personas")
    return text


def load_yaml_document(path: Path) -> tuple[Any, yaml.Node]:
    """Parse one YAML file, keeping the node tree so records can be traced to lines."""
    text = _read_text(path)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PersonaFileError(path, f"{where}: invalid YAML: {problem}") from exc
    finally:
        loader.dispose()
    if node is not None:
        _check_duplicate_keys(path, node)
    return data, node


def _check_duplicate_keys(path: Path, root: yaml.Node) -> None:
    # PyYAML keeps the last of two equal keys; a second "age:" would silently win.
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        line = key.start_mark.line + 1
                        raise PersonaFileError(
                            path, f"{path}:{line}: duplicate key {key.value!r} in a mapping"
                        )
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def _yaml_records(path: Path) -> list[tuple[int | None, Any]]:
    data, node = load_yaml_document(path)
    if data is None:
        raise PersonaFileError(path, f"{path}: file is empty; expected a list of personas")
    if isinstance(data, dict):
        if "personas" not in data:
            keys = ", ".join(map(str, data)) or "none"
            raise PersonaFileError(
                path, f"{path}: expected a list of personas or a 'personas:' key (found: {keys})"
            )
        data = data["personas"]
        node = next(v for k, v in node.value if k.value == "personas")
    if not isinstance(data, list):
        kind = type(data).__name__
        raise PersonaFileError(path, f"{path}: expected a list of personas, got {kind}")
    lines = [item.start_mark.line + 1 for item in node.value]
    return list(zip(lines, data, strict=True))


def _jsonl_records(path: Path) -> list[tuple[int | None, Any]]:
    records: list[tuple[int | None, Any]] = []
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((lineno, json.loads(line)))
        except json.JSONDecodeError as exc:
            msg = f"{path}:{lineno}: invalid JSON: {exc.msg} (column {exc.colno})"
            raise PersonaFileError(path, msg) from exc
    return records


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + JSONL_SUFFIXES:
        known = ", ".join(YAML_SUFFIXES + JSONL_SUFFIXES)
        raise PersonaFileError(
            path, f"{path}: unknown persona file extension {path.suffix!r} (use {known})"
        )
    return suffix


def validate_records(
    path: Path, records: Sequence[tuple[int | None, Any]], model: type[BaseModel]
) -> list[Any]:
    """Validate every record, collecting all problems before raising (fix once, not N times)."""
    out, problems = [], []
    for index, (line, raw) in enumerate(records, start=1):
        prefix = _record_prefix(path, index, line, raw)
        if not isinstance(raw, dict):
            problems.append(f"{prefix}: expected a mapping of fields, got {raw!r}")
            continue
        try:
            out.append(model.model_validate(raw))
        except ValidationError as exc:
            problems.extend(format_validation_error(exc, prefix, model.model_fields))
    if problems:
        raise PersonaFileError(path, problems)
    return out


def load_personas(path: str | Path) -> list[Persona]:
    """Load personas from a ``.yaml``/``.yml`` file (a list, or a mapping with a
    ``personas:`` key) or a ``.jsonl`` file (one object per line).

    Records are numbered from 1 in error messages, next to their line in the file.
    """
    path = Path(path)
    suffix = _suffix(path)
    records = _yaml_records(path) if suffix in YAML_SUFFIXES else _jsonl_records(path)
    if not records:
        raise PersonaFileError(path, f"{path}: contains no personas")
    personas: list[Persona] = validate_records(path, records, Persona)
    seen: dict[str, int] = {}
    problems = []
    for index, persona in enumerate(personas, start=1):
        if persona.id in seen:
            first = seen[persona.id]
            lines = f" (lines {records[first - 1][0]} and {records[index - 1][0]})"
            problems.append(
                f"{path}: duplicate id {persona.id!r} in records {first} and {index}{lines}"
            )
        else:
            seen[persona.id] = index
    if problems:
        raise PersonaFileError(path, problems)
    return personas


def _dump(persona: Persona) -> dict[str, Any]:
    # Defaults are left out so a snapshot reads like a hand-written file.
    return persona.model_dump(mode="json", exclude_defaults=True)


def save_personas(personas: Iterable[Persona], path: str | Path) -> Path:
    """Write personas as YAML or JSONL (by extension), atomically, so a crash never
    leaves a half-written snapshot that later fails to load."""
    path = Path(path)
    suffix = _suffix(path)
    rows = [_dump(p) for p in personas]
    if suffix in YAML_SUFFIXES:
        text = yaml.safe_dump({"personas": rows}, sort_keys=False, allow_unicode=True, width=100)
    else:
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
