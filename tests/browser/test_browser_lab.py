"""The quickstart notebook in a real JupyterLab: run it, then use the panel as a reader would.

Every step (initial view, another class, counterfactual, another layer, a clicked bar) is
checked trace by trace against ``camwidgets.GradCAM`` run in the test process on the shapes
model and on the very picture the panel shows (decoded from the page).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import Lab
from tests.browser.helpers import ARTIFACTS, PAGE_TIMEOUT, REPO, PageWatch
from tests.browser.lab import open_notebook, run_all
from tests.browser.panel import PanelWalk

pytestmark = pytest.mark.browser

QUICKSTART = REPO / "notebooks" / "01-quickstart.ipynb"


def test_quickstart_in_jupyterlab(
    lab: Lab, new_page: Callable[..., tuple[Any, PageWatch]], shapes_engine: Any
) -> None:
    if not QUICKSTART.is_file():
        pytest.fail(f"{QUICKSTART} does not exist")
    shutil.copy(QUICKSTART, lab.root / QUICKSTART.name)
    page, watch = new_page("lab", lab.server)
    started = time.monotonic()
    open_notebook(page, watch, lab.url(QUICKSTART.name))
    opened = time.monotonic()
    run_all(page, watch)
    ran = time.monotonic()
    walk = PanelWalk(watch, shapes_engine, "lab")
    walk.run(first_timeout=PAGE_TIMEOUT)
    watch.check("after the last step")
    watch.screenshot("page")
    timings = (
        f"open to kernel idle {opened - started:.1f} s, run all {ran - opened:.1f} s, "
        f"steps {time.monotonic() - ran:.1f} s\n{walk.report()}\n"
    )
    (ARTIFACTS / "lab-steps.txt").write_text(timings)
    print(timings)
