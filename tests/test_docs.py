"""The "Adding a scenario" section of docs/architecture.md shows the toy package as it is,
so the steps a newcomer copies are the ones tests/test_plugin_scenario.py runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "toy_scenario"


def _section(title: str) -> str:
    text = (ROOT / "docs" / "architecture.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.DOTALL)


def test_adding_a_scenario_shows_the_toy_package_verbatim() -> None:
    section = _section("Adding a scenario")
    (code,) = _blocks(section, "python")
    assert code == (PLUGIN / "toy_scenario" / "__init__.py").read_text()
    (toml,) = _blocks(section, "toml")
    assert toml in (PLUGIN / "pyproject.toml").read_text()


def test_every_module_the_map_names_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:simlab|scenarios|tests)/[\w/]+\.py)`", text))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert named and not missing, missing
