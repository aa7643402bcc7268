"""Shared fixtures: the shipped zoo models, loaded once per session."""

from __future__ import annotations

import pytest

from camwidgets.zoo import ZooModel, load


@pytest.fixture(scope="session")
def shapes() -> ZooModel:
    return load("shapes")


@pytest.fixture(scope="session")
def shortcut() -> ZooModel:
    return load("shortcut")
