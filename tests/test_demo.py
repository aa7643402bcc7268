"""The demo: the app notebook builds its panel, and ``camwidgets demo`` serves it safely.

The notebook is executed as Voila would run it, in a fresh kernel, with one extra cell appended
that checks the explorer it built: a panel explaining the first scene, with a picker over the
gallery, agreeing with an engine of its own.

The server tests start the real command (real Voila, on a free loopback port) and check what a
browser or an attacker's page would meet: the token, the Host check, idle kernels culled, and
no Voila or kernel process left after SIGTERM or Ctrl+C to the command.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import psutil
import pytest

from camwidgets.cli import main
from camwidgets.cli.demo import voila_command

ROOT = Path(__file__).resolve().parents[1]
URL = re.compile(r"open (http://127\.0\.0\.1:(\d+)/(?:\?token=([\w-]+))?)")

APP = Path(__file__).resolve().parents[1] / "camwidgets" / "demo" / "app.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CHECK = """\
import json
import torch
from camwidgets import GradCAM

reference = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
expected = reference.explain(scenes[0].image)
shown = explorer.result
picker = explorer.panel.controls.image
assert shown is not None
assert shown.layer == reference.default_layer and shown.target == expected.target
assert not shown.counterfactual
scale = float(expected.heatmap.max()) or 1.0
assert torch.allclose(shown.heatmap, expected.heatmap, rtol=1e-5, atol=1e-6 * scale)
print(json.dumps({
    "images": len(picker.options),
    "picker_visible": picker.layout.display != "none",
    "two_objects": all(len(s.labels) == 2 for s in scenes),
    "root": explorer.panel.root.model_id,
}))
"""


@pytest.mark.notebooks
def test_demo_app_runs_and_builds_the_panel(tmp_path: Path) -> None:
    nbclient = pytest.importorskip("nbclient")
    assert APP.is_file(), f"{APP} is missing"
    nb = nbformat.read(APP, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "the demo notebook must be committed without outputs"
    )
    assert "widgets" not in nb.metadata, "the demo notebook must not carry widget state"
    nb.cells.append(nbformat.v4.new_code_cell(CHECK))

    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError on any error in any cell

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    views = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1, f"expected the panel shown once, got {len(views)} widget views"
    report = json.loads(nb.cells[-1].outputs[-1].text)
    assert views[0].data[WIDGET_VIEW]["model_id"] == report["root"]
    assert report["images"] >= 6 and report["picker_visible"] and report["two_objects"]


# -- the command -------------------------------------------------------------------------------


def test_command_line_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--open", "--no-browser"]) == 2
    assert "not allowed with" in capsys.readouterr().err
    assert main(["demo", "--port", "70000"]) == 2
    assert main(["demo", "--allow-host", "192.168.1.7"]) == 2
    assert "an address, not a name" in capsys.readouterr().err
    command = voila_command("voila", 8123, cull_idle=120, token=True, hosts=["demo.lan"])
    assert "--Voila.ip=127.0.0.1" in command and "--port=8123" in command
    # The token travels in the environment, never in the process list.
    assert "--Voila.auto_token=True" in command
    assert not any(c.startswith(("--token", "--Voila.token")) for c in command)
    assert "--MappingKernelManager.cull_idle_timeout=120" in command
    settings = next(c for c in command if c.startswith("--Voila.tornado_settings="))
    assert "'allow_remote_access': False" in settings and "'demo.lan'" in settings
    open_command = voila_command("voila", 8123, cull_idle=0, token=False, hosts=[])
    assert not any("cull" in c or "token" in c for c in open_command)


class Demo:
    """``camwidgets demo`` running in its own session, its output read line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "camwidgets.cli", "demo", "--port", "0", "--no-browser", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.seen: set[int] = set()
        assert self.process.stdout is not None
        for line in self.process.stdout:
            match = URL.search(line)
            if match:
                self.url, self.port, self.token = (
                    match.group(1),
                    int(match.group(2)),
                    match.group(3),
                )
                break
        else:
            raise AssertionError(f"camwidgets demo exited with {self.process.wait()}")
        # Keep reading so the command never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def processes(self) -> list[psutil.Process]:
        """Voila and its kernels: every process below the command (remembered for the end)."""
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        self.seen.update(p.pid for p in found)
        return found

    def kernels(self) -> list[psutil.Process]:
        """The kernel processes now running."""
        kernels = []
        for proc in self.processes():
            try:
                if "ipykernel" in " ".join(proc.cmdline()):
                    kernels.append(proc)
            except psutil.NoSuchProcess:
                continue
        return kernels

    def get(self, path: str, host: str | None = None, timeout: float = 240) -> int:
        """Status of a GET on the server, with the given Host header."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Host": host or f"127.0.0.1:{self.port}"}
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            self.body = response.read().decode("utf-8", "replace")
            return response.status
        finally:
            connection.close()

    def alive(self) -> list[int]:
        """Processes of this demo still running (zombies count as gone)."""
        left = []
        for pid in self.seen:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    left.append(pid)
            except psutil.NoSuchProcess:
                continue
        return left

    def close(self) -> None:
        """Whatever the test did: stop the command, then kill anything of it left."""
        self.processes()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for pid in self.alive():
            try:
                os.killpg(pid, signal.SIGKILL) if os.getpgid(pid) == pid else os.kill(pid, 9)
            except ProcessLookupError:
                continue


@pytest.fixture
def demo_factory() -> Iterator[type[Demo]]:
    started: list[Demo] = []

    class Tracked(Demo):
        def __init__(self, *args: str) -> None:
            super().__init__(*args)
            started.append(self)

    yield Tracked
    for demo in started:
        demo.close()


def _wait(condition: object, timeout: float) -> bool:
    """Poll ``condition()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_token_host_check_and_idle_culling(demo_factory: type[Demo]) -> None:
    # No pre-started kernels here (--pool 0): the test counts the page's own kernel.
    demo = demo_factory("--cull-idle", "3", "--pool", "0")
    assert demo.token and len(demo.token) >= 24
    missing = "/api/kernels/00000000-0000-0000-0000-000000000000"
    token = f"?token={demo.token}"
    # A DNS-rebinding page sends its own host name: refused even with the token.
    assert demo.get(f"/{token}", host="evil.example") == 403
    assert demo.get(f"/{token}", host=f"evil.example:{demo.port}") == 403
    assert demo.get(f"{missing}{token}", host="localhost.evil.example") == 403
    # Without the token nothing but a way to the login page; with it the API answers.
    assert demo.get(missing) == 403
    assert demo.get("/") in (302, 303)
    assert demo.get(f"{missing}{token}", host=f"localhost:{demo.port}") == 404
    assert demo.kernels() == []
    # The app itself: the page carries the panel's widget view, and a kernel was started.
    assert demo.get(f"/{token}") == 200
    assert "application/vnd.jupyter.widget-view+json" in demo.body
    assert _wait(lambda: demo.kernels(), 10), "no kernel behind the page"
    # Nobody connects to it: culled after 3 s idle (checked every second or so).
    assert _wait(lambda: not demo.kernels(), 60), "the idle kernel was not culled"
    assert demo.process.poll() is None


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl+C"])
def test_signal_stops_voila_and_its_kernels(demo_factory: type[Demo], sig: signal.Signals) -> None:
    demo = demo_factory("--no-token")
    # A page load starts a kernel; do not wait for the whole notebook to run.
    threading.Thread(target=lambda: _quiet(demo.get, "/"), daemon=True).start()
    assert _wait(lambda: demo.kernels(), 60), "no kernel started"
    assert len(demo.processes()) >= 2  # Voila and a kernel
    os.kill(demo.process.pid, sig)  # the command only, not its process group
    assert demo.process.wait(timeout=60) == 0
    assert _wait(lambda: not demo.alive(), 15), f"left running: {demo.alive()}"
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", demo.port, timeout=2).connect()


def _quiet(call: object, *args: object) -> None:
    """Run ``call``, ignoring the connection error that stopping the server causes (a refused
    or reset connection, or a page cut off mid-read)."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        call(*args)  # type: ignore[operator]
