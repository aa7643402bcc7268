"""Sphinx helpers for the camwidgets site.

- The teaching notebooks live in ``notebooks/`` (where nbval runs them); they are copied into
  ``docs/tutorials/notebooks/`` (gitignored) at the start of a build, so a notebook added there
  joins the tutorials with no edit to the docs.
- Plotly figures shown with the ``plotly_mimetype`` renderer (as the notebooks do, to stay small)
  are drawn with the plotly.js that ships in the plotly package, copied next to the pages: the
  site needs no network.
- Type hints name objects by the module that defines them (``camwidgets.engine.result.CamResult``);
  the reference documents them where users import them (``camwidgets.CamResult``). A reference to
  an internal path resolves to the one documented object of that name.
- ``.. camwidgets-cli::`` prints ``camwidgets --help`` and each subcommand's help, from the parser
  itself, so the reference cannot drift from the command.
"""

from __future__ import annotations

import filecmp
import html
import json
import logging as logging_module
import os
import re
import shutil
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"


# -- notebooks ------------------------------------------------------------------------------------


def sync_notebooks(app: Sphinx) -> None:
    """Mirror notebooks/*.ipynb into the source tree; unchanged files keep their times, so an
    incremental build re-reads only what changed."""
    source = Path(app.config.camwidgets_notebooks_source)
    target = Path(app.srcdir) / app.config.camwidgets_notebooks_target
    target.mkdir(parents=True, exist_ok=True)
    wanted = {path.name: path for path in sorted(source.glob("*.ipynb"))}
    for stale in target.glob("*.ipynb"):
        if stale.name not in wanted:
            stale.unlink()
    for name, path in wanted.items():
        copy = target / name
        if not copy.exists() or not filecmp.cmp(path, copy, shallow=False):
            shutil.copyfile(path, copy)


def execute_notebooks_in_parallel(app: Sphinx) -> None:
    """Run the tutorials that the jupyter-cache does not hold yet, all at once, before reading.

    myst-nb executes each notebook when Sphinx reads it, one after another (documents are read
    in chunks, and the notebooks sit in one). Running the missing ones first over a process
    pool (jupyter-cache's ``local-parallel`` executor, one process per core) puts them in the
    cache, where the read phase then finds them. A notebook that fails here is simply not
    cached: the read phase runs it again and fails the build with its traceback.
    """
    if app.config.nb_execution_mode != "cache":
        return
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.executors import load_executor

    cache = get_cache(app.config.nb_execution_cache_path)
    folder = Path(app.srcdir) / app.config.camwidgets_notebooks_target
    missing = []
    for path in sorted(folder.glob("*.ipynb")):
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            missing.append(cache.add_nb_to_project(str(path)).pk)
    if len(missing) < 2:
        return  # nothing to run side by side
    logger.info("camwidgets: executing %d notebooks in parallel", len(missing))
    # jupyter-cache turns on multiprocessing's chatter at INFO; the build reports only problems.
    quiet = logging_module.getLogger("camwidgets_docs.jupyter_cache")
    quiet.setLevel(logging_module.WARNING)
    executor = load_executor("local-parallel", cache, logger=quiet)
    result = executor.run_and_cache(
        filter_pks=missing, timeout=app.config.nb_execution_timeout, allow_errors=False
    )
    for uri in [*result.excepted, *result.errored]:
        logger.info("camwidgets: %s failed in the parallel run; it runs again when read", uri)


# -- plotly outputs -------------------------------------------------------------------------------


class PlotlyMimeRenderer:
    """A myst-nb mime renderer (its ``MimeRenderPlugin`` protocol) for plotly's JSON outputs."""

    mime_priority_overrides: ClassVar[list[tuple[str, str, int | None]]] = [
        ("html", PLOTLY_MIME, 15)
    ]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        figure = data.content if isinstance(data.content, dict) else json.loads(data.content)
        env = renderer.renderer.sphinx_env
        pages: set[str] = env.camwidgets_plotly_pages
        pages.add(env.docname)
        number = env.new_serialno("camwidgets-plotly")
        div_id = f"plotly-{env.docname.replace('/', '-')}-{number}"
        config = {"responsive": True, "displaylogo": False, **figure.get("config", {})}
        # JSON inside <script> must not close the tag early.
        payload = json.dumps(
            {"data": figure.get("data", []), "layout": figure.get("layout", {}), "config": config}
        ).replace("</", "<\\/")
        markup = (
            f'<div class="camwidgets-plotly" id="{html.escape(div_id)}"></div>\n'
            # The theme loads scripts at the end of the body: draw once the page is parsed.
            "<script>window.addEventListener('DOMContentLoaded', function() {\n"
            f"const f = {payload};\n"
            f"Plotly.newPlot({json.dumps(div_id)}, f.data, f.layout, f.config); }});</script>"
        )
        return [nodes.raw("", markup, format="html", classes=["output", "plotly"])]


def register_plotly_renderer() -> None:
    """Add the plotly renderer to myst-nb's plugins.

    myst-nb finds mime renderers through the ``myst_nb.mime_renderers`` entry point group, which
    only installed distributions can fill; the docs are built from a checkout, so the one
    function that lists them is wrapped instead (it is looked up at call time).
    """
    from myst_nb.core import render

    if getattr(render.load_mime_renders, "camwidgets", False):
        return
    original = render.load_mime_renders

    def load_mime_renders() -> list[Any]:
        return [*original(), PlotlyMimeRenderer]

    load_mime_renders.camwidgets = True  # type: ignore[attr-defined]
    render.load_mime_renders = load_mime_renders  # type: ignore[assignment]


def drop_widget_state() -> None:
    """Leave the notebooks' widget state (megabytes of JSON) out of the pages.

    The widget views are not rendered (``nb_mime_priority_overrides`` in conf.py: the panel's
    static picture is shown instead), so the state they would need is dead weight; myst-nb
    embeds it whenever the executed notebook's metadata carries it.
    """
    from myst_nb.core.render import NbElementRenderer

    original = NbElementRenderer.render_nb_finalise
    if getattr(original, "camwidgets", False):
        return

    def render_nb_finalise(self: Any, metadata: dict[str, Any]) -> None:
        original(self, {k: v for k, v in metadata.items() if k != "widgets"})

    render_nb_finalise.camwidgets = True  # type: ignore[attr-defined]
    NbElementRenderer.render_nb_finalise = render_nb_finalise  # type: ignore[method-assign]


def init_env(app: Sphinx, env: BuildEnvironment, docnames: list[str]) -> None:
    if not hasattr(env, "camwidgets_plotly_pages"):
        env.camwidgets_plotly_pages = set()
    env.camwidgets_plotly_pages.difference_update(docnames)  # re-read pages say again


def merge_env(app: Sphinx, env: BuildEnvironment, docnames: Any, other: BuildEnvironment) -> None:
    env.camwidgets_plotly_pages |= getattr(other, "camwidgets_plotly_pages", set())


def add_plotly_js(app: Sphinx, pagename: str, *args: Any) -> None:
    """plotly.js only on the pages that draw a figure (it is 4.8 MB)."""
    if pagename in getattr(app.env, "camwidgets_plotly_pages", set()):
        app.add_js_file(PLOTLY_JS, priority=200)


def copy_plotly_js(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    if not getattr(app.env, "camwidgets_plotly_pages", None):
        return
    import plotly

    source = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    target = Path(app.outdir) / "_static" / PLOTLY_JS
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() or os.path.getsize(target) != os.path.getsize(source):
        shutil.copyfile(source, target)


# -- cross-references -----------------------------------------------------------------------------


def resolve_internal(
    app: Sphinx, env: BuildEnvironment, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve ``camwidgets.<module path>.Name`` to the documented ``Name`` it is the same object
    as (documented under its public path), when exactly one camwidgets object has that name."""
    if node.get("refdomain") != "py":
        return None
    target: str = node.get("reftarget", "")
    if not target.startswith("camwidgets."):
        return None
    name = target.rsplit(".", 1)[-1]
    domain = env.get_domain("py")
    matches = [
        full
        for full in domain.objects  # type: ignore[attr-defined]
        if full.startswith("camwidgets.") and full.rsplit(".", 1)[-1] == name
    ]
    if not matches:
        return None
    public = min(matches, key=lambda full: (full.count("."), full))
    ambiguous = [m for m in matches if m.count(".") == public.count(".") and m != public]
    if ambiguous:
        return None
    resolved: nodes.Element | None = domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], public, node, contnode
    )
    if resolved is None:
        resolved = domain.resolve_xref(
            env, node["refdoc"], app.builder, "obj", public, node, contnode
        )
    return resolved


# -- docstrings -----------------------------------------------------------------------------------


def keep_attribute_prose(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Napoleon reads ``Type: description`` on an attribute's or property's first line as its
    type. Types here come from the annotations, so a first-line colon is prose ("Layers where
    alpha = W_c / (h w) is proven: ..."): it is moved to the end of the line, where napoleon
    leaves it in the description. Runs before napoleon (priority 400 < 500)."""
    if what not in ("attribute", "property", "data") or not lines:
        return
    head, colon, tail = lines[0].partition(": ")
    if colon and head.strip() and tail.strip():
        lines[0:1] = [f"{head}:", tail]


GROUPED_ENTRY = re.compile(r"^(\s+)([A-Za-z_]\w*(?:,\s*[A-Za-z_]\w*)+):\s+(.*)$")


def split_grouped_entries(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """``a, b, c: what they are`` in an Args/Attributes section becomes one entry per name
    (napoleon would read ``a, b, c`` as one name with types). Runs before napoleon."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = GROUPED_ENTRY.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent, names, text = match.groups()
        j = i + 1  # the entry's continuation lines are indented deeper
        while (
            j < len(lines)
            and lines[j].strip()
            and len(lines[j]) - len(lines[j].lstrip()) > len(indent)
        ):
            j += 1
        for each in (n.strip() for n in names.split(",")):
            out.append(f"{indent}{each}: {text}")
            out.extend(lines[i + 1 : j])
        i = j
    lines[:] = out


# -- the command line -----------------------------------------------------------------------------


class CliHelp(SphinxDirective):
    """``camwidgets --help`` and ``camwidgets COMMAND --help`` as literal blocks."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        import argparse

        from camwidgets.cli import build_parser

        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "96"  # argparse wraps to the terminal; pages have a fixed width
        try:
            parser = build_parser()
            out: list[nodes.Node] = [self._block("camwidgets --help", parser.format_help())]
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for name, sub in action.choices.items():
                        section = nodes.section(ids=[f"camwidgets-{name}"])
                        section += nodes.title(text=f"camwidgets {name}")
                        section += self._block(f"camwidgets {name} --help", sub.format_help())
                        out.append(section)
        finally:
            if old is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = old
        return out

    @staticmethod
    def _block(command: str, text: str) -> nodes.literal_block:
        content = f"$ {command}\n{text.rstrip()}"
        block = nodes.literal_block(content, content)
        block["language"] = "text"
        return block


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("camwidgets_notebooks_source", "", "env")
    app.add_config_value("camwidgets_notebooks_target", "tutorials/notebooks", "env")
    register_plotly_renderer()
    drop_widget_state()
    app.connect("config-inited", lambda app, config: sync_notebooks(app), priority=100)
    app.connect("builder-inited", execute_notebooks_in_parallel)
    app.connect("env-before-read-docs", init_env)
    app.connect("env-merge-info", merge_env)
    app.connect("html-page-context", add_plotly_js)
    app.connect("build-finished", copy_plotly_js)
    app.connect("missing-reference", resolve_internal)
    app.connect("autodoc-process-docstring", keep_attribute_prose, priority=400)
    app.connect("autodoc-process-docstring", split_grouped_entries, priority=400)
    app.add_directive("camwidgets-cli", CliHelp)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
