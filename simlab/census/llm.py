"""Optional LLM passes over census personas: a plausibility judge and a describer.

After PERSONA (SynthLabs), a language model reviews each structured configuration and
rejects implausible ones (they removed about 8.5%); rejects are redrawn from the census.
The describer writes a short natural-language bio, which is *never allowed to contradict*
the structured attributes: :func:`contradictions` checks age, gender, state, marital
status, education, employment and income, a contradicting bio is re-asked once with the
problems named, and then replaced by the template text (``description_source``).
Both go through the run's backend, so the response cache makes re-runs free; per-call
seeds are derived from the source record, so a persona gets the same answer in any run.
"""

from __future__ import annotations

import re
import zlib
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from simlab.backends.base import ChatRequest, Message
from simlab.census.render import personas_frame

if TYPE_CHECKING:
    from simlab.backends.base import Backend
    from simlab.census.population import CensusSpec
    from simlab.census.sampler import CensusSample, CensusSampler

PROMPT_VERSION = "census-llm-v1"
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"plausible": {"type": "boolean"},
                   "reason": {"type": "string", "maxLength": 200}},
    "required": ["plausible", "reason"],
}


def facts(row: dict[str, Any]) -> str:
    """The structured attributes as plain lines, the only facts a model may use."""
    lines = [f"Age: {row['AGEP']}", f"Gender: {row['gender']}", f"State: {row['state']}",
             f"Education: {row['education']}", f"Marital status: {row['marital_status']}",
             f"Employment: {row['employment_status']}"]
    if row.get("occupation") and row.get("ESR") in (1, 2, 4, 5):
        lines.append(f"Occupation: {row['occupation']}")
    if row.get("PINCP") is not None:
        lines.append(f"Income last year: {row['income']}")
    if row.get("military_service"):
        lines.append(f"Military service: {row['military_service']}")
    return "\n".join(lines)


def _seed(row: dict[str, Any], salt: str) -> int:
    key = f"{PROMPT_VERSION}|{salt}|{row['SERIALNO']}|{row['SPORDER']}"
    return zlib.crc32(key.encode()) & 0x7FFFFFFF


def _verdicts(frame: pl.DataFrame, backend: Backend) -> np.ndarray:
    """True where the judge calls the persona implausible (errors count as plausible)."""
    rows = list(frame.iter_rows(named=True))
    requests = [ChatRequest(
        messages=(Message("system", "You review synthetic survey respondents. Say whether "
                          "this combination of facts is plausible for a real US resident. "
                          "Reply with JSON only."),
                  Message("user", facts(r))),
        max_tokens=80, temperature=0.0, seed=_seed(r, "validate"), json_schema=VERDICT_SCHEMA,
        tag=f"census-validate:{r['id']}") for r in rows]
    out = np.zeros(len(rows), dtype=bool)
    for i, resp in enumerate(backend.generate(requests)):
        if resp.ok and isinstance(resp.parsed, dict):
            out[i] = resp.parsed.get("plausible") is False
    return out


def validate_with_llm(frame: pl.DataFrame, sample: CensusSample, backend: Backend,
                      sampler: CensusSampler, spec: CensusSpec, rng: np.random.Generator,
                      kwargs: dict[str, Any], max_rounds: int = 3,
                      ) -> tuple[pl.DataFrame, CensusSample, int]:
    """Drop judged-implausible personas and redraw them, up to ``max_rounds``."""
    rejected_total = 0
    for _ in range(max_rounds):
        bad = _verdicts(frame, backend)
        if not bad.any():
            break
        rejected_total += int(bad.sum())
        keep = frame.filter(pl.Series(~bad))
        redraw = sampler.sample(int(bad.sum()), rng, spec.filter, **kwargs)
        fresh = personas_frame(redraw.records, sampler.table.codebook, rng,
                               id_prefix=spec.id_prefix)
        frame = pl.concat([keep, fresh], how="vertical_relaxed")
        sample.draws += redraw.draws
        sample.rejected_draws += redraw.rejected_draws
        sample.rejected.update(redraw.rejected)
    width = max(6, len(str(frame.height)))
    frame = frame.with_columns(
        (pl.lit(f"{spec.id_prefix}-") + pl.int_range(1, frame.height + 1).cast(pl.String)
         .str.zfill(width)).alias("id"))
    sample.rejected["llm_validator"] += rejected_total
    return frame, sample, rejected_total


@cache
def _state_names() -> tuple[str, ...]:
    """Every state name, for "mentions another state" (read once, lazily)."""
    from simlab.census.codebook import load_codebook

    return tuple(v.split("/")[0] for v in load_codebook().columns["STATE"]["values"].values())


_FEMALE = re.compile(r"\b(she|her|hers|herself|woman|mother|wife)\b", re.I)
_MALE = re.compile(r"\b(he|him|his|himself|man|father|husband)\b", re.I)
_AGE = re.compile(r"\b(\d{1,3})[- ](?:years?|yrs?)[- ]old\b|\baged? (\d{1,3})\b", re.I)
_NOT_WORKING = re.compile(r"\b((is|has been|was) retired|unemployed|out of work|jobless)\b",
                         re.I)
_MONEY = re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)\s*(k|thousand|million)?", re.I)


def contradictions(text: str, row: dict[str, Any]) -> list[str]:
    """Ways ``text`` contradicts the structured attributes (empty = consistent)."""
    issues = []
    for m in _AGE.finditer(text):
        age = int(m.group(1) or m.group(2))
        if age != row["AGEP"]:
            issues.append(f"says age {age}, but the person is {row['AGEP']}")
    if row["gender"] == "woman" and _MALE.search(text) and not _FEMALE.search(text):
        issues.append("refers to the person as male, but she is a woman")
    if row["gender"] == "man" and _FEMALE.search(text) and not _MALE.search(text):
        issues.append("refers to the person as female, but he is a man")
    others = [s for s in _state_names() if s != row["state"]
              and re.search(rf"\b{re.escape(s)}\b", text)
              and not (s == "Virginia" and "West Virginia" in text)]
    if others and row["state"] not in text:
        issues.append(f"places the person in {others[0]}, not {row['state']}")
    married = row["MAR"] == 1
    if not married and re.search(r"\b(his wife|her husband|is married)\b", text, re.I):
        issues.append(f"says married, but the person is {row['marital_status'].lower()}")
    if married and re.search(r"\b(single|never married|unmarried)\b", text, re.I):
        issues.append("says single, but the person is married")
    schl = row.get("SCHL") or 0
    if schl < 24 and re.search(r"\b(phd|ph\.d|doctorate|doctoral)\b", text, re.I):
        issues.append(f"claims a doctorate, but education is {row['education']}")
    if schl < 21 and re.search(r"\b(bachelor'?s|college degree|master'?s)\b", text, re.I):
        issues.append(f"claims a degree, but education is {row['education']}")
    working = row.get("ESR") in (1, 2, 4, 5)
    if working and _NOT_WORKING.search(text):
        issues.append("says not working, but the person is employed")
    income = row.get("PINCP")
    amounts = [_dollars(m) for m in _MONEY.finditer(text)]
    if (amounts and income is not None and income > 0
            and not any(abs(a - income) <= 0.25 * income for a in amounts)):
        issues.append(f"states income ${amounts[0]:,.0f}, but it is {row['income']}")
    return issues


def _dollars(m: re.Match[str]) -> float:
    value = float(m.group(1).replace(",", ""))
    unit = (m.group(2) or "").lower()
    return value * (1e3 if unit in ("k", "thousand") else 1e6 if unit == "million" else 1)


def _describe_request(row: dict[str, Any], extra: str = "", attempt: int = 0) -> ChatRequest:
    ask = ("Write two or three sentences describing this person in the third person. "
           "Use only these facts; do not invent an age, place, job, family or income that "
           "differs from them.\n" + facts(row))
    messages = [Message("system", "You write short, factual character descriptions."),
                Message("user", ask)]
    if extra:
        messages.append(Message("user", f"Your description was wrong: {extra}. Rewrite it."))
    return ChatRequest(messages=tuple(messages), max_tokens=120, temperature=0.7,
                       seed=_seed(row, f"describe{attempt}"), tag=f"census-describe:{row['id']}")


def describe(frame: pl.DataFrame, backend: Backend, max_reasks: int = 1) -> pl.DataFrame:
    """Replace template descriptions by checked LLM ones where they hold up."""
    rows = list(frame.iter_rows(named=True))
    texts = [r["description"] for r in rows]
    source = ["template"] * len(rows)
    issues: list[str | None] = [None] * len(rows)
    pending = list(range(len(rows)))
    notes = [""] * len(rows)
    for attempt in range(max_reasks + 1):
        if not pending:
            break
        responses = backend.generate([_describe_request(rows[i], notes[i], attempt)
                                      for i in pending])
        retry = []
        for i, resp in zip(pending, responses, strict=True):
            text = resp.text.strip() if resp.ok else ""
            found = contradictions(text, rows[i]) if text else [resp.error or "empty reply"]
            if not found:
                texts[i], source[i], issues[i] = text, "llm", None
            else:
                notes[i], issues[i] = "; ".join(found), "; ".join(found)
                retry.append(i)
        pending = retry
    return frame.with_columns(pl.Series("description", texts, dtype=pl.String),
                              pl.Series("description_source", source, dtype=pl.String),
                              pl.Series("description_issues", issues, dtype=pl.String))
