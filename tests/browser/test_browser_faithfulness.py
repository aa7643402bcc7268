"""The faithfulness readout in JupyterLab at 1280 and 1920 px: a reader clicks "faithfulness"
and sees the map's deletion and insertion curves over the random maps' band, drawn from the
values ``camwidgets.metrics`` computes (recomputed here), at the output's width, with titles,
legend and verdict readable. Screenshots go to artifacts/browser/ (look at them)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import Lab
from tests.browser.helpers import PAGE_TIMEOUT, BrowserError, PageWatch, wait_for
from tests.browser.lab import open_notebook, run_all
from tests.browser.panel import locate_panel

pytestmark = pytest.mark.browser

STEPS, RUNS = 40, 3

CODE = """\
from camwidgets import Explorer, zoo

shapes = zoo.load("shapes")
scene = zoo.sample_scenes(1)[0]
explorer = Explorer(shapes.model, classes=shapes.classes, transform=shapes.transform)
explorer.show(scene.image)"""

_READ_JS = """
(section) => {
  const gd = section.querySelector('.js-plotly-plot');
  if (!gd || !gd._fullLayout || !gd.data) return null;
  const out = section.closest('.jp-OutputArea-output') || section.parentElement;
  const full = gd._fullLayout;
  const texts = [...gd.querySelectorAll('svg text')].filter((t) => t.textContent.trim() !== '')
    .map((t) => ({text: t.textContent, size: parseFloat(getComputedStyle(t).fontSize),
                  right: t.getBoundingClientRect().right}));
  return {
    ys: gd.data.map((t) => Array.from(t.y)), xs: gd.data.map((t) => Array.from(t.x)),
    width: full.width, element: gd.getBoundingClientRect().width,
    plotRight: gd.getBoundingClientRect().right,
    outWidth: out.getBoundingClientRect().width, outRight: out.getBoundingClientRect().right,
    overflow: out.scrollWidth - out.clientWidth,
    titles: (full.annotations || []).map((a) => a.text), texts,
    words: section.innerText,
  };
}
"""


def notebook() -> str:
    cell = {"cell_type": "code", "execution_count": None, "id": "readout", "metadata": {},
            "outputs": [], "source": CODE}  # fmt: skip
    return json.dumps(
        {
            "cells": [cell],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
            "nbformat": 4,
            "nbformat_minor": 5,
        }
    )


def expected() -> dict[str, np.ndarray]:
    """The curves the readout must draw, from ``camwidgets.metrics`` on a fresh engine."""
    from camwidgets import GradCAM, metrics, zoo

    shapes = zoo.load("shapes")
    image = zoo.sample_scenes(1)[0].image
    engine = GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)
    result = engine.explain(image)
    size = engine.prepare(image).size
    grid = tuple(int(v) for v in engine.layer_shapes[result.layer][1:])
    out = {}
    for kind, run in (("deletion", metrics.deletion), ("insertion", metrics.insertion)):
        curve = run(engine, image, result.heatmap, result.target, steps=STEPS, progress=False)
        assert isinstance(curve, metrics.Curve)
        randoms = []
        for seed in range(RUNS):
            noise = metrics.random_map(size, grid=grid, seed=seed)  # type: ignore[arg-type]
            one = run(engine, image, noise, result.target, steps=STEPS, progress=False)
            assert isinstance(one, metrics.Curve)
            randoms.append(one.scores.numpy())
        out[f"{kind} map"] = curve.scores.numpy()
        out[f"{kind} low"] = np.min(randoms, axis=0)
        out[f"{kind} high"] = np.max(randoms, axis=0)
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return expected()


@pytest.mark.parametrize("width", [1280, 1920])
def test_faithfulness_readout_reads_well(
    width: int,
    lab: Lab,
    new_page: Callable[..., tuple[Any, PageWatch]],
    reference: dict[str, np.ndarray],
) -> None:
    name = f"faithfulness-{width}.ipynb"
    (lab.root / name).write_text(notebook())
    page, watch = new_page(f"faithfulness-{width}", lab.server)
    page.set_viewport_size({"width": width, "height": 1500})
    open_notebook(page, watch, lab.url(name))
    page.evaluate("() => window.jupyterapp.shell.activateById('filebrowser')")  # sidebar open
    run_all(page, watch)
    panel = locate_panel(page)
    wait_for(watch, "the panel to be drawn", lambda: panel.count() > 0 or None, PAGE_TIMEOUT)
    panel.locator("button", has_text="faithfulness").click()
    section = page.locator(".widget-vbox").filter(has_text="Faithfulness of this").last

    def drawn() -> dict[str, Any] | None:
        if section.count() == 0:
            return None
        seen: dict[str, Any] | None = section.evaluate(_READ_JS)
        return seen if seen and len(seen["ys"]) == 8 and seen["width"] > 100 else None

    seen = wait_for(watch, "the faithfulness curves to be drawn", drawn, PAGE_TIMEOUT)
    section.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the last redraw settles before the screenshots
    seen = drawn() or seen
    watch.screenshot("page")
    watch.screenshot_of(section, "readout")
    problems: list[str] = []
    for kind, first in (("deletion", 0), ("insertion", 4)):
        for role, k in (("low", 0), ("high", 1), ("map", 3)):
            got = np.asarray(seen["ys"][first + k], dtype=np.float64)
            want = reference[f"{kind} {role}"]
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-6):
                problems.append(f"{kind} {role} curve differs from metrics' ({got[:3]}...)")
    if seen["overflow"] > 1 or seen["plotRight"] > seen["outRight"] + 1:
        problems.append(
            f"the curves overflow the output ({seen['plotRight']} > {seen['outRight']})"
        )
    if seen["element"] < 0.8 * seen["outWidth"]:
        problems.append(f"the curves use {seen['element']} of {seen['outWidth']} px")
    small = sorted({(t["size"], t["text"]) for t in seen["texts"] if t["size"] < 11})
    if small:
        problems.append(f"text under 11 px: {small[:5]}")
    cut = [t["text"] for t in seen["texts"] if t["right"] > seen["outRight"] + 1]
    if cut:
        problems.append(f"text cut off at the right: {cut[:5]}")
    titles = " ".join(seen["titles"])
    if "lower is better" not in titles or "higher is better" not in titles:
        problems.append(f"subplot titles do not say which way is better: {seen['titles']}")
    words = seen["words"]
    for needed in ("deletion (lower is better)", "insertion (higher is better)", "random maps"):
        if needed not in words:
            problems.append(f"the verdict lacks {needed!r}")
    if problems:
        raise BrowserError(f"at {width} px:\n  " + "\n  ".join(problems))
    watch.check(f"faithfulness readout at {width} px")
    shutil.rmtree(lab.root / ".ipynb_checkpoints", ignore_errors=True)
