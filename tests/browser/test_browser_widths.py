"""The panel at 1280 and 1920 px in JupyterLab (file browser open): nothing cut off, readable.

Runs the quickstart notebook at each window width, waits until the panel has laid itself out
for the width its view reports, then checks what a reader sees: the plot and every control fit
inside the cell's output (no clipped button text, no horizontal overflow), the maps are in one
row when there is room and in two otherwise, every colour bar has a title and sits right of its
map, no SVG text is smaller than 11 px, and no tick uses an SI suffix such as "50µ". A
screenshot of the page and of the panel is kept for each width under artifacts/browser/.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

import pytest

from camwidgets.figures.panel import WRAP_BELOW, panel_layout
from tests.browser.conftest import Lab
from tests.browser.helpers import PAGE_TIMEOUT, REPO, BrowserError, PageWatch, wait_for
from tests.browser.lab import open_notebook, run_all
from tests.browser.panel import locate_panel, panel_summary, read_panel

pytestmark = pytest.mark.browser

QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"
SIZES = ("width", "height", "element", "outWidth")

_MEASURE_JS = """
(panel) => {
  const out = panel.closest('.jp-OutputArea-output') || panel.parentElement;
  const ob = out.getBoundingClientRect();
  const gd = panel.querySelector('.js-plotly-plot');
  const full = gd._fullLayout;
  const boxes = [...panel.querySelectorAll(
    '.widget-dropdown, .widget-toggle-button, .widget-toggle-buttons, .widget-hslider, '
    + '.widget-combobox')].filter((e) => e.offsetParent !== null)
    .map((e) => { const b = e.getBoundingClientRect(); return {left: b.left, right: b.right}; });
  const buttons = [...panel.querySelectorAll('button')].filter((b) => b.offsetParent !== null)
    .map((b) => ({text: b.innerText.trim(), clipped: b.scrollWidth > b.clientWidth + 1}));
  const sizes = [...gd.querySelectorAll('svg text')]
    .filter((t) => t.textContent.trim() !== '')
    .map((t) => ({text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize)}));
  const ticks = [...gd.querySelectorAll('g.cbaxis text, g.ytick text, g.xtick text')]
    .map((t) => t.textContent);
  const bars = (gd.data || []).filter((t) => t.type === 'heatmap' && t.showscale !== false)
    .map((t) => ({name: t.name, title: t.colorbar && t.colorbar.title && t.colorbar.title.text,
                  x: t.colorbar && t.colorbar.x,
                  axisEnd: full[(t.xaxis || 'x').replace('x', 'xaxis')].domain[1]}));
  return {
    outLeft: ob.left, outRight: ob.right, outWidth: ob.width,
    overflow: out.scrollWidth - out.clientWidth,
    plotLeft: gd.getBoundingClientRect().left, plotRight: gd.getBoundingClientRect().right,
    width: full.width, height: full.height, xaxis2: full.xaxis2.domain,
    element: gd.getBoundingClientRect().width,
    boxes, buttons, sizes, ticks, bars,
  };
}
"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_panel_fits_and_reads_well(
    width: int, lab: Lab, new_page: Callable[..., tuple[Any, PageWatch]]
) -> None:
    shutil.copy(QUICKSTART, lab.root / QUICKSTART.name)
    page, watch = new_page(f"lab-{width}", lab.server)
    # Tall enough for the whole panel: an element screenshot cannot scroll Lab's notebook.
    page.set_viewport_size({"width": width, "height": 1500})
    open_notebook(page, watch, lab.url(QUICKSTART.name))
    page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")  # sidebar open
    run_all(page, watch)
    panel = locate_panel(page)
    wait_for(
        watch,
        "the panel's figure to be drawn",
        lambda: read_panel(panel),
        PAGE_TIMEOUT,
        describe=lambda: panel_summary(panel),
    )

    def laid_out() -> dict[str, Any] | None:
        seen: dict[str, Any] = panel.evaluate(_MEASURE_JS)
        expected = panel_layout(round(seen["width"])).height
        return seen if abs(seen["height"] - expected) <= 8 else None

    seen = wait_for(
        watch,
        "the figure to be laid out for the width its view reports",
        laid_out,
        timeout=30,
        describe=lambda: str({k: v for k, v in panel.evaluate(_MEASURE_JS).items() if k in SIZES}),
    )
    panel.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the last redraw settle before the screenshots
    watch.screenshot("page")
    watch.screenshot_of(panel, "panel")
    problems: list[str] = []
    if seen["overflow"] > 1:
        problems.append(f"the output area scrolls sideways by {seen['overflow']} px")
    if seen["plotRight"] > seen["outRight"] + 1 or seen["width"] > seen["outWidth"] + 1:
        problems.append(f"plot ({seen['width']} px) wider than its output ({seen['outWidth']})")
    cut = [b for b in seen["boxes"] if b["right"] > seen["outRight"] + 1]
    if cut:
        problems.append(f"{len(cut)} control(s) extend past the output's right edge")
    clipped = [b["text"] for b in seen["buttons"] if b["clipped"]]
    if clipped:
        problems.append(f"button text cut off: {clipped}")
    columns = 2 if seen["xaxis2"][1] > 0.6 else 4
    if columns != (4 if seen["width"] >= WRAP_BELOW else 2):
        problems.append(f"{columns} maps per row at {seen['width']} px")
    small = sorted({(s["size"], s["text"]) for s in seen["sizes"] if s["size"] < 11})
    if small:
        problems.append(f"text under 11 px: {small[:5]}")
    si = [t for t in seen["ticks"] if any(u in t for u in "µmnk")]
    if si:
        problems.append(f"SI-suffixed ticks: {si[:5]}")
    if len(seen["bars"]) != 4:
        problems.append(f"{len(seen['bars'])} colour bars, expected 4")
    for bar in seen["bars"]:
        if not bar["title"] or not bar["axisEnd"] < bar["x"] < bar["axisEnd"] + 0.03:
            problems.append(f"colour bar of {bar['name']} untitled or not beside its map: {bar}")
    if problems:
        raise BrowserError(f"at {width} px:\n  " + "\n  ".join(problems))
    if width >= 1920 and columns != 4:
        raise BrowserError(f"at {width} px the maps should be in one row ({seen['width']} px)")
