"""A plotly FigureWidget that can be freed and whose state reaches views that render late."""

from __future__ import annotations

import re
from copy import deepcopy
from typing import Any

from .deferred import defer_module

# plotly's widget module imports nbformat only to check its version for static renders: about
# 2 s of CPU per kernel (jsonschema's format checkers), deferred until something uses it.
defer_module("nbformat")

import plotly.graph_objects as go  # noqa: E402 (after the deferral above)
import traitlets  # noqa: E402
from plotly.basedatatypes import Undefined  # noqa: E402


class FigureWidget(go.FigureWidget):  # type: ignore[misc]
    """``go.FigureWidget`` with four fixes for long-lived notebook panels.

    1. Freed on ``close()``. plotly gives anywidget its front-end code as a file path, and
       anywidget then connects every instance to a class-level file-watch signal with a strong
       reference, so no FigureWidget is ever freed (about 1 MB each; notes/environment.md).
       Handing anywidget the code itself as a string (a documented form of ``_esm``) skips the
       watcher; the front end receives exactly the same code.
    2. A front end that connects late gets the figure as it is now. plotly syncs the figure's
       state (``_widget_data``/``_widget_layout``) only at construction and sends every later
       change as a one-off message; a page that asks for the widgets' state afterwards (Voila
       runs the whole notebook first; a reloaded page) saw the figure as built, e.g. the blank
       panel from before ``show()``. A full-state request now snapshots the current figure.
    3. Updates land in views that were still drawing. A view reports the edit id it was drawn
       from once its first draw is done; in Voila an update that arrived during that first draw
       was sometimes not applied. When a new view's first report names an id older than the
       latest edit, the current state is sent again. Only a new view's first report counts:
       acknowledgements of a stream of updates naturally lag and must not cause re-sends.
    4. Clicks keep working when an update follows the display at once. plotly's view attaches
       its click/hover listeners in the ``.then`` of its first ``Plotly.newPlot``; an update
       that arrives during that draw stops the ``.then`` from running, so bar clicks never reach
       the kernel (seen in JupyterLab with "Run All" on a cell that changes a control after
       ``show()``). From ``hold_updates()`` (called when the panel is displayed) until a view
       reports its first draw, updates change only the kernel's figure; then the current state
       is sent once.
    5. It follows its container's width. plotly's anywidget view sizes the plot once (700 px
       when its element is not yet on the page) and never again. A ResizeObserver added to the
       view's code gives the plot its container's width and reports it as ``view_width``, so
       Python can lay the figure out again for it (``figures.panel.relayout_panel``).
    """

    view_width = traitlets.Int(0).tag(sync=True)
    # Class defaults: plotly's constructor sends layout messages before __init__ sets them.
    _holding = False
    _held = False

    def __init__(self, figure: go.Figure | None = None, **kwargs: Any) -> None:
        super().__init__(figure, **kwargs)
        self._new_views = 0
        self._resend_from = 0
        self._resends = 0
        self._holding = False
        self._held = False
        self.observe(self._on_view_count, names="_view_count")
        self.observe(self._on_trace_report, names="_js2py_traceDeltas")

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        """The widget's state; the full state (``key=None``) carries the current figure."""
        if key is None and "_data" in self.__dict__:  # not while the widget is being built
            # Stored without a change notification: that would send the whole figure to views
            # that are up to date already.
            self._trait_values["_widget_data"] = deepcopy(self._data)
            self._trait_values["_widget_layout"] = deepcopy(self._layout)
        state: dict[str, Any] = super().get_state(key=key, drop_defaults=drop_defaults)
        return state

    @property
    def resends(self) -> int:
        """How many times the whole state was sent again to a view that drew an old state."""
        return self._resends

    def _on_view_count(self, change: dict[str, Any]) -> None:
        """Count views that appeared (the front end reports each one it displays)."""
        old, new = change["old"] or 0, change["new"] or 0
        self._new_views += max(0, new - old)

    def hold_updates(self) -> None:
        """Keep updates in the kernel until a view reports its first draw (see 4. above)."""
        self._holding = True

    @property
    def holding(self) -> bool:
        """Whether updates are being kept until a view finishes its first draw."""
        return self._holding

    def _send_update_msg(self, *args: Any, **kwargs: Any) -> None:
        if self._holding:
            self._held = True  # the kernel's figure is already updated; the view gets it later
            return
        super()._send_update_msg(*args, **kwargs)

    def _send_restyle_msg(self, *args: Any, **kwargs: Any) -> None:
        if self._holding:
            self._held = True
            return
        super()._send_restyle_msg(*args, **kwargs)

    def _send_relayout_msg(self, *args: Any, **kwargs: Any) -> None:
        if self._holding:
            self._held = True
            return
        super()._send_relayout_msg(*args, **kwargs)

    def _on_trace_report(self, change: dict[str, Any]) -> None:
        """A view reported the edit it shows; re-send the state if it may have missed one."""
        report = change["new"]
        if report and self._holding:
            # The first draw is done and its listeners are attached: updates may flow again.
            self._holding = False
            if self._held:
                self._held = False
                if self._new_views > 0:
                    self._new_views -= 1
                self.resend()
                return
        if not report or self._new_views <= 0:
            return
        self._new_views -= 1
        seen = report.get("trace_edit_id")
        if isinstance(seen, int) and self._resend_from <= seen < self._last_trace_edit_id:
            self.resend()

    def resend(self) -> None:
        """Send every trace's and the layout's current state to all views in one update."""
        count = len(self._data)
        restyle: dict[str, list[Any]] = {}
        for index, trace in enumerate(self._data):
            for key, value in trace.items():
                if key not in ("type", "uid"):
                    restyle.setdefault(key, [Undefined] * count)[index] = value
        # Plotly's own update path sends only changes, so the message is sent directly.
        self._send_update_msg(restyle, dict(self._layout), list(range(count)))
        self._resend_from = self._last_trace_edit_id
        self._resends += 1


# Wraps the default export of plotly's view module (``export{A as FigureModel,B as FigureView,
# C as default}``): render as plotly does, then follow the element's size (see fix 5).
_RESIZE = """
const __cwBase = %s;
const __cwDefault = () => {
  const base = __cwBase();
  return {
    initialize(ctx) { return base.initialize ? base.initialize(ctx) : undefined; },
    render(ctx) {
      const el = ctx.el;
      el.style.width = "100%%";
      const cleanup = base.render(ctx);
      let timer = null;
      let last = 0;
      let tries = 0;
      const sync = () => {
        const width = Math.round(el.getBoundingClientRect().width);
        if (width < 100) { return; }
        if (Math.abs(width - last) >= 8) {
          last = width;
          ctx.model.set("view_width", width);
          ctx.model.save_changes();
        }
        if (!el._fullLayout || !window.Plotly) {
          // The first Plotly.newPlot has not finished: try again shortly.
          if (tries++ < 100) { clearTimeout(timer); timer = setTimeout(sync, 150); }
          return;
        }
        // An explicit width: plotly's Plots.resize does nothing once a height is set, and
        // it would drop the height Python chose for this width.
        if (Math.abs((el._fullLayout.width || 0) - width) > 2) {
          window.Plotly.relayout(el, {width: width});
        }
      };
      const later = () => { clearTimeout(timer); timer = setTimeout(sync, 80); };
      const rendered = (event) => {
        if (event.detail && event.detail.element === el) { later(); }
      };
      const observer = new ResizeObserver(later);
      observer.observe(el);
      document.addEventListener("plotlywidget-after-render", rendered);
      // A new layout from Python (e.g. the height for a new width) may leave the plot's width
      // stale: check again after every update.
      ctx.model.on("change:_py2js_update", later);
      ctx.model.on("change:_py2js_relayout", later);
      return () => {
        ctx.model.off("change:_py2js_update", later);
        ctx.model.off("change:_py2js_relayout", later);
        observer.disconnect();
        document.removeEventListener("plotlywidget-after-render", rendered);
        clearTimeout(timer);
        if (typeof cleanup === "function") { cleanup(); }
      };
    },
  };
};
export{%s as FigureModel,%s as FigureView,__cwDefault as default};"""

_EXPORT = re.compile(r"export\{(\w+) as FigureModel,(\w+) as FigureView,(\w+) as default\};")


def _view_code(code: str) -> str:
    """plotly's view code with the resize wrapper (unchanged if its export line is not found)."""
    found = list(_EXPORT.finditer(code))
    if len(found) != 1:
        return code
    match = found[0]
    model, view, default = match.groups()
    wrapped = _RESIZE % (default, model, view)
    return code[: match.start()] + wrapped + code[match.end() :]


# Set after the class statement so that anywidget's __init_subclass__ does not turn it back into
# a watched file; str() of plotly's FileContents is the code itself.
FigureWidget._esm = _view_code(str(go.FigureWidget._esm))
