"""Real, imperfect corpus files: ``simlab analyze`` and ``simlab export`` read them.

The public Synthetic-Persona-Chat CSVs hold records with markdown-decorated speaker
labels, records with no labels, empty records; files come with byte-order marks, bad
bytes and fields longer than the csv module's default limit.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from rel_helpers import simlab

from simlab.analysis.reference import CorpusError, load_reference

HEADER = ["user 1 personas", "user 2 personas", "Best Generated Conversation"]


def _csv(rows: list[list[str]], bom: bool = False) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([HEADER, *rows])
    return (("\ufeff" if bom else "") + buf.getvalue()).encode()


GOOD = ["I fish.\nI run.", "I bake.", "User 1: Hi there!\nUser 2: Hello, how are you?"]
MARKDOWN = ["I sing.", "I ski.", "**User 1:** Morning!\n**User 2**: Hi.\n- User 1: Bye."]
UNLABELLED = ["a", "b", "Hello there\nHow are you"]
EMPTY = ["", "", ""]


def test_malformed_records_are_skipped_and_reported_by_physical_line(tmp_path, caplog):
    path = tmp_path / "spc.csv"
    # lines: 1 header; 2-4 GOOD (3 lines); 5-6 UNLABELLED; 7 EMPTY; 8-10 MARKDOWN
    path.write_bytes(_csv([GOOD, UNLABELLED, EMPTY, MARKDOWN]))
    run = load_reference(path)
    assert run.episodes["n_turns"].to_list() == [2, 3]
    said = run.events.filter(episode_id="ref000001")["content"].to_list()
    assert said == ["Morning!", "Hi.", "Bye."]  # markdown decoration is read, not kept
    skipped = run.manifest["skipped"]
    assert skipped["records"] == 2
    assert skipped["first"][0].startswith(f"{path}: line 5, column")
    assert skipped["first"][1].startswith(f"{path}: line 7, column")
    assert "skipped 2 malformed record(s)" in caplog.text
    with pytest.raises(CorpusError, match="line 5, column 'Best Generated Conversation'"):
        load_reference(path, strict=True)


def test_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(_csv([GOOD], bom=True))
    assert load_reference(path).episodes.height == 1
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes("\ufeff".encode() + json.dumps(
        {"turns": [{"speaker": "A", "text": "hi"}]}).encode() + b"\n")
    assert load_reference(jsonl).episodes.height == 1


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_invalid_utf8_names_file_line_and_byte_offset(tmp_path, suffix):
    path = tmp_path / f"bad{suffix}"
    if suffix == ".csv":
        data = _csv([GOOD]) + b'x,y,"User 1: caf\xe9"\n'
    else:
        data = b'{"turns": [{"speaker": "A", "text": "ok"}]}\n{"turns": "\xff"}\n'
    path.write_bytes(data)
    offset = data.index(b"\xe9" if suffix == ".csv" else b"\xff")
    line = data[:offset].count(b"\n") + 1
    with pytest.raises(CorpusError) as err:
        load_reference(path)
    assert f"{path}: line {line}, byte offset {offset}: not valid UTF-8" in str(err.value)


def test_fields_longer_than_the_csv_default_limit(tmp_path):
    limit = csv.field_size_limit()
    long_turn = "word " * 40_000  # 200,000 characters in one field
    path = tmp_path / "long.csv"
    path.write_bytes(_csv([["a", "b", f"User 1: {long_turn}\nUser 2: ok"]]))
    run = load_reference(path)
    assert len(run.events["content"][0]) == len(long_turn.strip())
    assert csv.field_size_limit() == limit  # process-wide state put back


def test_jsonl_bad_lines_are_skipped_unless_strict(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"turns": [{"speaker": "A", "text": "hi"}]}\nnot json\n'
                    '{"turns": []}\n{"turns": [{"speaker": "B", "text": "yo"}]}\n')
    run = load_reference(path)
    assert run.episodes.height == 2
    assert [s.split(":")[1].strip() for s in run.manifest["skipped"]["first"]] == \
        ["line 2", "line 3"]
    with pytest.raises(CorpusError, match="line 2: not JSON"):
        load_reference(path, strict=True)


def test_cli_analyze_and_export_report_skips_and_honour_strict(tmp_path):
    path = tmp_path / "spc.csv"
    path.write_bytes(_csv([GOOD, UNLABELLED, MARKDOWN], bom=True))
    out = simlab("analyze", str(path), "--no-plots", "--format", "md",
                 "--out", str(tmp_path / "an"))
    assert out.returncode == 0, out.stderr
    assert "skipped 1 malformed record(s)" in out.stderr and "line 5" in out.stderr
    assert "2 episodes" in out.stdout
    strict = simlab("analyze", str(path), "--strict", "--out", str(tmp_path / "an2"))
    assert strict.returncode == 2 and "line 5" in strict.stderr
    exported = simlab("export", str(path), "--format", "openai",
                      "--out", str(tmp_path / "x.jsonl"))
    assert exported.returncode == 0, exported.stderr
    assert "skipped 1 malformed record(s)" in exported.stderr
    assert simlab("export", str(path), "--format", "openai", "--strict",
                  "--out", str(tmp_path / "y.jsonl")).returncode == 2


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    path = tmp_path / "u.jsonl"
    record = json.dumps({"turns": [{"speaker": "A", "text": "one\u2028two"}]},
                        ensure_ascii=False)
    path.write_text(f"{record}\nnot json\n", encoding="utf-8")
    run = load_reference(path)
    assert run.events["content"].to_list() == ["one\u2028two"]
    assert run.manifest["skipped"]["first"][0].startswith(f"{path}: line 2:")
