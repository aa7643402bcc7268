"""Repository-level pytest setup: notebooks collected by nbval carry the ``notebooks`` marker.

Living at the root also puts the repository on ``sys.path``, so ``tests.conftest`` helpers
import the same way whether pytest is run as ``pytest`` or ``python -m pytest``.
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
