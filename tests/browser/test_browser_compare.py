"""Compare in JupyterLab at 1280 and 1920 px: the shapes and the shortcut model on one scene.

The notebook shows both models; the page must draw both heat maps on one colour range (the same
zmax), the difference map, a bar trace per model, everything inside the cell's output, and a
class change from the dropdown must redraw the maps. Screenshots of the page and the panel go
to artifacts/browser/ for each width.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nbformat
import pytest

from tests.browser.conftest import Lab
from tests.browser.helpers import PAGE_TIMEOUT, BrowserError, PageWatch, read_plots, wait_for
from tests.browser.lab import open_notebook, run_all

pytestmark = pytest.mark.browser

CODE = """\
from camwidgets import Compare, zoo

shapes, shortcut = zoo.load("shapes"), zoo.load("shortcut")
compare = Compare(
    {"shapes": shapes.model, "shortcut": shortcut.model},
    classes=shapes.classes,
    transform=shapes.transform,
)
scene = zoo.make_scene(0, 3, mark="correct")
compare.show(scene.image)
"""

_FIT_JS = """
(panel) => {
  const out = panel.closest('.jp-OutputArea-output') || panel.parentElement;
  const ob = out.getBoundingClientRect();
  const gd = panel.querySelector('.js-plotly-plot');
  const controls = [...panel.querySelectorAll('.widget-dropdown, .widget-toggle-button, '
    + '.widget-hslider')].filter((e) => e.offsetParent !== null)
    .map((e) => e.getBoundingClientRect().right);
  const small = [...gd.querySelectorAll('svg text')]
    .filter((t) => t.textContent.trim() !== '' && parseFloat(getComputedStyle(t).fontSize) < 11)
    .map((t) => t.textContent);
  return {outRight: ob.right, overflow: out.scrollWidth - out.clientWidth,
          plotRight: gd.getBoundingClientRect().right, controls, small,
          width: gd._fullLayout.width};
}
"""


_DEBUG_JS = """
(panel) => {
  const gd = panel.querySelector('.js-plotly-plot');
  return {n: (gd.data || []).length, names: (gd.data || []).map((t) => t.name + ':' + t.type),
          layoutKeys: Object.keys(gd.layout || {}), w: gd._fullLayout && gd._fullLayout.width};
}
"""


def _drawn(panel: Any) -> dict[str, Any] | None:
    """The compare figure's traces by name, once both models' maps are drawn."""
    for plot in read_plots(panel):
        traces = {t.get("name"): t for t in plot["traces"]}
        if {"heatmap:shapes", "heatmap:shortcut", "difference"} <= set(traces) and len(
            traces["heatmap:shapes"].get("z") or []
        ) > 1:
            return {"traces": traces, "images": plot["heatImages"], "bars": plot["bars"]}
    return None


@pytest.mark.parametrize("width", [1280, 1920])
def test_compare_in_lab(
    width: int, lab: Lab, new_page: Callable[..., tuple[Any, PageWatch]]
) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CODE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "compare.ipynb")
    page, watch = new_page(f"compare-{width}", lab.server)
    page.set_viewport_size({"width": width, "height": 1500})
    open_notebook(page, watch, lab.url("compare.ipynb"))
    run_all(page, watch)
    panel = (
        page.locator(".widget-vbox")
        .filter(has=page.locator(".js-plotly-plot"))
        .filter(has=page.locator(".widget-dropdown select"))
        .first
    )
    first = wait_for(
        watch,
        "both models' maps drawn",
        lambda: _drawn(panel),
        PAGE_TIMEOUT,
        describe=lambda: str(panel.evaluate(_DEBUG_JS)) + "\n".join(watch.console[-20:]),
    )
    traces = first["traces"]
    peaks = {n: max(traces[f"heatmap:{n}"]["z"]) for n in ("shapes", "shortcut")}
    ranges = {n: traces[f"heatmap:{n}"]["zmax"] for n in ("shapes", "shortcut")}
    if ranges["shapes"] != ranges["shortcut"] or max(peaks.values()) != ranges["shapes"]:
        raise BrowserError(f"the maps are not drawn on one range: peaks {peaks}, ranges {ranges}")
    # The kernel's maps: the shortcut model's is the stronger one on this scene.
    if not peaks["shapes"] < peaks["shortcut"]:
        raise BrowserError(f"the page draws other maps than the kernel computed: {peaks}")
    if traces["difference"]["zmin"] != -traces["difference"]["zmax"]:
        raise BrowserError("the difference map's range is not symmetric")
    if not {"bars:shapes", "bars:shortcut"} <= set(traces):
        raise BrowserError(f"a bar trace per model expected, got {sorted(traces)}")
    page.wait_for_timeout(800)  # the width-following relayout
    panel.scroll_into_view_if_needed()
    watch.screenshot("page")
    watch.screenshot_of(panel, "panel")
    seen = panel.evaluate(_FIT_JS)
    problems = []
    if seen["overflow"] > 1 or seen["plotRight"] > seen["outRight"] + 1:
        problems.append(f"the plot overflows its output: {seen}")
    if any(right > seen["outRight"] + 1 for right in seen["controls"]):
        problems.append("a control extends past the output's right edge")
    if seen["small"]:
        problems.append(f"text under 11 px: {seen['small'][:5]}")
    if problems:
        raise BrowserError(f"at {width} px:\n  " + "\n  ".join(problems))
    # Another class from the dropdown: both maps are drawn again.
    select = panel.locator(".widget-dropdown select").nth(1)
    values = select.locator("option").evaluate_all("(o) => o.map((x) => x.value)")
    select.select_option(values[1])
    before = first["traces"]["heatmap:shortcut"]["z"]
    wait_for(
        watch,
        "the maps redrawn for the other class",
        lambda: (d := _drawn(panel)) is not None and d["traces"]["heatmap:shortcut"]["z"] != before,
        PAGE_TIMEOUT,
    )
    watch.check("after the class change")
