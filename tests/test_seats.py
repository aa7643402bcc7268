"""A class at once: the demo's pool options, its seats, and what a page past the last seat says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from camwidgets.cli import main
from camwidgets.cli.demo import voila_command
from camwidgets.cli.seats import (
    MAX_VARIABLE,
    MB_PER_STUDENT,
    RESERVE_MB,
    SEATS_VARIABLE,
    seats_for_memory,
    take_seat,
)

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "camwidgets" / "demo" / "app.ipynb"


def test_pool_turns_on_voilas_preheated_kernels() -> None:
    command = voila_command("voila", 8123, cull_idle=0, token=False, hosts=[], pool=8)
    assert "--VoilaConfiguration.preheat_kernel=True" in command
    assert "--VoilaConfiguration.default_pool_size=8" in command
    assert "--VoilaKernelManager.fill_delay=60" in command
    plain = voila_command("voila", 8123, cull_idle=0, token=False, hosts=[])
    assert not any("preheat" in c or "pool" in c for c in plain)


def test_voila_knows_the_options_we_pass() -> None:
    # The option names are Voila's own (read from its source); a renamed trait would be
    # ignored with a warning, so check them against the installed Voila.
    from voila.configuration import VoilaConfiguration
    from voila.voila_kernel_manager import voila_kernel_manager_factory

    traits = VoilaConfiguration.class_trait_names(config=True)
    assert "preheat_kernel" in traits and "default_pool_size" in traits
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    manager = voila_kernel_manager_factory(AsyncMappingKernelManager, True, 2)
    assert manager.__name__ == "VoilaKernelManager"
    assert "fill_delay" in manager.class_trait_names(config=True)


def test_help_says_how_many_students_fit(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    fits = int((memory_mb - RESERVE_MB) // MB_PER_STUDENT)
    assert f"about {MB_PER_STUDENT} MB" in text and f"holds about {fits} students" in text
    assert "--pool" in text and "--students" in text


def test_a_pool_larger_than_the_seats_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--pool", "5", "--students", "3", "--no-browser"]) == 2
    assert "--pool 5 is more than --students 3" in capsys.readouterr().err


def test_seats_for_memory() -> None:
    assert seats_for_memory(RESERVE_MB + 10 * MB_PER_STUDENT + 1) == 10
    assert seats_for_memory(100) == 1  # a tiny machine still serves one student


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_seats_are_taken_by_live_kernels_and_freed_by_dead_ones(tmp_path: Path) -> None:
    env = {SEATS_VARIABLE: str(tmp_path), MAX_VARIABLE: "2"}
    others = [_sleeper(), _sleeper()]
    try:
        for other in others:  # two live kernels hold the two seats
            (tmp_path / str(other.pid)).write_text("")
        message = take_seat(env)
        assert message is not None and "This machine is full: it serves 2 students" in message
        assert not (tmp_path / str(os.getpid())).exists()  # the seat was given back
        others[0].kill()
        others[0].wait()
        assert take_seat(env) is None  # a dead kernel's seat is free again
        assert (tmp_path / str(os.getpid())).exists()
    finally:
        for other in others:
            other.kill()
            other.wait()
    assert take_seat({}) is None  # outside the demo there is no limit


@pytest.mark.notebooks
def test_the_app_says_full_instead_of_loading(tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    import nbformat

    nb = nbformat.read(APP, as_version=4)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import sys\nprint('FULL' if full else 'SEATED', 'torch' in sys.modules)"
        )
    )
    seats = tmp_path / "seats"
    seats.mkdir()
    other = _sleeper()
    (seats / str(other.pid)).write_text("")
    env = {SEATS_VARIABLE: str(seats), MAX_VARIABLE: "1", "PYTHONPATH": str(ROOT)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        )
        client.execute()
    finally:
        other.kill()
        other.wait()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    shown = " ".join(str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "This machine is full: it serves 1 students" in shown
    assert outputs[-1]["text"].strip() == "FULL False"  # no torch, no model, no panel
