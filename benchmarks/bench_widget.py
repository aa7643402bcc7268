"""Kernel-side latency and message size of the Explorer panel's updates.

ResNet-50 (seeded random weights) at 224x224 on the CPU with 2 threads. For each kind of update,
the time from setting a control's ``.value`` until the figure and status line are updated (the
handlers run synchronously), and the bytes sent to the front end (JSON + binary buffers of every
widget's comm messages). A class switch is compared with the engine alone explaining a new class
of the same image (forward cached: one backward), measured interleaved in the same run.

    python benchmarks/bench_widget.py [--repeats 12]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Spinning OpenMP threads make torch 10-30x slower when other processes share the cores (see
# bench_engine.py); passive waiting keeps this about the panel. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torchvision
from plotly.callbacks import Points

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camwidgets.figures import TraceRole
from camwidgets.widgets import Explorer
from camwidgets.widgets.traffic import traffic


def picture(seed: int) -> np.ndarray:
    """A seeded smooth RGB picture with a bright blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:288]
    cy, cx = rng.uniform(60, 200, 2)
    blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 40.0**2))
    rgb = 0.3 + blob[..., None] * rng.uniform(0.3, 0.7, 3) + rng.normal(0, 0.03, (256, 288, 3))
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def timed(action: Callable[[], None]) -> tuple[float, int]:
    """Seconds the action took and the bytes it sent to the front end."""
    with traffic() as sent:
        start = time.perf_counter()
        action()
        seconds = time.perf_counter() - start
    return seconds, sent.bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None).eval()
    # Backwards as deep as the layers visited so far, so both class-switch rows mean what they say.
    explorer = Explorer(model, all_layer_gradients=False)
    engine, panel = explorer.engine, explorer.panel
    c = panel.controls
    rows: dict[str, list[tuple[float, int]]] = {}
    engine_rows: dict[str, list[float]] = {}

    def record(name: str, action: Callable[[], None]) -> None:
        rows.setdefault(name, []).append(timed(action))
        if panel.error.value:
            raise RuntimeError(panel.error.value)

    def click(bar: int) -> None:
        bars = TraceRole.BARS
        points = Points(point_inds=[bar], xs=[None], ys=[None], trace_name=None, trace_index=bars)
        panel.figure.data[bars]._dispatch_on_click(points, None)  # as plotly's handler does

    record("show a new image (forward + backward)", lambda: explorer.show(picture(0)))
    prepared = panel.current().prepared
    seen = {v for _, v in c.target.options}
    fresh = iter(i for i in range(100, 1000, 7) if i not in seen)

    def class_switches(name: str, count: int) -> None:
        """Never-explained classes: the panel (via the class search) and the engine alone,
        interleaved so that machine load affects both alike (same image, same backward depth)."""
        for _ in range(count):
            target = next(fresh)
            start = time.perf_counter()
            engine.explain(prepared, layer=c.layer.value, target=target)
            engine_rows.setdefault(name, []).append(time.perf_counter() - start)
            target = next(fresh)
            option = f"{target}: {engine.classes[target]}"
            record(name, lambda option=option: setattr(c.search, "value", option))

    # Until a shallower layer is asked for, a class's backward stops at layer4 (cheap).
    class_switches("class switch, backward to layer4", args.repeats)
    # Visit the four stages once: from now on every class's backward reaches layer1.
    for layer in ("layer3", "layer2", "layer1", "layer4"):
        c.layer.value = layer
    class_switches("class switch, backward to layer1", max(3, args.repeats // 2))
    c.target.value = c.target.options[0][1]  # back to the top-1 class for the cached updates

    for _ in range(args.repeats):
        toggle = not c.counterfactual.value
        record(
            "counterfactual toggle (cached)", lambda t=toggle: setattr(c.counterfactual, "value", t)
        )
    for _ in range(args.repeats // 2):
        for layer in ("layer3", "layer4"):
            record(
                "layer switch layer3 <-> layer4 (cached)",
                lambda x=layer: setattr(c.layer, "value", x),
            )
    for layer in ("layer2", "layer1"):
        record(f"layer switch to {layer} (cached)", lambda x=layer: setattr(c.layer, "value", x))
    for _ in range(4):  # the largest maps of the four stages: 56 x 56
        toggle = not c.counterfactual.value
        record(
            "counterfactual toggle at layer1 (cached)",
            lambda t=toggle: setattr(c.counterfactual, "value", t),
        )
    record("layer switch to layer4 (cached)", lambda: setattr(c.layer, "value", "layer4"))
    for bar in range(args.repeats):
        record("bar click (channel view)", lambda bar=bar: click(bar % 2))
    for value in np.linspace(0.2, 0.8, args.repeats):
        record("opacity slider", lambda value=value: setattr(c.opacity, "value", float(value)))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ResNet-50 224x224, CPU")
    print(f"{'update':44s} {'median ms':>10s} {'max ms':>8s} {'median KB':>10s} {'max KB':>8s}")
    for name, samples in rows.items():
        ms, kb = [s * 1000 for s, _ in samples], [b / 1024 for _, b in samples]
        print(
            f"{name:44s} {statistics.median(ms):10.1f} {max(ms):8.1f} "
            f"{statistics.median(kb):10.1f} {max(kb):8.1f}"
        )
    for name, seconds in engine_rows.items():
        ms = [x * 1000 for x in seconds]
        label = f"  engine alone ({name.split(', ')[1]})"
        print(f"{label:44s} {statistics.median(ms):10.1f} {max(ms):8.1f}")
    for name, seconds in engine_rows.items():
        panel_ms = statistics.median(s for s, _ in rows[name])
        print(f"{name}: panel / engine alone = {panel_ms / statistics.median(seconds):.2f}")
    cached = [statistics.median(s for s, _ in v) * 1000 for n, v in rows.items() if "cached" in n]
    print(f"cached switches: worst median {max(cached):.1f} ms (target < 50)")
    info = engine.cache_info()
    print(f"engine passes: {info.forwards} forwards, {info.backwards} backwards")


if __name__ == "__main__":
    main()
