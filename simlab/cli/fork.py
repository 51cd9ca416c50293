"""``simlab fork RUN_DIR --at-step K [--episode E …] [--intervene SPEC …] [overrides…]``.

A fork is a new run (:mod:`simlab.research.fork`): the parent's own overrides (from its
``.hydra/overrides.yaml``), then the given ones, plus ``fork.parent``, ``fork.at_step``
and ``fork.episodes``. It runs through the same Hydra job as ``simlab`` itself, so its
run directory, manifest, lock and resume command are an ordinary run's.
``--intervene`` appends one intervention to the parent's list, at step K unless it
says ``at``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from simlab.research.fork import inherited_overrides, override_key


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar (strings quoted, keys bare)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        # Hydra unescapes only backslashes before a quote (or the closing one), and
        # OmegaConf would resolve ${...}: escape exactly those
        text = re.sub(r"(\\+)(?='|$)", lambda m: m.group(1) * 2, value)
        return "'" + text.replace("'", "\\'").replace("${", "\\${") + "'"
    if value is None:
        return "null"
    return json.dumps(value)


_FIELD = re.compile(r"^[a-z_]+$")


def parse_value(text: str) -> Any:
    """A value written as YAML (``{kind: broadcast, text: ...}``) or in Hydra's compact
    override form (``{kind:broadcast,text:...}``, which YAML misreads as keys)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    items = value if isinstance(value, list) else [value]
    if all(isinstance(v, dict) and all(isinstance(k, str) and _FIELD.match(k) for k in v)
           for v in items) and items:
        return value
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return OverridesParser.create().parse_override(f"x={text}").value()
    except Exception as exc:  # Hydra's grammar errors
        raise ValueError(f"cannot read {text!r} as YAML or a Hydra value ({exc})") from None


def fork_overrides(parent: Path, at_step: int, episodes: list[str], overrides: list[str],
                   intervene: list[str], out: Path) -> list[str]:
    """The fork's whole override list."""
    args = inherited_overrides(parent, overrides,
                               frozenset({"interventions"}) if intervene else frozenset())
    if intervene:
        manifest = json.loads((parent / "manifest.json").read_text())
        listed = [o for o in overrides if override_key(o) == "interventions"]
        base = (parse_value(listed[-1].split("=", 1)[1]) if listed
                else manifest.get("config", {}).get("interventions") or [])
        added = []
        for i, text in enumerate(intervene):
            spec = parse_value(text)
            if not isinstance(spec, dict):
                raise ValueError(f"--intervene {i + 1}: must be a mapping like "
                                 f"'{{kind: broadcast, text: ...}}', got {text!r}")
            added.append({"at": at_step, **spec})
        args = [a for a in args if override_key(a) != "interventions"]
        args.append(f"interventions={hydra_value([*base, *added])}")
    args += [f"fork.parent={hydra_value(str(parent))}", f"fork.at_step={at_step}",
             f"fork.episodes={hydra_value(episodes)}", f"hydra.run.dir={hydra_value(str(out))}"]
    return args


def main(argv: list[str]) -> list[str] | int:
    """The fork's whole override list for ``simlab`` to run, or an exit code."""
    parser = argparse.ArgumentParser(
        prog="simlab fork", description="Replay a stored run up to a step, then continue it "
        "under new settings or interventions, as a new run.")
    parser.add_argument("run_dir", help="the parent run directory")
    parser.add_argument("--at-step", type=int, required=True,
                        help="the first step that may differ (K); steps before it replay")
    parser.add_argument("--episode", action="append", default=[],
                        help="an episode id to fork (repeatable; default: all)")
    parser.add_argument("--intervene", action="append", default=[], metavar="SPEC",
                        help="an intervention (YAML mapping) added at step K, e.g. "
                        "'{kind: broadcast, text: ..., audience: group:gender=female}'")
    parser.add_argument("--out", help="the fork's run directory "
                        "(default: beside the parent, <parent>-fork<K>-<time>)")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-") or "=" not in o]
    if bad:
        parser.error(f"not an override (key=value): {bad[0]}")
    parent = Path(args.run_dir).resolve()
    if not (parent / "manifest.json").is_file():
        print(f"simlab fork: {parent}: not a run directory (no manifest.json)",
              file=sys.stderr)
        return 2
    if args.at_step < 0:
        parser.error("--at-step: must be >= 0")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out).resolve() if args.out else \
        parent.with_name(f"{parent.name}-fork{args.at_step}-{stamp}")
    try:
        full = fork_overrides(parent, args.at_step, args.episode, overrides, args.intervene,
                              out)
    except (ValueError, yaml.YAMLError) as exc:
        print(f"simlab fork: {exc}", file=sys.stderr)
        return 2
    cwd = json.loads((parent / "manifest.json").read_text()).get("cwd")
    if cwd and Path(cwd).is_dir():  # relative paths in the parent's config resolve there
        os.chdir(cwd)
    return full
