"""``simlab scenarios [NAME]``: the installed scenarios, or one scenario's settings."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from enum import Enum
from typing import Any


def moved_key(arg: str) -> str | None:
    """The error for an override of a key that moved (``scenario.max_steps=…``)."""
    from simlab.scheduler.settings import MOVED_FROM_SCENARIO

    key = arg.split("=", 1)[0].lstrip("+~")
    parts = key.split(".")
    if len(parts) >= 2 and parts[0] == "scenario" and parts[1] in MOVED_FROM_SCENARIO:
        new = ".".join(["engine", *parts[1:]])
        return (f"{key}: engine settings are their own config group now; "
                f"write {new}=… instead")
    return None


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "???"
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [v.value if isinstance(v, Enum) else v for v in value]
    return value


def main(argv: list[str]) -> int:
    from simlab.registry import UnknownScenario, get_spec, scenario_specs

    p = argparse.ArgumentParser(prog="simlab scenarios", description=__doc__)
    p.add_argument("name", nargs="?", help="show this scenario's settings and defaults")
    args = p.parse_args(argv)
    if args.name is None:
        specs = scenario_specs()
        width = max((len(n) for n in specs), default=8)
        print("Installed scenarios (run one with `simlab scenario=NAME`):")
        for name, spec in specs.items():
            extra = f" [population: {spec.default_population}]" if spec.default_population else ""
            print(f"  {name:<{width}}  {spec.describe()}{extra}")
        return 0
    try:
        spec = get_spec(args.name)
    except UnknownScenario as exc:
        print(f"simlab scenarios: {exc}", file=sys.stderr)
        return 2
    print(f"{spec.name}: {spec.describe()}")
    print(f"  class:  {spec.cls.__module__}.{spec.cls.__qualname__}")
    print(f"  config: {spec.config.__module__}.{spec.config.__qualname__}")
    if spec.default_population:
        print(f"  population: {spec.default_population}")
    for key, value in spec.engine.items():
        print(f"  engine.{key}: {value}")
    print("  settings (scenario.KEY=VALUE):")
    for f in dataclasses.fields(spec.config):
        print(f"    {f.name} = {_default(f)!r}")
    return 0
