"""requirements.lock (what ``make install`` installs with uv) pins what pyproject.toml asks for.

A dependency added to pyproject.toml without re-running ``make lock`` would still be installed
(the Makefile installs the project with its extras after the lock), but unpinned and slowly;
this test says which one is missing and how to fix it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("test", "bench", "demo", "docs")  # the ones the Makefile installs


def _pins() -> dict[str, list[Requirement]]:
    """Every pinned line of the lock, by canonical name (markers may pin one per Python)."""
    pins: dict[str, list[Requirement]] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "-")):
            requirement = Requirement(line)
            pins.setdefault(canonicalize_name(requirement.name), []).append(requirement)
    return pins


def test_lock_pins_every_requirement_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = _pins()
    for requirement in wanted:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in requirements.lock: run `make lock`"
        for pin in pins[name]:
            (spec,) = pin.specifier
            assert spec.operator == "==", f"{pin} is not an exact pin"
            assert requirement.specifier.contains(Version(spec.version), prereleases=True), (
                f"requirements.lock pins {pin}, outside {requirement}: run `make lock`"
            )
