"""Start-up: what each entry point imports, checked in fresh interpreters.

Each case runs in a new Python so that nothing imported by the test session counts. The
figures behind these rules (import times before and after) are in
docs/explanation/start-up.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "torch._dynamo", "sympy", "nbformat", "jsonschema", "plotly")


def _loaded_after(code: str) -> dict[str, bool]:
    """Which of HEAVY are real, loaded modules after running ``code`` in a new interpreter."""
    probe = (
        f"{code}\n"
        "import json, sys, types\n"
        "def real(name):\n"
        "    m = sys.modules.get(name)\n"
        # a deferred stand-in (camwidgets.widgets.deferred) is not a loaded module
        "    return m is not None and type(m).__name__ != '_Deferred'\n"
        f"print(json.dumps({{n: real(n) for n in {HEAVY!r}}}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert run.returncode == 0, run.stderr
    loaded: dict[str, bool] = json.loads(run.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    "argv",
    [["--version"], ["--help"], ["explain", "--help"], ["demo", "--help"], ["audit", "--help"]],
)
def test_cli_help_and_version_import_no_torch(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from camwidgets.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    code = main({argv!r})\n"
        "assert code == 0 and out.getvalue().strip(), (code, out.getvalue())\n"
    )
    loaded = _loaded_after(code)
    assert not loaded["torch"] and not loaded["plotly"], loaded


def test_gradcam_does_not_pull_torchvision_dynamo_or_sympy() -> None:
    loaded = _loaded_after("from camwidgets import GradCAM")
    assert loaded["torch"]  # the probe sees real imports
    assert not any(loaded[m] for m in ("torchvision", "torch._dynamo", "sympy", "plotly")), loaded


def test_zoo_model_and_engine_run_without_torchvision() -> None:
    code = (
        "from camwidgets import GradCAM, zoo\n"
        "m = zoo.load('shapes'); scene = zoo.sample_scenes(1, seed=2)[0]\n"
        "r = GradCAM(m.model, classes=m.classes, transform=m.transform).explain(scene.image)\n"
        "assert r.heatmap.shape[-2:] == (96, 96)\n"
    )
    loaded = _loaded_after(code)
    # Only torchvision is checked here: running the engine may import torch._dynamo and sympy
    # through torch itself (its meta-tensor shape kernels, used by engine/layouts.py to learn
    # other input sizes), which the import-time test above does not allow.
    assert not loaded["torchvision"], loaded


def test_explorer_defers_nbformat_and_jsonschema() -> None:
    loaded = _loaded_after("from camwidgets import GradCAM, Explorer\nimport plotly.io")
    assert loaded["plotly"]
    assert not loaded["nbformat"] and not loaded["jsonschema"], loaded
    assert not loaded["torchvision"] and not loaded["sympy"], loaded


def test_deferred_nbformat_still_works_for_whoever_uses_it() -> None:
    # A static plotly render needs nbformat's version; another caller imports a submodule
    # first. Both must get the real, single module.
    code = (
        "import sys\n"
        "from camwidgets import Explorer\n"
        "import nbformat.v4 as v4\n"
        "import nbformat\n"
        "import plotly.io._renderers as r\n"
        "assert sys.modules['nbformat.v4'] is v4 and nbformat.v4 is v4\n"
        "assert v4.new_notebook().nbformat == 4\n"
        "assert r.nbformat.__version__ == nbformat.__version__\n"
        "assert nbformat.validator.__spec__.loader is not None\n"
    )
    loaded = _loaded_after(code)
    assert loaded["nbformat"] and loaded["jsonschema"]


def test_figures_import_no_torch() -> None:
    loaded = _loaded_after("import camwidgets.figures")
    assert not loaded["torch"], loaded


def test_cli_explain_on_the_zoo_imports_no_torchvision(tmp_path: Path) -> None:
    out = tmp_path / "map.png"
    code = (
        f"from camwidgets.cli import main\nassert main(['explain', '--save', {str(out)!r}]) == 0\n"
    )
    loaded = _loaded_after(code)
    assert out.is_file()
    assert loaded["torch"] and not loaded["torchvision"], loaded  # see the zoo test above
