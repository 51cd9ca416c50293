"""The notebooks are tests too (nbmake). Those that run the embedded model carry the
``embedded`` marker, so ``make test-fast`` (``-m "not embedded"``) leaves them out."""

from __future__ import annotations

import pytest

#: notebooks that run the embedded llama.cpp model
EMBEDDED = frozenset({"research_loop.ipynb"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in EMBEDDED and item.path.parent.name == "notebooks":
            item.add_marker(pytest.mark.embedded)
