"""Where simlab's bundled data lives: Hydra's ``conf/`` and the ``personas/`` sets.

In a source checkout (and an editable install) they are the project's top-level
folders. A wheel carries copies inside the package, under ``simlab/_data/`` (``setup.py``
copies them at build time), so ``pip install .`` followed by ``simlab`` in any directory
finds them. Code asks here instead of counting ``parents[N]``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_root() -> Path:
    """The folder that holds ``conf/`` and ``personas/``."""
    packaged = Path(str(files("simlab"))) / "_data"
    if (packaged / "conf").is_dir():
        return packaged
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "conf").is_dir():
        return checkout
    raise FileNotFoundError(
        f"simlab's bundled data is missing (looked in {packaged} and {checkout}); "
        "reinstall simlab: pip install --force-reinstall simlab")


def conf_dir() -> Path:
    """Hydra's primary config folder (``config.yaml`` and the group folders)."""
    return data_root() / "conf"


def personas_dir() -> Path:
    """The bundled persona sets, vocabulary and census tables."""
    return data_root() / "personas"
