"""Build hook: the wheel carries ``conf/`` and ``personas/`` as package data.

Everything else is in ``pyproject.toml``. The two folders stay at the top of the source
tree (the project's layout); ``build_py`` copies them to ``simlab/_data/`` in the build,
where :mod:`simlab.resources` finds them in an installed simlab.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("conf", "personas")


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the source tree itself
            return
        root = Path(__file__).resolve().parent
        for name in DATA_DIRS:
            target = Path(self.build_lib) / "simlab" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(root / name, target,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithData})
