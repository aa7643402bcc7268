"""A class at once: start ``camwidgets demo`` and open N pages together in one headless Chromium.

For each page it reports how long the page took to show something (Voila's progress line, or
the panel) and to draw its first picture (the overlay heat map holds data in plotly.js), then
the median and the maximum, the machine's load average before and after, and how many pages
were told that the machine is full.

    python benchmarks/bench_class.py --students 8             # 8 pages, pool of 8 kernels
    python benchmarks/bench_class.py --students 2 --pool 0    # no pre-started kernels
    python benchmarks/bench_class.py --memory                 # MB held by one student's kernel

``--memory`` runs the demo notebook's cells in a real ipykernel (jupyter_client) and reads that
kernel's resident (RSS) and unique (USS) memory once the panel is built; the demo's help quotes
the figure (``camwidgets.cli.seats.MB_PER_STUDENT``). Chromium: Debian's /usr/bin/chromium
(Playwright never downloads a browser here), launched as in tests/browser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "camwidgets" / "demo" / "app.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
URL = re.compile(r"open (http://127\.0\.0\.1:\d+/\S*)")
# The first picture: the panel's heat map trace (named "heatmap", its TraceRole) holds values.
DRAWN = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(
    p => (p.data || []).some(t => t.name === 'heatmap' && t.z && t.z.length > 0))"""
SHOWING = """() => {
    const t = document.getElementById('loading_text');
    return (t && t.textContent.trim().length > 0)
        || document.querySelectorAll('.js-plotly-plot').length > 0;
}"""
FULL = "() => document.body && document.body.innerText.includes('This machine is full')"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=8, help="pages opened at once")
    parser.add_argument("--pool", type=int, default=None, help="pre-started kernels (default N)")
    parser.add_argument("--seats", type=int, default=None, help="demo --students (default N+2)")
    parser.add_argument(
        "--warm", type=float, default=None, help="most seconds to let the pool warm"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per page, seconds")
    parser.add_argument("--memory", action="store_true", help="measure one kernel's memory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure_memory() if args.memory else measure_class(args)
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


# -- one student's memory ----------------------------------------------------------------------


def measure_memory() -> dict[str, Any]:
    """Run the app's cells in a real kernel; its memory once the panel is built."""
    import nbformat
    import psutil
    from jupyter_client.manager import start_new_kernel

    cells = [c.source for c in nbformat.read(APP, as_version=4).cells if c.cell_type == "code"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    manager, client = start_new_kernel(kernel_name="python3", env=env)
    try:
        pid = manager.provisioner.pid if manager.provisioner else None
        kernel = psutil.Process(pid)
        before = kernel.memory_full_info()
        start = time.perf_counter()
        for source in cells:
            reply = client.execute_interactive(source, timeout=300, output_hook=lambda m: None)
            if reply["content"]["status"] != "ok":
                raise RuntimeError(f"the app's cell failed: {reply['content']}")
        elapsed = time.perf_counter() - start
        after = kernel.memory_full_info()
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    mb = 2**20
    return {
        "kernel_rss_mb_idle": round(before.rss / mb),
        "kernel_rss_mb_with_panel": round(after.rss / mb),
        "kernel_uss_mb_with_panel": round(after.uss / mb),
        "app_run_s": round(elapsed, 2),
        "load_average": os.getloadavg(),
    }


# -- a class -----------------------------------------------------------------------------------


def measure_class(args: argparse.Namespace) -> dict[str, Any]:
    """Start the demo, let its pool fill, open the pages together and time each one."""
    pool = args.students if args.pool is None else args.pool
    seats = args.seats if args.seats is not None else args.students + 2
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "camwidgets.cli", "demo", "--port", "0", "--no-browser",
        "--pool", str(pool), "--students", str(seats),
    ]  # fmt: skip
    log = Path(tempfile.mkstemp(prefix="bench-class-", suffix=".log")[1])
    started = time.perf_counter()
    with log.open("wb") as out:
        demo = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=out, env=env, cwd=ROOT, start_new_session=True
        )
    try:
        url = _read_url(demo, timeout=120.0)
        ready_s = time.perf_counter() - started
        warm = args.warm if args.warm is not None else 600.0
        warmed_s = _wait_pool(demo, pool, warm)
        load_before = os.getloadavg()
        pages = asyncio.run(_open_pages(url, args.students, args.timeout))
        load_after = os.getloadavg()
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
    drawn = [p["first_picture_s"] for p in pages if p["first_picture_s"] is not None]
    return {
        "students": args.students,
        "pool": pool,
        "seats": seats,
        "server_ready_s": round(ready_s, 1),
        "pool_warm_s": round(warmed_s, 1),
        "pages_drawn": len(drawn),
        "pages_full": sum(p["full"] for p in pages),
        "first_picture_median_s": round(statistics.median(drawn), 1) if drawn else None,
        "first_picture_max_s": round(max(drawn), 1) if drawn else None,
        "first_shown_max_s": round(max(p["first_shown_s"] or 0.0 for p in pages), 1),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpus": os.cpu_count(),
        "pages": pages,
        "server_log": str(log),
    }


def _read_url(demo: subprocess.Popen[bytes], timeout: float) -> str:
    """The URL the demo prints once Voila listens."""
    assert demo.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = demo.stdout.readline().decode()
        if not line and demo.poll() is not None:
            raise RuntimeError(f"camwidgets demo exited with status {demo.returncode}")
        found = URL.search(line)
        if found:
            return found.group(1)
    raise TimeoutError("camwidgets demo printed no URL")


def _wait_pool(demo: subprocess.Popen[bytes], pool: int, limit: float) -> float:
    """Until ``pool`` kernels run and sit idle (their app has run), at most ``limit`` seconds.

    Voila logs "pool filled" once the kernels are started, before their notebooks ran; a
    teacher starts the demo before the class comes, so the pages are opened once the kernels
    are quiet: less than 5% of a core each over two seconds. Returns the seconds waited.
    """
    import psutil

    start = time.monotonic()
    while pool and time.monotonic() - start < limit:
        try:
            kernels = [
                p
                for p in psutil.Process(demo.pid).children(recursive=True)
                if "ipykernel" in " ".join(p.cmdline())
            ]
            if len(kernels) >= pool:
                for k in kernels:
                    k.cpu_percent(None)
                time.sleep(2.0)
                if all(k.cpu_percent(None) < 5.0 for k in kernels):
                    break
            else:
                time.sleep(1.0)
        except psutil.Error:
            time.sleep(1.0)
    return time.monotonic() - start


async def _open_pages(url: str, count: int, timeout: float) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            pages = [await context.new_page() for _ in range(count)]
            return list(await asyncio.gather(*(_time_page(p, url, timeout) for p in pages)))
        finally:
            await browser.close()


async def _time_page(page: Any, url: str, timeout: float) -> dict[str, Any]:
    """Seconds from asking for the page to its first visible text and its first picture."""
    start = time.perf_counter()
    result: dict[str, Any] = {"first_shown_s": None, "first_picture_s": None, "full": False}
    await page.goto(url, wait_until="commit", timeout=timeout * 1000)
    deadline = start + timeout
    while time.perf_counter() < deadline:
        now = time.perf_counter() - start
        if result["first_shown_s"] is None and await _true(page, SHOWING):
            result["first_shown_s"] = round(now, 2)
        if await _true(page, DRAWN):
            result["first_picture_s"] = round(now, 2)
            break
        if await _true(page, FULL):
            result["full"] = True
            break
        await asyncio.sleep(0.1)
    return result


async def _true(page: Any, script: str) -> bool:
    try:
        return bool(await page.evaluate(script))
    except Exception:  # the page is navigating or still empty
        return False


if __name__ == "__main__":
    raise SystemExit(main())
