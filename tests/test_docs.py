"""The README stays short and its links land; the documentation's own machinery works.

The site itself is built by `make docs` (in CI, warnings as errors). These tests keep the README
honest (at most 300 lines, every link into the repository resolves, the ten-line example runs)
and check the docs extension that renders notebook outputs (plotly figures, the panel's picture)
on a tiny Sphinx project of its own.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SECTIONS = ("tutorials", "how-to", "explanation", "reference")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def readme_links() -> list[str]:
    """Every Markdown link and image target in the README (code blocks excluded)."""
    text = re.sub(r"```.*?```", "", README.read_text(encoding="utf-8"), flags=re.S)
    return LINK.findall(text)


def test_readme_fits_in_300_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_links_into_the_repository_resolve() -> None:
    local = [t for t in readme_links() if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert local, "the README links no page of the docs"
    missing = [t for t in local if not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README links to paths that do not exist: {missing}"


def test_readme_links_pages_of_the_site() -> None:
    """Links into docs/ name pages the site builds: Markdown pages of a section, each opening
    with a title, and at least one page of every section."""
    pages = [t.split("#")[0] for t in readme_links() if t.startswith("docs/")]
    markdown = [p for p in pages if p.endswith(".md")]
    for page in markdown:
        path = ROOT / page
        assert path.parts[len(ROOT.parts) + 1] in SECTIONS, f"{page} is in no section"
        assert first_heading(path), f"{page} does not start with a '# Title' line"
    linked_sections = {Path(p).parts[1] for p in markdown}
    unlinked = set(SECTIONS) - linked_sections
    assert not unlinked, f"sections the README does not link: {unlinked}"


def test_readme_shows_the_panel_picture() -> None:
    images = [t for t in readme_links() if t.endswith(".png")]
    assert "docs/_static/panel.png" in images
    picture = ROOT / "docs" / "_static" / "panel.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size < 400_000, "keep the committed screenshot small"


def first_heading(path: Path) -> str | None:
    """The page's `# Title` (after optional front matter), or None."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0] == "---":  # MyST front matter (a text notebook's kernelspec)
        lines = lines[lines.index("---", 1) + 1 :]
    body = [line for line in lines if line.strip()]
    return body[0][2:].strip() if body and body[0].startswith("# ") else None


@pytest.mark.parametrize("section", SECTIONS)
def test_every_docs_page_starts_with_a_title(section: str) -> None:
    pages = sorted((DOCS / section).glob("*.md"))
    assert pages, f"docs/{section} has no page"
    untitled = [p.name for p in pages if not first_heading(p)]
    assert not untitled, f"pages without a '# Title' first line: {untitled}"


def test_ten_line_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example, as written (outside Jupyter, `show` says where to see the panel)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Ten lines", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert 5 <= len(code.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    res = namespace["res"]
    assert res.target_name == "star" and res.layer == "layer4"
    assert tuple(res.heatmap.shape) == tuple(namespace["scene"].image.shape[:2])
    assert res.coarse.shape == namespace["engine"].layer_shapes["layer4"][1:]


# -- the docs extension, on a project of its own -------------------------------------------------


def png_bytes() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def tiny_notebook() -> dict[str, Any]:
    """A notebook with outputs as the tutorials have them: a plotly figure through the
    plotly_mimetype renderer, and a panel output (widget view + static PNG + text)."""
    figure = {"data": [{"type": "bar", "x": [1, 2], "y": [3, 4]}], "layout": {"title": "</b>"}}
    panel = {
        "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2},
        "image/png": base64.b64encode(png_bytes()).decode(),
        "text/plain": "Root(...)",
    }
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"abc": {"x": "y" * 50}}}}
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "language_info": {"name": "python"},
            **state,
        },
        "cells": [
            {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# A tutorial"},
            {
                "cell_type": "code",
                "id": "a",
                "metadata": {},
                "execution_count": 1,
                "source": "fig.show()",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"application/vnd.plotly.v1+json": figure},
                    }
                ],
            },
            {
                "cell_type": "code",
                "id": "b",
                "metadata": {},
                "execution_count": 2,
                "source": "explorer.show(image)",
                "outputs": [{"output_type": "display_data", "metadata": {}, "data": panel}],
            },
        ],
    }


@pytest.mark.slow
def test_docs_extension_renders_notebook_outputs(tmp_path: Path) -> None:
    """Notebooks are copied in from their folder; a plotly output becomes a figure drawn by the
    plotly.js copied beside the pages; the panel shows as its PNG, with no widget state or
    widget JavaScript; a build with warnings as errors passes."""
    pytest.importorskip("myst_nb")
    notebooks, source, out = tmp_path / "notebooks", tmp_path / "src", tmp_path / "out"
    notebooks.mkdir()
    (notebooks / "01-a.ipynb").write_text(json.dumps(tiny_notebook()))
    source.mkdir()
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    # The site's own configuration, with this project's notebooks and no execution.
    conf = conf.replace("DOCS = Path(__file__).resolve().parent", f"DOCS = Path({str(DOCS)!r})")
    conf = conf.replace('str(ROOT / "notebooks")', repr(str(notebooks)))
    conf = conf.replace('html_static_path = ["_static"]', "html_static_path = []")
    (source / "conf.py").write_text(conf)
    (source / "index.md").write_text(
        "# Tiny\n\n```{toctree}\n:glob:\n\ntutorials/notebooks/*\n```\n"
    )
    # In a subprocess: conf.py sets environment variables for the notebooks' kernels.
    command = [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html"]
    command += [str(source), str(out)]
    env = {**os.environ, "CAMWIDGETS_DOCS_EXECUTE": "off"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (source / "tutorials" / "notebooks" / "01-a.ipynb").exists()
    page = (out / "tutorials" / "notebooks" / "01-a.html").read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot(") == 1
    assert "DOMContentLoaded" in page  # drawn after the theme has loaded plotly.js
    assert "<\\/b>" in page and '"title": "</b>"' not in page  # no early </script>
    assert 'src="../../_static/plotly.min.js' in page
    assert (out / "_static" / "plotly.min.js").stat().st_size > 1_000_000
    assert "<img" in page and ".png" in page  # the panel's picture
    assert "widget-state+json" not in page and "y" * 50 not in page
    assert "embed-amd" not in page and "require.min.js" not in page
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "plotly.min.js" not in index  # plotly.js only where a figure is drawn
