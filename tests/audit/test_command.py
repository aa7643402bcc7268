"""``camwidgets audit`` through its own parser hook, and ``python -m camwidgets.audit``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from camwidgets.audit.command import add_parser

ROOT = Path(__file__).resolve().parents[2]


def cli(argv: list[str]) -> int:
    """A tiny main parser with the sub-command hooked in, as ``camwidgets.cli`` does."""
    parser = argparse.ArgumentParser(prog="camwidgets")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


def test_writes_parquet_and_report_then_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "a.parquet", tmp_path / "r.html"
    argv = ["audit", "zoo:scenes:12:mark=correct", "--model", "zoo:shortcut", "--out", str(out)]
    assert cli([*argv, "--report", str(report), "--batch-size", "5", "--quiet"]) == 0
    assert pq.read_table(out).num_rows == 12
    assert "plotly" in report.read_text()
    before = sorted(p.name for p in out.iterdir())

    assert cli([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and "exists" in err
    assert sorted(p.name for p in out.iterdir()) == before  # untouched

    assert cli([*argv, "--force", "--target", "label", "--regions", "2x3", "--quiet"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 12
    assert table.column("target").equals(table.column("label"))
    assert {len(r) for r in table.column("regions").to_pylist()} == {6}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "hexagon"], "target"),
        (["--layer", "nope"], "layer"),
        (["--regions", "a-b"], "--regions"),
        (["--concurrency", "2"], "--ray"),
        (["--force", "--resume"], "contradict"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "a.parquet"
    argv = ["audit", "zoo:scenes:4", "--model", "zoo:shapes", "--out", str(out), "--quiet"]
    assert cli(argv + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("camwidgets audit: error: ") and err.count("\n") == 1
    assert message in err


def test_module_entry_point_then_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "camwidgets.audit", "zoo:scenes:6", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "6 images audited" in first.stdout
    assert cli(["audit", "zoo:scenes:9", "--out", str(out), "--resume"]) == 0
    assert "9 images audited" in capsys.readouterr().out
    assert sorted(pq.read_table(out).column("id").to_pylist(), key=int) == [
        str(i) for i in range(9)
    ]
    assert cli(["audit", str(tmp_path / "none"), "--out", str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("camwidgets audit: error:") and "does not exist" in err
