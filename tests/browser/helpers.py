"""Browser-test plumbing: servers we start and stop ourselves, and waits that report page errors.

Every wait here polls a condition *and* the page's health (JavaScript errors, widget error views,
Python tracebacks in outputs, Voila's error text), so a broken page fails at once with what went
wrong instead of running into a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Generous per-wait limits; the suite as a whole stays well under three minutes.
SERVER_TIMEOUT = 90.0
PAGE_TIMEOUT = 120.0
UPDATE_TIMEOUT = 60.0

T = TypeVar("T")


class BrowserError(AssertionError):
    """What the page showed instead of what the test waited for."""


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now (the servers refuse to retry others)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process we started in its own process group, with its output in a log file."""

    name: str
    command: list[str]
    port: int
    log: Path
    env: dict[str, str]
    cwd: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> Server:
        """Start the process in a new session (so stop() can end it and all its children)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return re.sub(r"\x1b\[[0-9;]*m", "", text)[-chars:]  # without terminal colours

    def wait_listening(self, timeout: float = SERVER_TIMEOUT) -> None:
        """Wait until the port accepts a TCP connection (Voila runs the notebook on every GET)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise BrowserError(
                    f"{self.name} exited with code {code} before listening on port {self.port}; "
                    f"its output ends with:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return
            time.sleep(0.2)
        raise BrowserError(
            f"{self.name} did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s; "
            f"its output ends with:\n{self.log_tail()}"
        )

    def stop(self) -> None:
        """Terminate our process group (SIGTERM, then SIGKILL after 10 s); never by name."""
        process = self.process
        if process is None:
            return
        group = process.pid  # start_new_session: the group id is the leader's pid
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, sig)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # The leader is gone; make sure no child of it (kernels) outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            break
        self.process = None


def jupyter_env(base: Path) -> dict[str, str]:
    """Environment for a Jupyter server with config, data, runtime and IPython dirs in ``base``.

    The repository root goes first on PYTHONPATH so the kernels import this checkout of
    camwidgets whether or not it is pip-installed.
    """
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "IPYTHONDIR": base / "ipython",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JPY_"))}
    env.update({k: str(v) for k, v in dirs.items()})
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # ipykernel's debugger warning on frozen modules
    return env


def lab_settings(settings_dir: Path) -> None:
    """User settings that keep JupyterLab quiet and stateless (no news, no update checks, no
    autosave: the copied notebook is not rewritten) and render every cell of a notebook."""
    settings = {
        "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
            "fetchNews": "false",
            "checkForUpdates": False,
        },
        "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
        "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"disclaimed": False},
        # Render every cell: with windowing, cells outside the viewport have no prompt or output.
        "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for relative, value in settings.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


# -- page health -------------------------------------------------------------------------------

# Offline, Voila's template asks a CDN for a font and the request fails: harmless.
HARMLESS_CONSOLE = (
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "cdn.jsdelivr.net",
    "unpkg.com",
)

# Everything in the page that means "broken": returned as readable strings.
_PROBLEMS_JS = """
() => {
  const text = (el) => (el.innerText || el.textContent || '').trim().slice(0, 1500);
  const out = [];
  for (const el of document.querySelectorAll('.jupyter-widgets-error-widget')) {
    out.push('widget error view: ' + text(el.closest('.jupyter-widgets') || el));
  }
  const body = document.body ? (document.body.innerText || '') : '';
  for (const needle of ['Error displaying widget', 'Model not found', 'model not found',
                        'There was an error when executing cell', 'Internal Server Error',
                        'Failed to start the kernel', 'Kernel Restarting',
                        'The kernel appears to have died']) {
    const at = body.indexOf(needle);
    if (at >= 0) out.push('page text: ' + body.slice(Math.max(0, at - 200), at + 600));
  }
  const stderr = document.querySelectorAll(
    '[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output.jp-mod-error');
  for (const el of stderr) out.push('cell stderr/exception output:\\n' + text(el));
  for (const el of document.querySelectorAll('.jp-Dialog')) {
    out.push('dialog: ' + text(el));
  }
  return [...new Set(out)];
}
"""


class PageWatch:
    """Collects a page's JavaScript errors and console errors, and inspects its DOM for
    widget errors and Python tracebacks. ``check()`` raises them as one readable message."""

    def __init__(self, page: Any, name: str, server: Server | None = None) -> None:
        self.page = page
        self.name = name
        self.server = server  # its log goes into failure messages (Voila logs tracebacks there)
        self.errors: list[str] = []
        self.console: list[str] = []
        self.accepted: list[str] = []  # problems containing these texts were expected
        # plotly's FigureWidget view announces the end of its first draw with this event; only
        # then has it attached its click/hover handlers and reported what it drew to Python.
        page.add_init_script(
            "window.__plotlyRendered = 0; document.addEventListener("
            "'plotlywidget-after-render', () => { window.__plotlyRendered += 1; });"
        )
        page.on("pageerror", self._on_page_error)
        page.on("console", self._on_console)
        page.on("crash", lambda *_: self.errors.append("the page crashed"))

    def _on_page_error(self, error: Any) -> None:
        stack = getattr(error, "stack", None) or ""
        self.errors.append(f"JavaScript error: {error}\n{stack[:1500]}")

    def _on_console(self, message: Any) -> None:
        text = message.text
        self.console.append(f"[{message.type}] {text}")
        if message.type != "error":
            return
        location = message.location or {}
        where = f"{text} {location.get('url', '')}"
        if any(host in where for host in HARMLESS_CONSOLE):
            return
        self.errors.append(f"console error: {text} (at {location.get('url', '?')})")

    def figure_views_rendered(self) -> int:
        """How many FigureWidget views finished their first draw on this page."""
        count: int = self.page.evaluate("() => window.__plotlyRendered || 0")
        return count

    def problems(self) -> list[str]:
        """Everything wrong so far: JS/console errors, then what the DOM shows."""
        found = list(self.errors)
        try:
            found += self.page.evaluate(_PROBLEMS_JS)
        except Exception as error:  # the page navigated or closed mid-check
            found.append(f"could not inspect the page: {error}")
        return [p for p in found if not any(text in p for text in self.accepted)]

    def accept(self, text: str) -> None:
        """Treat problems that contain ``text`` as expected from now on (self-checks only)."""
        self.accepted.append(text)

    def check(self, context: str = "") -> None:
        """Raise BrowserError listing every problem the page shows."""
        found = self.problems()
        if found:
            shot = self.screenshot("FAILED")
            raise BrowserError(
                f"{self.name}: the page shows errors{' ' + context if context else ''} "
                f"(screenshot {shot}):\n- " + "\n- ".join(found) + self.server_log()
            )

    def server_log(self) -> str:
        """The end of the server's log, for failure messages."""
        if self.server is None:
            return ""
        tail = self.server.log_tail(2500)
        return f"\n{self.server.name} log ({self.server.log}) ends with:\n{tail}"

    def screenshot(self, label: str) -> Path:
        """Save a full-page screenshot as artifacts/browser/<name>-<label>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        with contextlib.suppress(Exception):
            self.page.screenshot(path=str(path), full_page=True)
        return path

    def screenshot_of(self, locator: Any, label: str) -> Path:
        """Save a screenshot of one element (the panel) as artifacts/browser/<name>-<label>.png."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{label}.png"
        try:
            locator.screenshot(path=str(path), timeout=15_000)
        except Exception:  # fall back to the whole page rather than fail on a screenshot
            self.page.screenshot(path=str(path), full_page=True)
        return path


def open_page(watch: PageWatch, url: str) -> None:
    """Go to ``url`` without waiting for "load" (Voila executes the notebook while the page
    loads); an HTTP error (Voila's error page) fails at once with the server's log."""
    response = watch.page.goto(url, wait_until="commit", timeout=PAGE_TIMEOUT * 1000)
    if response is not None and response.status >= 400:
        watch.page.wait_for_load_state("load", timeout=PAGE_TIMEOUT * 1000)
        text = watch.page.evaluate("() => document.body ? document.body.innerText : ''")
        raise BrowserError(
            f"{watch.name}: {url} answered HTTP {response.status}: {text[:1500]}"
            f"{watch.server_log()}"
        )


def wait_for(
    watch: PageWatch,
    what: str,
    condition: Callable[[], T],
    timeout: float = UPDATE_TIMEOUT,
    describe: Callable[[], str] | None = None,
    interval: float = 0.1,
) -> T:
    """Poll ``condition`` until it returns something truthy and return that.

    Between polls the page's health is checked: an error on the page fails the wait at once
    with that error. A timeout reports ``what`` was awaited and, if given, ``describe()`` (what
    the page showed instead).
    """
    start = time.monotonic()
    deadline = start + timeout
    last_error: Exception | None = None
    while True:
        watch.check(f"while waiting for {what}")
        try:
            value = condition()
        except BrowserError:
            raise
        except Exception as error:  # e.g. an element not there yet
            value, last_error = None, error  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            break
        watch.page.wait_for_timeout(interval * 1000)  # lets Playwright deliver page events
    shot = watch.screenshot("TIMEOUT")
    seen = ""
    if describe is not None:
        with contextlib.suppress(Exception):
            seen = f"\nthe page shows: {describe()}"
    if last_error is not None:
        seen += f"\nlast error of the check: {type(last_error).__name__}: {last_error}"
    raise BrowserError(
        f"{watch.name}: {what}: not seen within {timeout:.0f} s, and the page shows no error "
        f"(screenshot {shot}){seen}{watch.server_log()}"
    )


# -- plotted data ------------------------------------------------------------------------------

# Every plotly graph on the page: its traces' data as plotly.js holds it (typed arrays turned
# into lists), the subplot titles, and the rendered heat-map images (data: URLs that change
# whenever plotly.js redraws a heat map with other values).
_PLOTS_JS = """
(root) => {
  const plain = (v) => {
    if (ArrayBuffer.isView(v)) return Array.from(v);
    if (Array.isArray(v)) return v.map(plain);
    if (v && typeof v === 'object') {
      const o = {};
      for (const [k, x] of Object.entries(v)) o[k] = plain(x);
      return o;
    }
    return v;
  };
  const keys = ['name', 'type', 'x', 'y', 'z', 'customdata', 'source', 'visible', 'opacity',
                'colorscale', 'zmin', 'zmax', 'marker'];
  return [...(root || document).querySelectorAll('.js-plotly-plot')].map((gd) => {
    const box = gd.getBoundingClientRect();
    return {
      traces: (gd.data || []).map((t) => {
        const o = {};
        for (const k of keys) if (k in t) o[k] = plain(t[k]);
        return o;
      }),
      titles: ((gd.layout && gd.layout.annotations) || []).map((a) => a.text),
      drawnTitles: [...gd.querySelectorAll('g.annotation-text-g text, g.annotation text')]
        .map((t) => t.textContent),
      heatImages: [...gd.querySelectorAll('g.hm image')].map(
        (im) => im.getAttribute('href') || im.getAttribute('xlink:href') || ''),
      bars: gd.querySelectorAll('g.barlayer path').length,
      width: box.width,
      height: box.height,
    };
  });
}
"""


def read_plots(where: Any) -> list[dict[str, Any]]:
    """The data of every plotly graph drawn on a page, or inside a locator's element."""
    if hasattr(where, "goto"):  # a page
        plots: list[dict[str, Any]] = where.evaluate(_PLOTS_JS, None)
    else:
        plots = where.evaluate(_PLOTS_JS)
    return plots


def digest(values: Sequence[str]) -> list[str]:
    """Short stand-ins for long strings (data: URLs), for messages and comparisons."""
    import hashlib

    return [hashlib.blake2b(v.encode(), digest_size=6).hexdigest() for v in values]
