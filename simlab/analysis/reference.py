"""Reference corpora: user-supplied persona dialogues, read into the shape of a run.

Two layouts, CSV or JSONL:

- **Synthetic-Persona-Chat** (the public CSVs): columns ``user 1 personas``,
  ``user 2 personas`` and ``Best Generated Conversation`` (names matched
  case-insensitively, surrounding spaces ignored); one persona fact per line; turns as
  ``User 1: …`` / ``User 2: …`` lines (a line without a prefix continues the turn before).
  A JSONL file may use the same three keys per line.
- **Generic JSONL**: one conversation per line,
  ``{"personas": {"A": "fact\\nfact" | [facts]}, "turns": [{"speaker": "A", "text": "…"}]}``
  (``utterances`` and ``conversation`` are accepted for ``turns``; ``content`` for ``text``).

:func:`load_reference` returns a :class:`~simlab.store.RunTables`, so every metric,
report and export works on a reference corpus as if it were a run. Errors name the file,
the row or line, and the column or key.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from simlab.events import UTTERANCE
from simlab.store import RunTables, StoreError
from simlab.store.episodes import AGENTS_SCHEMA, EPISODES_SCHEMA, EVENTS_SCHEMA

log = logging.getLogger(__name__)
SPC_COLUMNS = ("user 1 personas", "user 2 personas", "best generated conversation")
# "User 1: hi", and the markdown-decorated forms real files hold: "**User 1:** hi",
# "**User 1**: hi", "- User 1: hi", "> _User 2_: hi".
_TURN_RE = re.compile(
    r"^\s*(?:[-*>#]\s+)?[*_]{0,2}\s*(user\s*[12])\s*[*_]{0,2}\s*:\s*[*_]{0,2}\s*(.*)$",
    re.IGNORECASE)
#: How many skipped records a report lists by line.
SHOWN_SKIPS = 5
SUFFIXES = (".csv", ".jsonl", ".json")
_SPC_NAMES = {"user1": "User 1", "user2": "User 2"}


class CorpusError(StoreError):
    """A reference corpus file is missing, malformed or in an unknown layout."""


def is_reference_file(path: str | Path) -> bool:
    p = Path(path)
    return p.is_file() and p.suffix.lower() in SUFFIXES


def parse_spc_turns(text: str, where: str) -> list[tuple[str, str]]:
    """``User 1: …`` lines to (speaker, text); ``speaker`` is ``user1`` or ``user2``."""
    turns: list[tuple[str, str]] = []
    for line in str(text or "").splitlines():
        if not line.strip():
            continue
        m = _TURN_RE.match(line)
        if m:
            turns.append((m.group(1).lower().replace(" ", ""), m.group(2).strip()))
        elif turns:
            speaker, said = turns[-1]
            turns[-1] = (speaker, f"{said} {line.strip()}".strip())
        else:
            raise CorpusError(f"{where}: conversation must start with 'User 1:' or "
                                 f"'User 2:', got {line.strip()[:60]!r}")
    if not turns:
        raise CorpusError(f"{where}: conversation has no 'User 1:'/'User 2:' turns")
    return turns


def _facts(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    return [ln.strip() for ln in str(value or "").splitlines() if ln.strip()]


def _spc_columns(header: list[str], where: str) -> dict[str, str]:
    lowered = {h.strip().lower(): h for h in header}
    missing = [c for c in SPC_COLUMNS if c not in lowered]
    if missing:
        raise CorpusError(f"{where}: missing column(s) {missing} (Synthetic-Persona-Chat "
                             f"layout; got {header})")
    return {c: lowered[c] for c in SPC_COLUMNS}


_Record = tuple[str, dict[str, list[str]], list[tuple[str, str]]]


def read_corpus_text(path: Path) -> str:
    """The file as text: UTF-8, a byte-order mark dropped; bad bytes are an error that
    names the file, the line and the byte offset."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorpusError(f"{path}: line {line}, byte offset {exc.start}: not valid UTF-8 "
                          f"({data[exc.start:exc.start + 4]!r}); re-save the file as "
                          "UTF-8") from None
    return text.removeprefix("\ufeff")


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    """Raise the csv module's per-field limit (131,072 characters) for one read only:
    it is process-wide state, so it is put back afterwards."""
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, limit))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def _iter_csv(path: Path) -> Iterator[_Record | CorpusError]:
    text = read_corpus_text(path)
    with _csv_field_limit(len(text) + 1):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise CorpusError(f"{path}: empty file (no header row)") from None
        except csv.Error as exc:
            raise CorpusError(f"{path}: line 1: {exc}") from None
        cols = _spc_columns(header, str(path))
        index = {c: header.index(cols[c]) for c in SPC_COLUMNS}
        conv_col = cols["best generated conversation"]
        while True:
            first = reader.line_num + 1  # the physical line this record starts on
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CorpusError(f"{path}: line {first}: {exc}") from None
            where = f"{path}: line {first}"
            if not row:
                continue  # a blank line is no record (",," is: an empty one)
            cell = dict(zip(header, row, strict=False))
            try:
                turns = parse_spc_turns(cell.get(conv_col) or "",
                                        f"{where}, column {conv_col!r}")
            except CorpusError as exc:
                yield exc
                continue
            get = {c: row[i] if i < len(row) else "" for c, i in index.items()}
            yield where, {"user1": _facts(get["user 1 personas"]),
                          "user2": _facts(get["user 2 personas"])}, turns


def _iter_jsonl(path: Path) -> Iterator[_Record | CorpusError]:
    # "\n" only: str.splitlines would also split on U+2028 and U+0085, which JSON strings
    # may hold raw, and so skip good records and misnumber every later line.
    for i, line in enumerate(read_corpus_text(path).split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{path}: line {i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            yield CorpusError(f"{where}: not JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            yield CorpusError(f"{where}: expected a JSON object per line")
            continue
        lowered = {k.strip().lower(): k for k in obj}
        try:
            if all(c in lowered for c in SPC_COLUMNS):
                turns = parse_spc_turns(obj[lowered["best generated conversation"]], where)
                personas = {"user1": _facts(obj[lowered["user 1 personas"]]),
                            "user2": _facts(obj[lowered["user 2 personas"]])}
            else:
                personas, turns = _generic(obj, where)
        except CorpusError as exc:
            yield exc
            continue
        yield where, personas, turns


def _generic(obj: dict, where: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    raw = next((obj[k] for k in ("turns", "utterances", "conversation") if k in obj), None)
    if not isinstance(raw, list) or not raw:
        raise CorpusError(f"{where}: needs a non-empty 'turns' list (or the "
                             f"Synthetic-Persona-Chat keys {list(SPC_COLUMNS)})")
    turns = []
    for j, t in enumerate(raw):
        if not isinstance(t, dict) or "speaker" not in t:
            raise CorpusError(f"{where}: turns[{j}] needs 'speaker' and 'text'")
        text = t.get("text", t.get("content"))
        if not isinstance(text, str):
            raise CorpusError(f"{where}: turns[{j}].text must be a string")
        turns.append((str(t["speaker"]), text.strip()))
    personas_raw = obj.get("personas") or {}
    if not isinstance(personas_raw, dict):
        raise CorpusError(f"{where}: 'personas' must map speaker -> facts")
    personas = {str(k): _facts(v) for k, v in personas_raw.items()}
    for speaker, _ in turns:
        personas.setdefault(speaker, [])
    return personas, turns


def load_reference(path: str | Path, limit: int | None = None, *,
                   strict: bool = False) -> RunTables:
    """Read a corpus file as a run: one episode per conversation, one agent per speaker.

    Malformed records (no speaker labels, an empty conversation, a line that is not
    JSON) are skipped and reported: their count and the first few by physical line are
    logged and kept in ``manifest["skipped"]``. ``strict`` stops at the first one.
    """
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: reference corpus not found")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _iter_csv(path)
    elif suffix in (".jsonl", ".json"):
        rows = _iter_jsonl(path)
    else:
        raise CorpusError(f"{path}: unknown corpus format {suffix!r} (use .csv or .jsonl)")
    events, agents, episodes = [], [], []
    skipped: list[str] = []
    k = -1
    for record in rows:
        if isinstance(record, CorpusError):
            if strict:
                raise record
            skipped.append(str(record))
            continue
        _where, personas, turns = record
        k += 1
        if limit is not None and k >= limit:
            break
        eid = f"ref{k:06d}"
        keys = {s: re.sub(r"[^A-Za-z0-9_.\-]", "_", s) or f"s{j}"
                for j, s in enumerate(personas)}
        for speaker, facts in personas.items():
            agents.append({"episode_id": eid, "agent_id": keys[speaker],
                           "name": _SPC_NAMES.get(speaker, speaker),
                           "role": speaker, "persona_id": f"{eid}-{keys[speaker]}",
                           "description": "\n".join(facts)})
        for seq, (speaker, text) in enumerate(turns):
            key = keys[speaker]
            events.append({"episode_id": eid, "step": seq, "seq": seq, "speaker": key,
                           "audience": [v for s, v in keys.items() if v != key],
                           "kind": UTTERANCE, "content": text})
        episodes.append({"episode_id": eid, "episode_index": k, "scenario": "reference",
                         "seed": -1, "n_turns": len(turns), "n_events": len(turns),
                         "n_failures": 0, "termination_reason": "reference",
                         "participants": list(keys.values())})
    rows.close()  # puts the csv field limit back even when ``limit`` stopped early
    if skipped:
        log.warning("%s: skipped %d malformed record(s) (--strict to stop at the first); "
                    "first: %s", path, len(skipped), "; ".join(skipped[:SHOWN_SKIPS]))
    if not episodes:
        more = f" ({len(skipped)} malformed, first: {skipped[0]})" if skipped else ""
        raise CorpusError(f"{path}: no conversations{more}")
    ev = pl.DataFrame(events, schema={k: v for k, v in EVENTS_SCHEMA.items()
                                      if k in events[0]})
    ev = ev.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in EVENTS_SCHEMA.items()
                         if c not in ev.columns).select(list(EVENTS_SCHEMA))
    ag = pl.DataFrame(agents, schema={**AGENTS_SCHEMA, "description": pl.String})
    ep = pl.DataFrame(episodes, schema=EPISODES_SCHEMA)
    manifest = {"kind": "reference", "source": str(path), "seed": None,
                "config": {"reference": str(path)}, "backend": {"model": "reference"},
                "skipped": {"records": len(skipped), "first": skipped[:SHOWN_SKIPS]}}
    return RunTables(run_dir=path, manifest=manifest, events=ev, agents=ag, episodes=ep)
