"""The one way to compose simlab's Hydra config outside ``simlab`` itself.

Subcommands (``analyze --judge``, ``population``), notebooks and tests all compose
through :func:`compose`, so they see exactly what a run would: the schemas, every
installed scenario, and the bundled ``conf/`` (wherever simlab is installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from simlab.resources import conf_dir


def compose(overrides: Sequence[str] = (), *, config_dir: str | Path | None = None
            ) -> DictConfig:
    """The composed run config for ``overrides`` (Hydra override syntax)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from simlab.config import register_configs

    register_configs()
    folder = str(Path(config_dir).resolve()) if config_dir else str(conf_dir())
    with initialize_config_dir(config_dir=folder, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
