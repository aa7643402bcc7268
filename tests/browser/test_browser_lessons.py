"""The panel's teaching views in JupyterLab: "step by step" and "attack" clicked in the browser
draw their figures (every stage, both pictures), fit the output at 1280 and 1920 px, and are
kept as screenshots under artifacts/browser/ (lessons-<width>-panel.png)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import Lab
from tests.browser.helpers import PAGE_TIMEOUT, BrowserError, PageWatch, read_plots, wait_for
from tests.browser.lab import open_notebook, run_all
from tests.browser.panel import locate_panel

pytestmark = pytest.mark.browser

SOURCE = """from camwidgets import Explorer, zoo
shapes = zoo.load("shapes")
explorer = Explorer(shapes.model, classes=shapes.classes, transform=shapes.transform)
explorer.show(zoo.make_scene(1, 0).image)"""

_FIT_JS = """
(panel) => {
  const out = panel.closest('.jp-OutputArea-output') || panel.parentElement;
  const ob = out.getBoundingClientRect();
  const plots = [...panel.querySelectorAll('.js-plotly-plot')].map((gd) => {
    const b = gd.getBoundingClientRect();
    return {left: b.left, right: b.right, width: b.width};
  });
  const small = [...panel.querySelectorAll('.js-plotly-plot svg text')]
    .filter((t) => t.textContent.trim() !== '' && parseFloat(getComputedStyle(t).fontSize) < 11)
    .map((t) => t.textContent);
  const buttons = [...panel.querySelectorAll('button')].filter((b) => b.offsetParent !== null)
    .filter((b) => b.scrollWidth > b.clientWidth + 1).map((b) => b.innerText.trim());
  return {outRight: ob.right, overflow: out.scrollWidth - out.clientWidth, plots, small, buttons};
}
"""


def _shut_down_other_kernels(lab: Lab) -> None:
    """Delete the server's sessions: a kernel left by an earlier test (with its widgets) slows
    the page enough on a loaded machine that anywidget's model start times out."""
    base = f"{lab.base}/api/sessions"
    with urllib.request.urlopen(f"{base}?token={lab.token}", timeout=30) as answer:
        sessions = json.load(answer)
    for session in sessions:
        request = urllib.request.Request(
            f"{base}/{session['id']}?token={lab.token}", method="DELETE"
        )
        urllib.request.urlopen(request, timeout=30).close()


def _toggle(panel: Any, text: str) -> None:
    panel.locator("button.widget-toggle-button", has_text=text).first.click()


@pytest.mark.parametrize("width", [1280, 1920])
def test_step_by_step_and_attack_views(
    width: int, lab: Lab, new_page: Callable[..., tuple[Any, PageWatch]]
) -> None:
    name = f"lessons-panel-{width}.ipynb"  # a fresh kernel per width
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(SOURCE)]
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"
    }  # fmt: skip
    nbformat.write(notebook, lab.root / name)
    _shut_down_other_kernels(lab)
    page, watch = new_page(f"lessons-{width}", lab.server)
    page.set_viewport_size({"width": width, "height": 3000})
    open_notebook(page, watch, lab.url(name))
    run_all(page, watch)
    panel = locate_panel(page)
    wait_for(watch, "the panel's chart", lambda: len(read_plots(panel)) == 1 or None, PAGE_TIMEOUT)

    _toggle(panel, "step by step")

    def steps_drawn() -> list[dict[str, Any]] | None:
        plots = read_plots(panel)
        return plots if len(plots) == 2 and len(plots[1]["traces"]) == 13 else None

    plots = wait_for(watch, "the step-by-step figure", steps_drawn, PAGE_TIMEOUT)
    steps = plots[1]
    drawn = " ".join(steps["drawnTitles"])
    for mark in "①②③④⑤⑥":
        if mark not in drawn:
            raise BrowserError(f"stage {mark} has no drawn title: {steps['drawnTitles']}")
    if steps["bars"] == 0 or len(steps["heatImages"]) < 10:
        raise BrowserError(f"step-by-step maps or bars not drawn: {steps['bars']} bars")

    _toggle(panel, "attack")

    def attack_drawn() -> list[dict[str, Any]] | None:
        plots = read_plots(panel)
        return plots if len(plots) == 3 and len(plots[2]["traces"]) == 12 else None

    plots = wait_for(watch, "the attack figure", attack_drawn, PAGE_TIMEOUT)
    attack = plots[2]
    if not any("attacked" in t for t in attack["drawnTitles"]):
        raise BrowserError(f"no attacked picture title: {attack['drawnTitles']}")
    pictures = [t for t in attack["traces"] if t["type"] == "image"]
    if len(pictures) != 6 or len({p["source"] for p in pictures}) != 2:
        raise BrowserError("the attack figure should show the two pictures, three times each")

    panel.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    watch.screenshot("page")
    watch.screenshot_of(panel, "panel")
    seen = panel.evaluate(_FIT_JS)
    problems = []
    if seen["overflow"] > 1:
        problems.append(f"the output scrolls sideways by {seen['overflow']} px")
    for plot in seen["plots"]:
        if plot["right"] > seen["outRight"] + 1:
            problems.append(f"a plot reaches past the output: {plot}")
    if seen["small"]:
        problems.append(f"text under 11 px: {sorted(set(seen['small']))[:5]}")
    if seen["buttons"]:
        problems.append(f"button text cut off: {seen['buttons']}")
    if problems:
        raise BrowserError(f"at {width} px:\n  " + "\n  ".join(problems))
    watch.check("the teaching views")
