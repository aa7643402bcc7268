"""Memory per re-run of a notebook cell ``ex = Explorer(model); ex.show(img)`` in a real kernel.

Starts an IPython kernel (ipykernel, through jupyter_client) in a fresh process, builds a
ResNet-18 (torchvision, random weights) and a 224x224 picture there, then runs the same cell
``--runs`` times, each time with the same cell id, as JupyterLab does when a cell is re-run.
After every run a second cell reads the kernel's resident memory (RSS, from /proc) and the
Python heap traced by ``tracemalloc`` (numpy buffers included; torch's tensors are not traced,
RSS sees them). Growth per re-run is the slope after ``--warmup`` runs (a least-squares line,
so one late garbage collection does not decide it). No front end is attached: the widgets'
messages go to the client, which drops them.

    python benchmarks/bench_rerun_memory.py [--runs 50] [--warmup 5] [--repo PATH]

``--repo`` imports camwidgets from another checkout (e.g. an older commit) to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
import time
from pathlib import Path
from typing import Any

SETUP = """
import gc, json, os, tracemalloc
import numpy as np, torch, torchvision
from camwidgets import Explorer
torch.manual_seed(0)
torch.set_num_threads(2)
model = torchvision.models.resnet18(weights=None).eval()
rng = np.random.default_rng(0)
img = (rng.random((256, 288, 3)) * 255).astype(np.uint8)
PAGE = os.sysconf("SC_PAGE_SIZE")
def _measure(collect):
    if collect:
        gc.collect()
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * PAGE
    return json.dumps({"rss": rss, "traced": tracemalloc.get_traced_memory()[0]})
tracemalloc.start()
"""

CELL = "ex = Explorer(model)\nex.show(img)"


class Kernel:
    """One kernel process and a client that runs cells with a given cell id."""

    def __init__(self, repo: Path) -> None:
        from jupyter_client.manager import KernelManager

        env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="2")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.manager = KernelManager(kernel_cmd=None)
        self.manager.kernel_spec  # noqa: B018 - resolve the spec before starting
        self.manager.start_kernel(env=env, extra_arguments=[])
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, cell: str, timeout: float = 300) -> str:
        """Run ``code`` as cell ``cell``; return its printed output (raise on an error)."""
        client = self.client
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = client.session.msg("execute_request", content, metadata={"cellId": cell})
        client.shell_channel.send(msg)
        deadline = time.monotonic() + timeout
        printed: list[str] = []
        done = False
        while not done:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {cell!r} did not finish in {timeout} s")
            try:
                out = client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if out["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
                continue
            kind, body = out["msg_type"], out["content"]
            if kind == "stream":
                printed.append(body["text"])
            elif kind == "error":
                raise RuntimeError("\n".join(body["traceback"]))
            elif kind == "status" and body["execution_state"] == "idle":
                done = True
        return "".join(printed)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def slope(values: list[float]) -> float:
    """Least-squares growth per step."""
    xs = list(range(len(values)))
    mx, my = statistics.fmean(xs), statistics.fmean(values)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, values, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den if den else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args()
    if args.runs <= args.warmup + 1:
        parser.error("--runs must exceed --warmup by at least 2")
    kernel = Kernel(args.repo.resolve())
    rows: list[dict[str, Any]] = []
    try:
        kernel.run(SETUP, "setup")
        started = time.monotonic()
        for run in range(args.runs):
            kernel.run(CELL, "the-re-run-cell")
            seen = json.loads(kernel.run("print(_measure(False))", "measure"))
            rows.append(seen)
            print(
                f"run {run + 1:3d}: RSS {seen['rss'] / 2**20:8.1f} MiB, "
                f"traced {seen['traced'] / 2**20:7.2f} MiB",
                flush=True,
            )
        final = json.loads(kernel.run("print(_measure(True))", "measure"))
        seconds = time.monotonic() - started
    finally:
        kernel.close()
    tail = rows[args.warmup :]
    rss_slope = slope([r["rss"] for r in tail]) / 2**20
    traced_slope = slope([r["traced"] for r in tail]) / 2**20
    span = len(tail) - 1
    rss_total = (tail[-1]["rss"] - tail[0]["rss"]) / 2**20
    summary = {
        "repo": str(args.repo),
        "runs": args.runs,
        "warmup": args.warmup,
        "rss_mib_per_rerun_slope": round(rss_slope, 3),
        "rss_mib_per_rerun_endpoints": round(rss_total / span, 3),
        "traced_mib_per_rerun_slope": round(traced_slope, 4),
        "rss_mib_first_last": [round(rows[0]["rss"] / 2**20, 1), round(rows[-1]["rss"] / 2**20, 1)],
        "rss_mib_after_gc": round(final["rss"] / 2**20, 1),
        "seconds": round(seconds, 1),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    sys.exit(0)


if __name__ == "__main__":
    main()
