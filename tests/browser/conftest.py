"""Fixtures of the browser suite: Debian's Chromium through Playwright, and real JupyterLab and
Voila servers on 127.0.0.1 that the suite starts and stops itself (by their process group)."""

from __future__ import annotations

import json
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    PageWatch,
    Server,
    free_port,
    jupyter_env,
    lab_settings,
)


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts() -> None:
    """Start with an empty artifacts/browser, so no screenshot there is from an earlier run."""
    if ARTIFACTS.is_dir():
        for path in ARTIFACTS.iterdir():
            if path.is_file():
                path.unlink()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def browser_context() -> Iterator[Any]:
    """One headless Chromium with a fresh profile, shared by the suite's pages."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser-deps` installs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = Path(tempfile.mkdtemp(prefix="camwidgets-chromium-"))
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1500, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def new_page(browser_context: Any) -> Iterator[Callable[..., tuple[Any, PageWatch]]]:
    """Open pages that are watched for errors (``server``'s log goes into failure messages);
    closed after the test."""
    pages: list[Any] = []

    def make(name: str, server: Server | None = None) -> tuple[Any, PageWatch]:
        page = browser_context.new_page()
        pages.append(page)
        return page, PageWatch(page, name, server)

    yield make
    for page in pages:
        page.close()


@dataclass
class Lab:
    """A running JupyterLab: where its notebooks live and how to open them."""

    server: Server
    root: Path
    token: str

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def url(self, notebook: str) -> str:
        """The URL that opens ``notebook`` (relative to the root) in the Lab UI."""
        # reset: start from an empty workspace, never from notebooks a previous page had open.
        return f"{self.base}/lab/tree/{notebook}?reset&token={self.token}"


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A JupyterLab server with isolated config/settings/runtime dirs and token auth."""
    base = Path(tempfile.mkdtemp(prefix="camwidgets-lab-"))
    root, settings, workspaces = base / "root", base / "settings", base / "workspaces"
    for path in (root, settings, workspaces):
        path.mkdir()
    lab_settings(settings)
    env = jupyter_env(base)
    # No build check on page load (it runs `jupyter lab build --check` work on a busy machine).
    page_config = Path(env["JUPYTER_CONFIG_DIR"]) / "labconfig" / "page_config.json"
    page_config.parent.mkdir(parents=True, exist_ok=True)
    page_config.write_text(json.dumps({"buildCheck": False, "buildAvailable": False}))
    token = secrets.token_hex(16)
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        # window.jupyterapp: run all cells through Lab's own command, not by clicking menus.
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=",
        "--ServerApp.terminals_enabled=False",
    ]
    server = Server("jupyterlab", command, port, ARTIFACTS / "jupyterlab.log", env, root)
    server.start()
    try:
        server.wait_listening()
        yield Lab(server, root, token)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Voila:
    """A running Voila (or ``camwidgets demo``) serving one notebook at its root URL."""

    server: Server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/"


def start_voila(command: list[str], port: int, name: str, base: Path) -> Server:
    """Start a Voila-serving command with isolated Jupyter dirs; ready once it accepts TCP."""
    server = Server(name, command, port, ARTIFACTS / f"{name}.log", jupyter_env(base), REPO)
    server.start()
    try:
        server.wait_listening()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def shapes_engine() -> Any:
    """The engine on the zoo's shapes model, computed in the test process: the reference the
    numbers drawn in the browser are compared with."""
    from camwidgets import GradCAM, zoo

    bundle = zoo.load("shapes")
    return GradCAM(bundle.model, classes=bundle.classes, transform=bundle.transform)


@pytest.fixture(scope="module")
def demo() -> Iterator[Voila]:
    """``camwidgets demo --port P``, run as ``python -m camwidgets.cli`` so that it works
    whether or not the package is installed (it starts Voila as its child)."""
    demo_notebook = REPO / "camwidgets" / "demo" / "app.ipynb"
    if not demo_notebook.exists():
        pytest.fail(f"the demo notebook {demo_notebook} does not exist")
    base = Path(tempfile.mkdtemp(prefix="camwidgets-voila-"))
    port = free_port()
    # No token: the page is opened at the bare URL (test_demo.py checks the token itself).
    command = [sys.executable, "-m", "camwidgets.cli", "demo", "--port", str(port)]
    command += ["--no-browser", "--no-token"]
    server = start_voila(command, port, "voila-demo", base)
    try:
        yield Voila(server)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
