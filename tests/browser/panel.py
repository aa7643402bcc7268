"""The Explorer panel as a browser sees it, and the same panel computed by the engine here.

``PanelWalk`` drives a panel on a page (JupyterLab or Voila) through its states: initial, another
class, counterfactual, another layer, a clicked bar. After every step it waits until every trace
of every figure in the panel shows what ``camwidgets.GradCAM``, run in the test process on the
same model and picture, computes for that state, and until the rendered heat-map images changed.
A figure that keeps an old state (an update that did not land) fails the step with the stale
traces named; nothing is clicked twice.
"""

from __future__ import annotations

import base64
import io
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from camwidgets.figures import TraceRole
from tests.browser.helpers import UPDATE_TIMEOUT, BrowserError, PageWatch, read_plots, wait_for

R = TraceRole
# Traces are found by their plotly name (the figure builder names each after its role), never
# by position; what type each must be, and how messages call it.
TRACE_TYPES = {
    R.PICTURE: "image",
    R.HEATMAP: "heatmap",
    R.COARSE: "heatmap",
    R.ACTIVATION: "heatmap",
    R.CONTRIBUTION: "heatmap",
    R.BARS: "bar",
}
NAMES = {
    R.PICTURE: "picture",
    R.HEATMAP: "overlay heat map",
    R.COARSE: "coarse map",
    R.ACTIVATION: "activation A^k",
    R.CONTRIBUTION: "contribution αA^k",
    R.BARS: "bars",
}
DEFAULT_BARS = 20
MIN_SAMPLES = 40  # the overlay may be drawn from a subsample, but not a coarse one
RTOL = 1e-4  # the kernel and the test run the same float32 code; thread counts may differ


@dataclass
class Drawn:
    """The panel's traces as plotly.js holds them, plus what it rendered."""

    traces: dict[TraceRole, dict[str, Any]]
    titles: list[str]
    heat_images: list[str]
    bars: int

    @property
    def picture(self) -> np.ndarray:
        """The picture trace's PNG, decoded: the pixels the panel explained."""
        source = self.traces[R.PICTURE].get("source") or ""
        if not source.startswith("data:image/png;base64,"):
            raise BrowserError(f"the picture trace has no PNG data URI: {source[:60]!r}")
        data = base64.b64decode(source.split(",", 1)[1])
        return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    def columns(self, role: TraceRole) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A heat-map trace's (x, y, z) columns as integer positions and float values."""
        trace = self.traces[role]
        x, y, z = (np.asarray(trace.get(k, []), dtype=np.float64) for k in ("x", "y", "z"))
        if not (x.ndim == y.ndim == z.ndim == 1 and x.size == y.size == z.size > 0):
            raise BrowserError(
                f"{NAMES[role]}: expected x, y, z columns of one length, got shapes "
                f"{x.shape}, {y.shape}, {z.shape}"
            )
        return x.astype(np.int64), y.astype(np.int64), z


def read_panel(panel: Any) -> Drawn | None:
    """The panel's traces over all its plotly graphs, None until all are drawn."""
    plots = [p for p in read_plots(panel) if p["traces"]]
    by_name = {t.get("name"): t for p in plots for t in p["traces"]}
    traces = {role: by_name.get(role.label) for role in TraceRole}
    found = {role: t for role, t in traces.items() if t is not None}
    if len(found) != len(TraceRole) or any(
        t.get("type") != TRACE_TYPES[role] for role, t in found.items()
    ):
        return None
    return Drawn(
        traces=found,
        titles=[t for p in plots for t in p["titles"]],
        heat_images=[h for p in plots for h in p["heatImages"]],
        bars=sum(p["bars"] for p in plots),
    )


def panel_summary(panel: Any) -> str:
    """A short description of what the panel's plots hold, for timeout messages."""
    plots = read_plots(panel)
    return (
        "; ".join(
            f"plot {i}: {[t.get('type') for t in p['traces']]} titles {p['titles']}"
            for i, p in enumerate(plots)
        )
        or "no plotly graph"
    )


@dataclass(frozen=True)
class State:
    """What the controls are set to."""

    layer: str
    target: int
    counterfactual: bool = False
    channel: int | None = None  # None: the channel with the largest alpha
    bars: int = DEFAULT_BARS
    method: str = "gradcam"


@dataclass
class Expected:
    """The engine's numbers for a state, and what every trace must then hold."""

    state: State
    heatmap: np.ndarray
    coarse: np.ndarray
    weights: np.ndarray
    activations: np.ndarray
    channel: int = field(init=False)

    def __post_init__(self) -> None:
        chosen = self.state.channel
        self.channel = int(np.argmax(self.weights)) if chosen is None else chosen

    def mismatches(self, drawn: Drawn) -> list[str]:
        """Every way ``drawn`` differs from what the engine computed (empty: all traces agree)."""
        k = self.channel
        problems: list[str] = []
        maps = {
            R.HEATMAP: self.heatmap,
            R.COARSE: self.coarse,
            R.ACTIVATION: self.activations[k],
            R.CONTRIBUTION: self.weights[k] * self.activations[k],
        }
        for role, values in maps.items():
            whole = role != R.HEATMAP  # maps on the layer's grid are drawn cell by cell
            problems += _compare_map(NAMES[role], drawn.columns(role), values, whole=whole)
        problems += self._compare_bars(drawn.traces[R.BARS])
        shown = len(drawn.traces[R.BARS].get("customdata") or [])
        if drawn.bars != shown:
            problems.append(f"bars: {drawn.bars} bars rendered for {shown} in the data")
        if not any(f"<sup>{k}</sup>" in title for title in drawn.titles):
            problems.append(f"no subplot title names channel {k}: {drawn.titles}")
        return problems

    def _compare_bars(self, bars: dict[str, Any]) -> list[str]:
        weights = self.weights
        count = min(self.state.bars, weights.size)
        channels = np.asarray(bars.get("customdata", []), dtype=np.int64)
        values = np.asarray(bars.get("y", []), dtype=np.float64)
        top = set(np.argsort(-np.abs(weights), kind="stable")[:count].tolist())
        problems = []
        if channels.size != count or set(channels.tolist()) != top:
            # Ties in |alpha| could swap the last bar; the values must still be the top ones.
            cut = np.sort(np.abs(weights))[::-1][count - 1] if count else 0.0
            if channels.size != count or np.any(np.abs(weights[channels]) < cut * (1 - RTOL)):
                problems.append(
                    f"bars: channels {sorted(channels.tolist())[:8]}... are not the top {count} "
                    f"by |α| {sorted(top)[:8]}..."
                )
                return problems
        if not np.allclose(values, weights[channels], rtol=RTOL, atol=RTOL * _scale(weights)):
            worst = float(np.max(np.abs(values - weights[channels])))
            problems.append(f"bars: α values differ from the engine's by up to {worst:.3g}")
        widths = (bars.get("marker") or {}).get("line", {}).get("width")
        if isinstance(widths, list) and len(widths) == channels.size:
            outlined = [int(c) for c, wd in zip(channels, widths, strict=True) if wd and wd > 0]
            if outlined != ([self.channel] if self.channel in channels else []):
                problems.append(f"bars: outlined channel(s) {outlined}, expected {self.channel}")
        return problems


def _scale(values: np.ndarray) -> float:
    return float(np.max(np.abs(values))) or 1.0


def _compare_map(
    name: str, drawn: tuple[np.ndarray, np.ndarray, np.ndarray], values: np.ndarray, whole: bool
) -> list[str]:
    """Compare a drawn (x, y, z) map with the engine's 2-D values at the drawn positions.

    ``whole``: every cell must be drawn (maps on the layer's grid); otherwise (the heat map over
    the picture, drawn from a subsample of pixels) the corners must be among the drawn pixels.
    """
    x, y, z = drawn
    height, width = values.shape
    if x.min() < 0 or y.min() < 0 or x.max() >= width or y.max() >= height:
        return [
            f"{name}: drawn positions span x {x.min()}..{x.max()}, y {y.min()}..{y.max()}, "
            f"the engine's map is {height}x{width}"
        ]
    cells = set(zip(x.tolist(), y.tolist(), strict=True))
    if len(cells) != x.size:
        return [f"{name}: {x.size - len(cells)} cells are drawn twice"]
    if whole and x.size != height * width:
        return [f"{name}: {x.size} cells drawn, the engine's map has {height}x{width}"]
    corners = {(0, 0), (width - 1, 0), (0, height - 1), (width - 1, height - 1)}
    if not corners <= cells:
        return [f"{name}: the map's corners are not drawn ({height}x{width} map)"]
    columns, rows = len(set(x.tolist())), len(set(y.tolist()))
    if columns < min(width, MIN_SAMPLES) or rows < min(height, MIN_SAMPLES):
        return [f"{name}: only {columns}x{rows} pixels drawn of a {height}x{width} map"]
    expected = values[y, x].astype(np.float64)
    if not np.allclose(z, expected, rtol=RTOL, atol=RTOL * _scale(values)):
        worst = int(np.argmax(np.abs(z - expected)))
        return [
            f"{name}: differs from the engine's by up to {abs(z[worst] - expected[worst]):.3g} "
            f"(at x={x[worst]}, y={y[worst]}: drawn {z[worst]:.6g}, engine {expected[worst]:.6g};"
            f" engine max {_scale(values):.4g})"
        ]
    return []


# -- the controls on the page ------------------------------------------------------------------


def dropdown(panel: Any, label: str) -> Any:
    """The <select> of the panel's ipywidgets Dropdown whose description is ``label``."""
    box = panel.locator(".widget-dropdown").filter(
        has=panel.page.locator("label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    )
    return box.locator("select")


def options(select: Any) -> list[str]:
    """The option labels of a <select> (ipywidgets writes spaces as no-break spaces)."""
    found: list[str] = select.evaluate("(s) => [...s.options].map((o) => o.textContent)")
    return [label.replace("\xa0", " ") for label in found]


def selected(select: Any) -> str:
    """The selected option's label."""
    text: str = select.evaluate(
        "(s) => s.selectedIndex < 0 ? '' : s.options[s.selectedIndex].textContent"
    )
    return text.replace("\xa0", " ")


def status_text(panel: Any) -> str:
    """The panel's status line (the HTML widget that starts with "predicted")."""
    texts: list[str] = panel.locator(".widget-html-content").all_inner_texts()
    return next((t for t in texts if t.strip().startswith("predicted")), "")


# -- driving a panel ---------------------------------------------------------------------------


@dataclass
class Step:
    """One state of the walk: its name, its screenshot, the seconds from the action until
    every figure agreed, and the status line then."""

    name: str
    screenshot: str
    seconds: float
    status: str


def locate_panel(page: Any) -> Any:
    """The Explorer panel: the outermost widget box holding a plotly graph and a dropdown."""
    return (
        page.locator(".widget-vbox")
        .filter(has=page.locator(".js-plotly-plot"))
        .filter(has=page.locator(".widget-dropdown select"))
        .first
    )


def _status_problems(status: str, state: State) -> list[str]:
    """How the status line fails to name the class, layer and counterfactual mode shown."""
    missing = [w for w in (f"class {state.target}", f"layer {state.layer} ") if w not in status]
    if ("counterfactual" in status) != state.counterfactual:
        missing.append("counterfactual" if state.counterfactual else "no 'counterfactual'")
    return [f"status line {status!r} lacks {missing}"] if missing else []


class PanelWalk:
    """Walks the panel on a page through its states; after every step, every figure and the
    status line must show what the engine, run here on the panel's picture, computes."""

    def __init__(self, watch: PageWatch, engine: Any, name: str) -> None:
        self.page = watch.page
        self.watch = watch
        self.engine = engine
        self.name = name
        self.panel = locate_panel(self.page)
        self.steps: list[Step] = []
        self.picture: np.ndarray | None = None
        self.drawn: Drawn | None = None

    def expected(self, state: State) -> Expected:
        """The engine's result for ``state`` on the panel's picture, computed here."""
        assert self.picture is not None
        res = self.engine.explain(
            self.picture,
            layer=state.layer,
            target=state.target,
            counterfactual=state.counterfactual,
            method=state.method,
        )
        return Expected(
            state,
            res.heatmap.numpy(),
            res.coarse.numpy(),
            res.weights.numpy(),
            res.activations.numpy(),
        )

    def settle(self, step: str, state: State, started: float, changed_images: int) -> Drawn:
        """Wait until every trace holds the engine's numbers for ``state``, the status line
        names it, and at least ``changed_images`` rendered heat-map images differ from the
        previous step's (plotly.js redrew them); then screenshot the panel."""
        expected = self.expected(state)
        before = set(self.drawn.heat_images) if self.drawn is not None else set()
        last: list[str] = []

        def landed() -> Drawn | None:
            drawn = read_panel(self.panel)
            if drawn is None:
                last[:] = [f"panel not fully drawn: {panel_summary(self.panel)}"]
                return None
            problems = expected.mismatches(drawn)
            fresh = len(set(drawn.heat_images) - before)
            if fresh < changed_images:
                problems.append(
                    f"only {fresh} of the {len(drawn.heat_images)} rendered heat-map images "
                    f"changed, expected at least {changed_images}"
                )
            problems += _status_problems(status_text(self.panel), state)
            last[:] = problems
            return None if problems else drawn

        drawn = wait_for(
            self.watch,
            f"step '{step}': every figure of the panel to show the engine's {state}",
            landed,
            timeout=UPDATE_TIMEOUT,
            describe=lambda: "\n  ".join(["what differs (stale or wrong):", *last, self._views()]),
        )
        self.drawn = drawn
        seconds = time.monotonic() - started
        path = self.watch.screenshot_of(self.panel, f"{len(self.steps) + 1:02d}-{step}")
        self.steps.append(Step(step, str(path), seconds, status_text(self.panel)))
        return drawn

    def _views(self) -> str:
        """Whether plotly's FigureWidget views finished their first draw (a diagnosis)."""
        count = self.watch.figure_views_rendered()
        plots = len(read_plots(self.panel))
        if count >= plots:
            return f"{count} FigureWidget view(s) finished their first draw"
        return (
            f"only {count} 'plotlywidget-after-render' event(s) for {plots} figure(s): a "
            "FigureWidget view whose first Plotly.newPlot never completed has no click/hover "
            "handlers and never reports what it drew to Python (its updates still draw)"
        )

    def run(self, first_timeout: float) -> list[Step]:
        """Initial state, another class, counterfactual, another layer, a clicked bar, and another
        method."""
        started = time.monotonic()
        drawn = wait_for(
            self.watch,
            "the panel's figures to be drawn",
            lambda: read_panel(self.panel),
            timeout=first_timeout,
            describe=lambda: panel_summary(self.panel),
        )
        self.picture = drawn.picture
        top = self.engine.predict(self.picture, k=1)[0]
        layer = self.engine.default_layer
        state = State(layer=layer, target=top.index)
        self._check_controls(state)
        self.settle("initial", state, started, changed_images=0)

        # Another class: the second entry of the class list (the runner-up prediction).
        classes = dropdown(self.panel, "class")
        labels = options(classes)
        if len(labels) < 2:
            raise BrowserError(f"{self.name}: the class list offers {labels}, expected top-k")
        target = int(labels[1].split(":")[0])
        started = time.monotonic()
        classes.select_option(index=1)
        state = State(layer=layer, target=target)
        self.settle("class", state, started, changed_images=2)

        # Counterfactual on.
        toggle = self.panel.locator("button.widget-toggle-button", has_text="counterfactual")
        started = time.monotonic()
        toggle.click()
        state = State(layer=layer, target=target, counterfactual=True)
        wait_for(
            self.watch,
            "the counterfactual button to look pressed (mod-active)",
            lambda: "mod-active" in (toggle.get_attribute("class") or ""),
        )
        self.settle("counterfactual", state, started, changed_images=2)

        # Another layer: the nearest one before the default on another grid (h×w), so that
        # every map changes size; a stage's only block would give the very same map.
        layers = dropdown(self.panel, "layer")
        labels = options(layers)
        names = [label.split(" (")[0] for label in labels]
        if layer not in names:
            raise BrowserError(f"{self.name}: the layer list {names} lacks {layer!r}")
        grids = [label.rsplit("×", 2)[-2:] for label in labels]  # "layer2 (32×24×24)"
        here = names.index(layer)
        earlier = [i for i in range(here) if grids[i] != grids[here]]
        if not earlier:
            raise BrowserError(f"{self.name}: no layer on another grid in {labels}")
        started = time.monotonic()
        layers.select_option(index=earlier[-1])
        state = State(layer=names[earlier[-1]], target=target, counterfactual=True)
        self.settle("layer", state, started, changed_images=2)

        # Click the tallest bar of a channel other than the one shown.
        shown = self.expected(state).channel
        assert self.drawn is not None
        bars = self.drawn.traces[R.BARS]
        channels = [int(c) for c in bars["customdata"]]
        heights = [abs(float(v)) for v in bars["y"]]
        pick = max((i for i, c in enumerate(channels) if c != shown), key=lambda i: heights[i])
        # A view only listens to clicks once its first draw is complete: say so if it never is.
        plots = len(read_plots(self.panel))
        wait_for(
            self.watch,
            f"every FigureWidget view ({plots}) to finish its first draw before a bar is clicked",
            lambda: self.watch.figure_views_rendered() >= plots,
            timeout=10,
            describe=self._views,
        )
        started = time.monotonic()
        self.click_bar(pick)
        state = State(state.layer, target, counterfactual=True, channel=channels[pick])
        self.settle("channel", state, started, changed_images=1)

        # Another method: Grad-CAM++ from the method list (same layer: the channel stays).
        methods = dropdown(self.panel, "method")
        labels = options(methods)
        if "Grad-CAM++" not in labels:
            raise BrowserError(f"{self.name}: the method list {labels} lacks Grad-CAM++")
        started = time.monotonic()
        methods.select_option(label="Grad-CAM++")
        state = State(
            state.layer, target, counterfactual=True, channel=channels[pick], method="gradcam++"
        )
        self.settle("method", state, started, changed_images=1)
        return self.steps

    def _check_controls(self, state: State) -> None:
        """The dropdowns show the layer and class the panel starts with."""
        layer = selected(dropdown(self.panel, "layer"))
        target = selected(dropdown(self.panel, "class"))
        if not layer.startswith(f"{state.layer} (") or not target.startswith(f"{state.target}:"):
            raise BrowserError(
                f"{self.name}: the controls show layer {layer!r} and class {target!r}, "
                f"expected {state.layer} and the top-1 class {state.target}"
            )

    def click_bar(self, index: int) -> None:
        """Click bar ``index`` as a user does: hover it (plotly picks the point), then click."""
        bar = self.panel.locator(".js-plotly-plot g.barlayer path").nth(index)
        bar.scroll_into_view_if_needed()
        box = bar.bounding_box()
        if box is None or box["height"] < 1:
            raise BrowserError(f"{self.name}: bar {index} is not clickable (box {box})")
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x - 3, y)
        self.page.mouse.move(x, y)
        self.page.wait_for_timeout(150)  # plotly.js handles at most one hover per 100 ms
        self.page.mouse.click(x, y)

    def report(self) -> str:
        """One line per step: seconds from the action to every figure agreeing, status."""
        return "\n".join(f"{s.name:>15}: {s.seconds:5.2f} s  {s.status}" for s in self.steps)
