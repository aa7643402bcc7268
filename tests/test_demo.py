"""The demo app (``camwidgets demo`` serves it in Voila) runs headless and builds its panel.

The notebook is executed as Voila would run it, in a fresh kernel, with one extra cell appended
that checks the explorer it built: a panel explaining the first scene, with a picker over the
gallery, agreeing with an engine of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.notebooks

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
