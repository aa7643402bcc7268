"""Driving a notebook in the JupyterLab UI: open it, wait for its kernel, run every cell."""

from __future__ import annotations

from typing import Any

from tests.browser.helpers import PAGE_TIMEOUT, PageWatch, wait_for

_KERNEL_JS = """
() => {
  const bar = document.querySelector('#jp-main-statusbar');
  return bar ? bar.innerText.replace(/\\s+/g, ' ') : '';
}
"""

_PROMPTS_JS = """
() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')]
  .map((p) => p.innerText.trim())
"""


def status_bar(page: Any) -> str:
    """The Lab status bar's text, e.g. "... Python 3 (ipykernel) | Idle ..."."""
    text: str = page.evaluate(_KERNEL_JS)
    return text


def prompts(page: Any) -> list[str]:
    """The code cells' prompts: "[3]:" done, "[*]:" running or queued, "[ ]:" not run."""
    found: list[str] = page.evaluate(_PROMPTS_JS)
    return found


def kernel_idle(page: Any) -> bool:
    return "(ipykernel) | Idle" in status_bar(page)


def open_notebook(page: Any, watch: PageWatch, url: str) -> None:
    """Open a notebook and wait until its kernel reports Idle."""
    page.goto(url, timeout=PAGE_TIMEOUT * 1000)
    wait_for(
        watch,
        'the status bar to read "Python 3 (ipykernel) | Idle"',
        lambda: kernel_idle(page),
        timeout=PAGE_TIMEOUT,
        describe=lambda: f"status bar {status_bar(page)!r}",
    )


def run_all(page: Any, watch: PageWatch, timeout: float = PAGE_TIMEOUT) -> list[str]:
    """Run every cell with Lab's own command and wait until each code cell has run.

    Waits for the prompts to change first (the status bar can still read Idle right after the
    command), then for numbered prompts everywhere and an idle kernel.
    """
    if not prompts(page):
        raise AssertionError("the notebook shows no code cells")
    # Clearing outputs also clears stored execution counts, so a change of prompt is certain.
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
    before = wait_for(
        watch,
        "the prompts to be cleared",
        lambda: (lambda p: p if all(x == "[ ]:" for x in p) else None)(prompts(page)),
        describe=lambda: f"prompts {prompts(page)}",
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

    def done() -> list[str] | None:
        now = prompts(page)
        finished = all(p.startswith("[") and p[1:-2].strip().isdigit() for p in now)
        return now if now != before and finished and kernel_idle(page) else None

    return wait_for(
        watch,
        "every cell to run (numbered prompts, kernel idle)",
        done,
        timeout=timeout,
        describe=lambda: f"prompts {prompts(page)}, status bar {status_bar(page)!r}",
    )
