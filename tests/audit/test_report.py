"""The report: class averages and outliers recomputed here from the Parquet rows; layering."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from camwidgets.audit import Audit, audit, grid_regions, report_figures, write_report
from camwidgets.audit.report import grid_shape
from camwidgets.audit.results import upsample

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scenes_audit(tmp_path_factory: pytest.TempPathFactory) -> Audit:
    out = tmp_path_factory.mktemp("report") / "a.parquet"
    return audit("zoo:scenes:30:seed=4:mark=correct", "zoo:shortcut", out, progress=False)


def _normalised(row: pd.Series) -> np.ndarray:
    grid = np.asarray(row["coarse"], dtype=np.float64).reshape(row["coarse_h"], row["coarse_w"])
    grid = np.maximum(grid, 0)
    return grid / grid.sum() if grid.sum() > 0 else grid


def test_class_averages_and_distances_from_the_rows(scenes_audit: Audit) -> None:
    frame = scenes_audit.frame(maps=True)
    summaries = {s.index: s for s in scenes_audit.summary()}
    assert set(summaries) == set(frame["target"])
    distances = scenes_audit.distances()
    for cls, rows in frame.groupby("target"):
        maps = [_normalised(r) for _, r in rows.iterrows()]
        average = np.mean([m for m in maps if m.sum() > 0], axis=0)
        summary = summaries[int(cls)]  # type: ignore[call-overload]
        np.testing.assert_allclose(summary.average, average, atol=1e-6)
        assert summary.count == len(rows)
        big = upsample(average, 96, 96)
        assert big[summary.peak] == pytest.approx(big.max())
        for (position, _), m in zip(rows.iterrows(), maps, strict=True):
            assert distances[position] == pytest.approx(0.5 * np.abs(m - average).sum(), abs=1e-6)
        shares = np.mean([list(r) for r in rows["regions"]], axis=0)
        np.testing.assert_allclose(summary.regions, shares, atol=1e-6)
        assert summary.in_mask == pytest.approx(rows["in_mask"].mean())
        assert summary.hit_boxes == pytest.approx(rows["hit_boxes"].astype(float).mean())
        assert summary.accuracy == pytest.approx(
            (rows["top_classes"].str[0] == rows["label"]).mean()
        )
    worst = scenes_audit.outliers(5)
    assert list(worst["distance"]) == sorted(distances[~np.isnan(distances)], reverse=True)[:5]


def test_figures_hold_the_summaries(scenes_audit: Audit) -> None:
    figures = report_figures(scenes_audit, outliers=4)
    assert set(figures) == {"averages", "regions", "inside", "outliers"}
    summaries = scenes_audit.summary()
    heat = [t for t in figures["averages"].data if t.type == "heatmap"]
    marks = [t for t in figures["averages"].data if t.type == "scatter"]
    for trace, mark, summary in zip(heat, marks, summaries, strict=True):
        np.testing.assert_allclose(np.asarray(trace.z), summary.average)
        assert (mark.y[0], mark.x[0]) == summary.peak
    grids = [np.asarray(t.z) for t in figures["regions"].data]
    for grid, summary in zip(grids, summaries, strict=True):
        np.testing.assert_allclose(grid.reshape(-1), summary.regions)
    bars = {t.name: t.y for t in figures["inside"].data}
    assert bars["mass inside masks"] == pytest.approx([s.in_mask for s in summaries])
    pictures = [t for t in figures["outliers"].data if t.type == "image"]
    assert len(pictures) == 4  # zoo scenes are found again from the stored description


def test_standalone_html(scenes_audit: Audit, tmp_path: Path) -> None:
    page = write_report(scenes_audit, tmp_path / "sub" / "report.html")
    text = page.read_text()
    assert text.count("<script") >= 4 and "<script src=" not in text  # plotly.js inlined
    for name in ("averages", "regions", "inside", "outliers"):
        assert f'id="audit-{name}"' in text
    for summary in scenes_audit.summary():
        assert f"<td>{summary.name}</td><td>{summary.count}</td>" in text


def test_report_figures_follow_the_page_width(scenes_audit: Audit, tmp_path: Path) -> None:
    figures = scenes_audit.figures(outliers=4)
    for name, figure in figures.items():
        # No fixed width: a notebook output or the page gives it (it was 1260 px before).
        assert figure.layout.width is None, name
        assert figure.layout.autosize is True, name
    text = write_report(scenes_audit, tmp_path / "report.html").read_text()
    divs = re.findall(r'<div id="audit-(\w+)" class="plotly-graph-div" style="([^"]*)"', text)
    assert sorted(name for name, _ in divs) == sorted(figures)
    for _, style in divs:
        assert "width:100%" in style.replace(" ", "")
    # Plotly's responsive config redraws every figure when the window is resized.
    assert text.count('"responsive": true') == len(figures)
    assert "max-width:1300px" not in text


def test_region_share_colour_bars_use_the_unit_of_their_labels(scenes_audit: Audit) -> None:
    regions = scenes_audit.figures(outliers=1)["regions"]
    shown = [t for t in regions.data if t.type == "heatmap" and t.showscale is not False]
    assert shown, "the share maps draw a colour bar"
    for trace in shown:
        # The cells are written in percent (e.g. "42"), so the bar reads 0%..100%, not 0..1.
        assert trace.colorbar.tickformat == ".0%"
        assert "share" in trace.colorbar.title.text
        assert (trace.zmin, trace.zmax) == (0.0, 1.0)
        cells = np.asarray(trace.z)
        assert np.array_equal(np.asarray(trace.text), np.round(cells * 100).astype(int))


def test_grid_shapes_are_recognised() -> None:
    assert grid_shape(grid_regions(4)) == (4, 4)
    assert grid_shape(grid_regions(2, 3)) == (2, 3)
    assert grid_shape((("left", (0.0, 0.0, 1.0, 0.5)),)) is None


def test_layering_audit_imports_no_plotting_and_figures_no_torch() -> None:
    code = (
        "import sys, camwidgets.audit; "
        "print(sorted(m for m in ('plotly', 'ipywidgets') if m in sys.modules)); "
        "import camwidgets.figures.audit; "
        "print('torch' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[0] == "[]"
    figures_only = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, camwidgets.figures.audit; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert figures_only.returncode == 0, figures_only.stderr
    assert figures_only.stdout.strip() == "False"
    # The CLI hook is imported when the main parser is built: it must stay light.
    hook = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, camwidgets.audit.command; print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert hook.returncode == 0, hook.stderr
    assert hook.stdout.strip() == "False"


def test_figures_draw_the_most_frequent_or_the_asked_classes(scenes_audit: Audit) -> None:
    counts = {s.name: s.count for s in scenes_audit.summary()}
    figures = report_figures(scenes_audit, outliers=1, max_classes=2)
    drawn = [t.name for t in figures["averages"].data if t.type == "heatmap"]
    assert len(drawn) == 2
    assert sorted(counts.values(), reverse=True)[:2] == sorted(
        (counts[n] for n in drawn), reverse=True
    )
    only = report_figures(scenes_audit, outliers=1, classes=[drawn[0]])
    assert [t.name for t in only["averages"].data if t.type == "heatmap"] == [drawn[0]]
    with pytest.raises(ValueError, match="hexagon"):
        report_figures(scenes_audit, classes=["hexagon"])
