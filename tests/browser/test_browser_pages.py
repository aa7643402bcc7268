"""Standalone pages in Chromium at 1280 and 1920 px (no Jupyter server): the audit report's
figures follow the page's width, and the faithfulness readout (figure + verdict, as the panel
composes them) fits and reads well. Screenshots go to artifacts/browser/ (look at them)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from camwidgets.audit import Audit, audit, write_report
from camwidgets.figures.faithfulness import (
    CurveBand,
    FaithfulnessView,
    faithfulness_figure,
    faithfulness_words,
)
from tests.browser.helpers import PageWatch

pytestmark = pytest.mark.browser

WIDTHS = (1280, 1920)

_PLOTS_JS = """
() => [...document.querySelectorAll('.js-plotly-plot')].map((gd) => ({
  id: gd.id, width: gd._fullLayout.width, element: gd.getBoundingClientRect().width,
  right: gd.getBoundingClientRect().right,
  small: [...gd.querySelectorAll('svg text')].filter((t) => t.textContent.trim() !== '')
    .filter((t) => parseFloat(getComputedStyle(t).fontSize) < 11).map((t) => t.textContent),
}))
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pages")
    result: Audit = audit("zoo:scenes:24:seed=4:mark=correct", "zoo:shortcut", out / "a.parquet",
                          progress=False)  # fmt: skip
    return write_report(result, out / "report.html")


def test_report_figures_follow_the_page_width(
    report: Path, new_page: Callable[..., tuple[Any, PageWatch]]
) -> None:
    seen: dict[int, list[dict[str, Any]]] = {}
    for width in WIDTHS:
        page, watch = new_page(f"report-{width}")
        page.set_viewport_size({"width": width, "height": 1200})
        page.goto(report.as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4")
        page.wait_for_timeout(300)
        body = page.evaluate("() => document.body.getBoundingClientRect().width")
        plots = page.evaluate(_PLOTS_JS)
        watch.screenshot("page")
        for plot in plots:
            assert abs(plot["width"] - body) <= 2, (width, plot["id"], plot["width"], body)
            assert plot["right"] <= width, plot
            assert plot["small"] == [], plot
        # Resizing the window redraws every figure at the new width (plotly's responsive mode).
        page.set_viewport_size({"width": width - 300, "height": 1200})
        page.wait_for_timeout(800)
        narrower = page.evaluate("() => document.body.getBoundingClientRect().width")
        resized = page.evaluate(_PLOTS_JS)
        assert all(abs(p["width"] - narrower) <= 2 for p in resized), resized
        watch.check(f"report at {width} px")
        seen[width] = plots
    assert seen[1920][0]["width"] > seen[1280][0]["width"] + 500  # not a fixed width


def _view() -> FaithfulnessView:
    """A readout like the demo's first scene (deletion worse than random, insertion better)."""
    x = np.linspace(0, 1, 41)
    rng = np.random.default_rng(0)
    drop = np.exp(-x * 30) * 0.54
    bump = 0.8 * np.exp(-((x - 0.5) ** 2) / 0.004)
    random = np.clip(drop + rng.uniform(0, 0.02, (3, 41)), 0, 1)
    aucs = np.array([0.021, 0.104, 0.06])
    deletion = CurveBand("deletion", x, np.clip(drop + bump, 0, 1), random, 0.203, aucs)
    rise = 0.76 * (1 - np.exp(-x * 40))
    random = np.clip(x[None] * 0.54 + rng.uniform(0, 0.05, (3, 41)), 0, 1)
    insertion = CurveBand("insertion", x, rise, random, 0.707, np.array([0.164, 0.358, 0.123]))
    return FaithfulnessView(deletion, insertion, "Grad-CAM", "ring")


def test_faithfulness_readout_fits_and_reads(
    tmp_path: Path, new_page: Callable[..., tuple[Any, PageWatch]]
) -> None:
    view = _view()
    figure = faithfulness_figure(view).to_html(
        full_html=False, include_plotlyjs=True, div_id="readout", config={"responsive": True},
        default_width="100%",
    )  # fmt: skip
    page_html = tmp_path / "readout.html"
    page_html.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head>"
        "<body style='font-family:sans-serif;margin:16px'>"
        f"<div id='words'>{faithfulness_words(view)}</div>{figure}</body></html>",
        encoding="utf-8",
    )
    for width in WIDTHS:
        page, watch = new_page(f"readout-{width}")
        page.set_viewport_size({"width": width, "height": 700})
        page.goto(page_html.as_uri())
        page.wait_for_function("document.querySelector('#readout .main-svg') !== null")
        page.wait_for_timeout(300)
        (plot,) = page.evaluate(_PLOTS_JS)
        watch.screenshot("page")
        assert plot["right"] <= width and plot["element"] > 0.9 * (width - 32), plot
        assert plot["small"] == [], plot
        legend = page.evaluate(
            "() => [...document.querySelectorAll('#readout .legendtext')].map((t) => t.textContent)"
        )
        assert any("random maps (min–max of 3)" in t for t in legend), legend
        words = page.inner_text("#words")
        assert "deletion (lower is better)" in words and "climbs back" in words
        watch.check(f"readout at {width} px")
