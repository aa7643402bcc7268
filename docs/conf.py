"""Sphinx configuration of the camwidgets documentation (`make docs`).

The site is built with warnings as errors (`sphinx-build -W --keep-going -n`). Pages are MyST
Markdown; the tutorials are the teaching notebooks in ``notebooks/``, executed by myst-nb
through a jupyter-cache (a notebook runs again only when its code changes). The helpers that
make this work offline and nitpick-clean live in ``docs/_ext/camwidgets_docs.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # autodoc imports this checkout's camwidgets, never another one
sys.path.insert(0, str(DOCS / "_ext"))

# The notebooks' kernels inherit the environment: the same checkout, and one thread each, as the
# notebook tests run them (this 2-core machine is shared).
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import camwidgets  # noqa: E402  (after the path is set)

project = "camwidgets"
author = "the camwidgets developers"
copyright = "the camwidgets developers"
release = camwidgets.__version__
version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # Google-style docstrings
    "sphinx.ext.mathjax",
    "camwidgets_docs",  # notebooks in, plotly outputs, internal cross-references, the CLI
]

# -- sources ----------------------------------------------------------------------------------
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "**.ipynb_checkpoints"]
# Where the notebooks of notebooks/ are copied for the build (gitignored; see camwidgets_docs).
camwidgets_notebooks_source = str(ROOT / "notebooks")
camwidgets_notebooks_target = "tutorials/notebooks"

# -- MyST ---------------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist", "attrs_inline"]
myst_heading_anchors = 3

# -- notebooks (myst-nb) -------------------------------------------------------------------------
# Outputs are real: every notebook is executed for the site. "cache" keeps each executed
# notebook in a jupyter-cache under docs/_build, keyed by its code cells, so a rebuild runs only
# the notebooks whose code changed. A notebook that raises fails the build.
nb_execution_mode = os.environ.get("CAMWIDGETS_DOCS_EXECUTE", "cache")
nb_execution_cache_path = str(DOCS / "_build" / ".jupyter_cache")
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_in_temp = False  # run in notebooks/' copy folder, as nbval runs them
# The panel's output carries a static PNG beside the widget view (Explorer's mime bundle). A
# static site has no kernel to drive a widget, so the picture is what the page shows, and no
# widget JavaScript is loaded from a CDN (the site works offline).
nb_mime_priority_overrides = [
    ("html", "application/vnd.jupyter.widget-view+json", None),
    ("html", "application/vnd.jupyter.widget-state+json", None),
]
nb_ipywidgets_js: dict[str, dict[str, str]] = {}
nb_merge_streams = True
nb_output_stderr = "show"

# -- API reference --------------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_attr_annotations = True
napoleon_use_ivar = True  # dataclass fields are documented once, by autodoc

# Every reference must resolve, except into libraries whose inventories cannot be fetched here
# (the build is offline): their names are written as they are.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|PIL|plotly|go|ipywidgets|w|pandas|pd|pyarrow|pa|ray|tqdm)(\..*)?"),
    (r"py:.*", r"(argparse|collections|typing|typing_extensions|pathlib|os|enum|json)\..*"),
    (r"py:.*", r"(concurrent|threading|weakref|dataclasses|types|io|abc|numbers)\..*"),
    (r"py:class", r"(Tensor|Module|ndarray|Image|Figure|FigureWidget|Path|DataFrame|Dataset)"),
    (r"py:class", r"(ArrayLike|NDArray|Callable|Iterable|Iterator|Sequence|Mapping|Any)"),
    (r"py:class", r"(np|torch|nn|npt|torchvision)\..*"),
    # Internal protocols and helpers that appear in public signatures, by name wherever they
    # live (modules are split and moved; the names stay).
    (r"py:class", r"camwidgets\..*\.(_\w+|Source|IndexedSource|EngineInfo|Panel|Root|Scorer)"),
    (r"py:class", r"camwidgets\..*\.ActivationSource"),
    # The engine's parts (GradCAM is composed of them), the compare panel's widget tree and the
    # torchvision-free preprocessing pipeline: internal, named in signatures and bases only.
    (
        r"py:class",
        r"camwidgets\..*\.(LayerCatalog|TargetChecks|TaskQueries|MethodGatherer|ComparePanel|Compose)",
    ),
    (r"py:.*", r"(optional|callable|iterable|sequence|mapping)"),
]

# -- HTML -----------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"camwidgets {release}"
html_static_path = ["_static"]
html_theme_options = {
    "source_repository": "",
    "navigation_with_keys": True,
}
html_show_sourcelink = False
