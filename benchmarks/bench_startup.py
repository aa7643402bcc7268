"""Start-up figures: fresh interpreters, several runs, wall and CPU seconds, the load average.

    python benchmarks/bench_startup.py                       # this checkout
    python benchmarks/bench_startup.py --before /path/to/old  # and an older checkout, interleaved

Each case runs in a new Python with ``PYTHONPATH`` set to the checkout; runs of the two
checkouts alternate, so a neighbour's load falls on both alike. Reported per case: the median
wall time and the median CPU time (user + system of the child: less sensitive to a busy
machine than wall time), and the 1-minute load average around the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
CASES = {
    "import torch": [sys.executable, "-c", "import torch"],
    "from camwidgets import GradCAM": [sys.executable, "-c", "from camwidgets import GradCAM"],
    "from camwidgets import GradCAM, Explorer, zoo": [
        sys.executable,
        "-c",
        "from camwidgets import GradCAM, Explorer, zoo",
    ],
    "camwidgets --version": [sys.executable, "-m", "camwidgets.cli", "--version"],
    "camwidgets explain (96 px scene)": [],  # filled in main(): needs an output path
}


def run_once(command: list[str], root: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    before = os.times()
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=root, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="an older checkout to compare with")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp()) / "map.png"
    CASES["camwidgets explain (96 px scene)"] = [
        sys.executable, "-m", "camwidgets.cli", "explain", "--save", str(out), "--force",
    ]  # fmt: skip
    roots = {"after": HERE} | ({"before": args.before.resolve()} if args.before else {})
    times: dict[str, dict[str, list[tuple[float, float]]]] = {
        name: {case: [] for case in CASES} for name in roots
    }
    loads = [os.getloadavg()[0]]
    for _ in range(args.runs):
        for case, command in CASES.items():
            for name, root in roots.items():
                times[name][case].append(run_once(command, root))
        loads.append(os.getloadavg()[0])
    report = {
        name: {
            case: {
                "wall_s": round(statistics.median(w for w, _ in runs), 2),
                "cpu_s": round(statistics.median(c for _, c in runs), 2),
            }
            for case, runs in cases.items()
        }
        for name, cases in times.items()
    }
    report["load_average_1min"] = {"min": min(loads), "max": max(loads)}  # type: ignore[assignment]
    report["cpus"] = os.cpu_count()  # type: ignore[assignment]
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
