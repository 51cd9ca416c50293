"""ACS PUMS codes → readable labels, and the grouped recodes simlab reports on.

The Census codebook labels are written for analysts ("MGR-Chief Executives And
Legislators", "Civilian employed, at work"). Personas need words a person would say
("Chief executive", "Employed"), so the bundled codebook keeps the official label *and* a
readable one per code; the raw ACS code always stays next to it, so any persona can be
traced back to its record.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from simlab.personas.loader import PERSONA_DATA_DIR

#: The person columns simlab keeps (ACS names). Codes are integers except the ids and
#: ``STATE``/``PUMA`` (zero-padded strings, as in the PUMS files).
ID_COLUMNS = ("SERIALNO", "SPORDER", "STATE", "PUMA")
CODE_COLUMNS = (
    "AGEP", "SEX", "RAC1P", "HISP", "CIT", "NATIVITY", "ENG", "SCHL", "FOD1P", "MAR", "ESR",
    "INDP", "OCCP", "COW", "WKHP", "WKWN", "JWTRNS", "PINCP", "WAGP", "POVPIP", "DIS",
    "HICOV", "MIL",
)
#: Columns the California/Texas records carry in the 2024 file; the rest are imputed.
CA_TX_COLUMNS = ("SERIALNO", "SPORDER", "STATE", "PUMA", "PWGTP", "AGEP", "RAC1P", "HISP",
                 "SCHL", "SEX", "CIT", "DIS")
#: Columns a user-supplied PUMS file must have (the rest are optional).
REQUIRED_COLUMNS = ("SERIALNO", "SPORDER", "STATE", "PWGTP", "AGEP", "SEX", "RAC1P", "HISP",
                    "SCHL", "MAR", "ESR", "OCCP", "PINCP")
#: Numeric (not categorical) columns: no code lookup, only range checks.
NUMERIC_COLUMNS = ("AGEP", "WKHP", "WKWN", "JWMNP", "PINCP", "WAGP", "POVPIP", "PWGTP")

_OCC_GROUPS = {
    "MGR": "Management", "BUS": "Business operations", "FIN": "Finance",
    "CMM": "Computer and mathematical", "ENG": "Architecture and engineering",
    "SCI": "Science", "CMS": "Community and social service", "LGL": "Legal",
    "EDU": "Education", "ENT": "Arts, media and sports", "MED": "Healthcare practitioners",
    "HLS": "Healthcare support", "PRT": "Protective service", "EAT": "Food preparation",
    "CLN": "Cleaning and maintenance", "PRS": "Personal care", "SAL": "Sales",
    "OFF": "Office and administrative support", "FFF": "Farming, fishing and forestry",
    "CON": "Construction", "EXT": "Extraction", "RPR": "Installation and repair",
    "PRD": "Production", "TRN": "Transportation", "MIL": "Military",
}
# Words ending in "s" that are not plurals of a job title ("Sales", "Systems" …).
_KEEP_S = frozenset((
    "sales", "services", "operations", "systems", "materials", "goods", "arts", "sciences",
    "products", "relations", "affairs", "communications", "economics", "physics",
    "statistics", "athletics", "mathematics", "resources", "logistics", "graphics",
    "plastics", "textiles", "surveys", "glass", "gas", "bus", "series", "species", "news",
    "works", "parts", "instruments", "fitness", "business", "wellness", "arms", "weapons",
    "locks", "boilers", "grounds", "foods", "crops", "forms", "means", "metals",
    "chemicals", "records", "devices", "repairs", "facilities", "others", "sports",
))


def _singular(word: str) -> str:
    core, tail = re.match(r"^(.*?)([,.;:]*)$", word).groups()  # type: ignore[union-attr]
    low = core.lower()
    if low in _KEEP_S or len(low) <= 3 or not low.endswith("s") or low.endswith(("ss", "us", "is")):
        return word
    if low.endswith(("sses", "ches", "shes", "xes")):
        return core[:-2] + tail
    if low.endswith("ies"):
        return core[:-3] + "y" + tail
    return core[:-1] + tail


def readable_occupation(label: str) -> str:
    """``"MED-Registered Nurses"`` → ``"Registered nurse"``: prefix dropped, singular,
    sentence case, and ``", All Other"`` / ``", Except …"`` qualifiers trimmed."""
    text = re.sub(r"^[A-Z]{3}-", "", label)
    text = re.sub(r",?\s*(All Other|Except\b.*|Including\b.*)$", "", text, flags=re.I).strip()
    words = ["/".join(_singular(p) for p in w.split("/")) for w in text.split()]
    out = " ".join(w if w.isupper() and len(w) > 1 else w.lower() for w in words)
    return out[:1].upper() + out[1:]


def occupation_group(label: str) -> str | None:
    m = re.match(r"^([A-Z]{3})-", label)
    return _OCC_GROUPS.get(m.group(1)) if m else None


# Readable labels for the small categorical columns (official labels are long).
_READABLE: dict[str, dict[str, str]] = {
    "SEX": {"1": "Male", "2": "Female"},
    "RAC1P": {"1": "White", "2": "Black", "3": "American Indian", "4": "Alaska Native",
              "5": "American Indian or Alaska Native", "6": "Asian",
              "7": "Native Hawaiian or Pacific Islander", "8": "Some other race",
              "9": "Two or more races"},
    "MAR": {"1": "Married", "2": "Widowed", "3": "Divorced", "4": "Separated",
            "5": "Never married"},
    "ESR": {"1": "Employed", "2": "Employed, not at work", "3": "Unemployed",
            "4": "Armed forces", "5": "Armed forces, not at work",
            "6": "Not in labor force"},
    "CIT": {"1": "US-born citizen", "2": "Citizen born in a US territory",
            "3": "Citizen born abroad to US parents", "4": "Naturalized citizen",
            "5": "Not a US citizen"},
    "MIL": {"1": "Active duty", "2": "Veteran", "3": "Reserves or National Guard training",
            "4": "Never served"},
    "COW": {"1": "Private-sector employee", "2": "Non-profit employee",
            "3": "Local government employee", "4": "State government employee",
            "5": "Federal government employee", "6": "Self-employed",
            "7": "Self-employed (incorporated)", "8": "Unpaid family worker",
            "9": "Unemployed, last worked 5+ years ago or never"},
    "SCHL": {"01": "No schooling", "02": "Preschool", "03": "Kindergarten",
             **{f"{c:02d}": f"Grade {c - 3}" for c in range(4, 12)},
             "12": "Some high school", "13": "Some high school", "14": "Some high school",
             "15": "Some high school", "16": "High school diploma", "17": "GED",
             "18": "Some college", "19": "Some college", "20": "Associate's degree",
             "21": "Bachelor's degree", "22": "Master's degree",
             "23": "Professional degree", "24": "Doctorate"},
    "DIS": {"1": "Has a disability", "2": "No disability"},
    "HICOV": {"1": "Insured", "2": "Uninsured"},
    "NATIVITY": {"1": "Native-born", "2": "Foreign-born"},
    "ENG": {"1": "Very well", "2": "Well", "3": "Not well", "4": "Not at all"},
}


@dataclass(frozen=True)
class Codebook:
    """Per column: its official label and, per code, official and readable labels."""

    columns: dict[str, dict[str, Any]]

    def labels(self, column: str, readable: bool = True) -> dict[int, str]:
        """Code (as int) → label; the key form the tables use."""
        entry = self.columns[column]
        key = "readable" if readable and "readable" in entry else "values"
        return {int(k): v for k, v in entry[key].items() if k.strip().isdigit()}

    def codes(self, column: str) -> set[int] | None:
        """Valid codes of a categorical column; None for numeric ones (ranges only)."""
        if column in NUMERIC_COLUMNS or column not in self.columns:
            return None
        return {int(k) for k in self.columns[column]["values"] if k.strip().isdigit()}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.columns, indent=1, ensure_ascii=False) + "\n")


def build_codebook(official: dict[str, Any], columns: tuple[str, ...]) -> Codebook:
    """The bundled codebook: official entries for ``columns`` plus readable labels."""
    out: dict[str, dict[str, Any]] = {}
    for col in columns:
        if col not in official:
            continue
        entry = {"label": official[col]["label"], "values": dict(official[col]["values"])}
        if col in ("OCCP", "INDP"):
            entry["readable"] = {k: readable_occupation(v) for k, v in entry["values"].items()
                                 if k.isdigit()}
            if col == "OCCP":
                entry["group"] = {k: g for k, v in entry["values"].items()
                                  if k.isdigit() and (g := occupation_group(v))}
        elif col == "STATE":
            entry["readable"] = {k: v.split("/")[0] for k, v in entry["values"].items()}
            entry["postal"] = {k: v.split("/")[-1] for k, v in entry["values"].items()}
        elif col == "HISP":
            entry["readable"] = {k: ("Not Hispanic" if k == "01" else v)
                                 for k, v in entry["values"].items() if k.isdigit()}
        elif col in _READABLE:
            entry["readable"] = _READABLE[col]
        out[col] = entry
    return Codebook(out)


CENSUS_DATA_DIR = PERSONA_DATA_DIR / "census"


def default_codebook_path() -> Path:
    return CENSUS_DATA_DIR / "codebook.json"


@cache
def load_codebook(path: str | None = None) -> Codebook:
    """The bundled codebook (``personas/census/codebook.json``) or one at ``path``."""
    p = Path(path) if path else default_codebook_path()
    try:
        return Codebook(json.loads(p.read_text()))
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: census codebook not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: census codebook is not valid JSON ({exc})") from None
