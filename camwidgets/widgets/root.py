"""The panel's outer box, and what keeps a panel alive or lets it go.

A displayed panel must keep working when user code holds nothing (``Explorer(model).show(img)``
as a cell of its own), so the displayed box holds its panel, and so the engine and its cache.
ipywidgets keeps every widget in a registry until ``close()``, so without a rule nothing would
ever be freed: re-running such a cell kept ~23 MB per run on ResNet-18. The rules:

- Not displayed (a script, a test, an Explorer never shown in a front end): the box holds its
  panel weakly; when the panel is garbage, a finaliser closes its widgets.
- Displayed: the box holds its panel strongly, and remembers the notebook cell(s) it was shown
  from (the cell id front ends send with each execution; the cell's code when there is none).
  When another panel is displayed from the same cell (the cell was re-run, which also removed
  the old output), the old panel is released once no other cell shows it: its widgets are
  closed and the box lets go of it, so its engine goes with the last user reference.
"""

from __future__ import annotations

import gc
import hashlib
import html
import weakref
from typing import Any, Protocol

import ipywidgets as w


class Holds(Protocol):
    """What the box needs of the panel it shows (the panel's figure and its static picture);
    a protocol, so that the box never imports the panel that builds it."""

    @property
    def figure(self) -> Any:
        """The panel's FigureWidget (``hold_updates`` is called before each display)."""
        ...

    def static_bundle(self) -> dict[str, Any]:
        """Mime data shown beside the widget view."""
        ...


# Cell key -> the box most recently displayed from that cell.
_CELLS: dict[str, weakref.ref[Root]] = {}


class Root(w.VBox):  # type: ignore[misc]
    """The panel's outer box. ``Explorer.show`` displays it and also returns it; when that call
    is the cell's last expression, IPython would display it a second time: that one is skipped.
    """

    _shown_in: int | None = None

    def attach(self, panel: Holds) -> None:
        """Belong to ``panel`` (held weakly until displayed); close the widgets when it dies."""
        self._weak: weakref.ref[Holds] | None = weakref.ref(panel)
        self._strong: Holds | None = None
        self._cells: set[str] = set()
        self.released = False
        # The finaliser holds the box, never the panel: it cannot keep the panel alive.
        self._finalizer = weakref.finalize(panel, close_tree, self)

    @property
    def panel(self) -> Holds | None:
        """The panel this box shows (None once released or garbage)."""
        ref = getattr(self, "_weak", None)
        return ref() if ref is not None else None

    @panel.setter
    def panel(self, panel: Holds | None) -> None:
        if panel is None:
            self._weak, self._strong = None, None
        else:
            self.attach(panel)

    def release(self) -> None:
        """Close every widget and let go of the panel (its engine goes with the last user ref)."""
        self.released = True
        for cell in self._cells:
            if (ref := _CELLS.get(cell)) is not None and ref() is self:
                del _CELLS[cell]
        self._cells = set()
        close_tree(self)
        self._weak, self._strong = None, None
        # A closed box may stay in IPython's output history (Out[n]); it must not keep the
        # figure's data or the controls alive there.
        self.children = ()

    def display_now(self) -> None:
        """Display the panel in the current output and remember the cell it was shown in."""
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
        if shell is None:
            return  # not in IPython: nothing can show a widget
        self._shown_in = getattr(shell, "execution_count", None)
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[no-untyped-call]

    def placeholder(self, what: str) -> Any:
        """Show a busy line where the panel will appear; ``display_into`` replaces it.

        The panel itself is displayed once, after its first explanation: a widget view that
        appears and is then replaced would be drawn twice, and the output would carry the
        static picture only if displayed after something was computed.

        Returns:
            IPython's display handle, or None outside IPython.
        """
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is None:
            return None
        busy = {
            "text/html": (
                '<div style="color:#555;font-size:13px;padding:6px 0">'
                f'<i class="fa fa-spinner fa-spin"></i> camwidgets: {html.escape(what)}…</div>'
            ),
            "text/plain": f"camwidgets: {what}…",
        }
        return display(busy, raw=True, display_id=True)  # type: ignore[no-untyped-call]

    def display_into(self, handle: Any) -> None:
        """Display the panel in place of ``placeholder``'s output (or afresh without one)."""
        update = getattr(handle, "update", None)
        if not callable(update):
            self.display_now()
            return
        from IPython import get_ipython

        self._shown_in = getattr(get_ipython(), "execution_count", None)
        update(self._repr_mimebundle_(), raw=True)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # Every way of displaying the panel comes here.
        panel = self.panel
        if panel is not None:
            # Hold figure updates until the new view has drawn once, or its click listeners
            # may never attach (FigureWidget, fix 4).
            panel.figure.hold_updates()
            if in_kernel():
                self._strong = panel  # on screen: it must work with no user reference
                shown_from(self, current_cell())
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
        if panel is not None:
            bundle.update(panel.static_bundle())
        return bundle

    def _ipython_display_(self) -> None:
        from IPython import get_ipython
        from IPython.display import display

        shell = get_ipython()
        if self._shown_in is not None and getattr(shell, "execution_count", None) == self._shown_in:
            self._shown_in = None
            return
        display(self._repr_mimebundle_(), raw=True)  # type: ignore[no-untyped-call]


def close_tree(root: w.Widget) -> None:
    """Close ``root`` and every widget inside it, their layout and style widgets too."""
    stack: list[w.Widget] = [root]
    while stack:
        widget = stack.pop()
        stack.extend(getattr(widget, "children", ()))
        # A FigureWidget's ``layout`` is plotly's, not a widget: only widgets are closed.
        stack.extend(
            x
            for x in (getattr(widget, "layout", None), getattr(widget, "style", None))
            if isinstance(x, w.Widget)
        )
        widget.close()


def shown_from(root: Root, cell: str | None) -> None:
    """Record that ``root`` was displayed from ``cell``; release the box it replaces there."""
    if cell is None:
        return
    ref = _CELLS.get(cell)
    old = ref() if ref is not None else None
    _CELLS[cell] = weakref.ref(root)
    root._cells.add(cell)
    if old is not None and old is not root:
        old._cells.discard(cell)
        if not old._cells:
            old.release()
            # Widgets are full of reference cycles (traitlets, plotly's figure <-> traces), so
            # a closed panel's figure data would wait for a full collection, which with torch
            # loaded comes only every few dozen re-runs: collect now, once per replaced panel.
            gc.collect()


def in_kernel() -> bool:
    """Whether code runs in a Jupyter kernel (where widgets can be displayed)."""
    from IPython import get_ipython

    return getattr(get_ipython(), "kernel", None) is not None


def current_cell() -> str | None:
    """A key for the notebook cell being run: the front end's cell id, else its code."""
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent()  # the execute_request being handled (ipykernel >= 6)
    except (AttributeError, TypeError):
        parent = getattr(kernel, "_parent_header", None)
    if not isinstance(parent, dict):
        return None
    metadata = parent.get("metadata") or {}
    cell = metadata.get("cellId") or metadata.get("cell_id")
    if isinstance(cell, str) and cell:
        return "cell:" + cell
    code = (parent.get("content") or {}).get("code")
    if isinstance(code, str) and code.strip():
        return "code:" + hashlib.sha1(code.encode()).hexdigest()
    return None
