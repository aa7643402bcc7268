"""The figures layer is plotly + numpy only: importing it must not import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_figures_do_not_import_torch_or_widgets() -> None:
    code = (
        "import sys, camwidgets.figures as f; f.panel_figure(f.PanelView.blank()); "
        "print(sorted(m for m in ('torch', 'ipywidgets', 'camwidgets.engine') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]  # the checkout, importable without installing
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stderr
    out = run
    assert out.stdout.strip() == "[]"
