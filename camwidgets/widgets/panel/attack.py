"""The "attack" view: an adversarial picture beside the original, with both classes' maps.

PGD (``camwidgets.attacks.pgd``) runs on the image shown, in the picture's pixel space, within
the budget picked; the attacked picture goes back through the engine, and the maps of the
original class and of the new one are drawn on both pictures with one shared colour range, so a
reader sees whether the map of the original class stays on the object (the paper's claim).
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w
import numpy as np
import torch

from ...attacks import AttackResult, pgd
from ...engine import GradCAM, Prepared
from ...engine.inputs import find_normalize
from ...figures.lesson import AttackView, attack_figure, attack_parts, attack_update
from ...figures.part import Part
from ..figure_widget import FigureWidget
from .base import Host, Section, Shown, weak

BUDGETS = (("2/255", 2), ("4/255", 4), ("8/255", 8), ("16/255", 16))
"""The attack budgets offered, in 1/255 levels."""
STEPS = 10


def attacked_input(engine: GradCAM, res: AttackResult) -> Prepared:
    """The attacked picture as the engine's model input (normalised like the original)."""
    picture = torch.from_numpy(np.ascontiguousarray(res.images[0])).permute(2, 0, 1)[None]
    normalize = find_normalize(engine.transform)
    if normalize is not None:
        mean = torch.tensor(normalize[0]).view(1, -1, 1, 1)
        std = torch.tensor(normalize[1]).view(1, -1, 1, 1)
        picture = (picture - mean) / std
    return engine.prepare(picture)


def attack_view(shown: Shown, res: AttackResult) -> AttackView:
    """Both pictures and the maps of both classes on each, at the panel's layer and method."""
    engine, state = shown.engine, shown.state
    clean = shown.image.prepared
    attacked = attacked_input(engine, res)
    classes = (int(res.originals[0]), int(res.predictions[0]))
    maps = []
    probabilities = []
    for prepared, own in ((clean, classes[0]), (attacked, classes[1])):
        row = []
        for c in classes:
            out = engine.explain(prepared, layer=state.layer, target=c, method=state.method)
            row.append(out.heatmap.detach().cpu().numpy())
            if c == own:
                probabilities.append(float(out.probability))  # type: ignore[arg-type]
        maps.append((row[0], row[1]))
    return AttackView(
        original=clean.display[0],
        attacked=attacked.display[0],
        maps=(maps[0], maps[1]),
        original_name=engine.classes[classes[0]],
        new_name=engine.classes[classes[1]],
        original_p=probabilities[0],
        new_p=probabilities[1],
        attack=f"PGD, eps {round(res.eps * 255)}/255, {res.steps} steps",
    )


class AttackSection(Section):
    """A toggle and a budget; when on, the attacked picture and the maps, kept per image."""

    name = "attack"

    def __init__(self) -> None:
        self.toggle = w.ToggleButton(
            value=False,
            description="attack",
            tooltip="attack the picture (PGD) and compare the maps before and after",
            icon="bolt",
            layout=w.Layout(width="150px"),
        )
        self.budget = w.Dropdown(
            options=[(label, levels) for label, levels in BUDGETS],
            value=8,
            description="eps",
            layout=w.Layout(width="160px"),
        )
        self.note = w.HTML()
        self.holder = w.Box(layout=w.Layout(width="100%", display="none"))
        self.widget = w.VBox(
            [w.HBox([self.toggle, self.budget]), self.note, self.holder],
            layout=w.Layout(width="100%"),
        )
        self.figure: FigureWidget | None = None
        self.view: AttackView | None = None
        self.result: AttackResult | None = None
        self._parts: list[Part] | None = None
        self._done: dict[tuple[int, int], AttackResult] = {}

    def wire(self, host: Host) -> None:
        """The toggle and the budget redraw the view for what is on screen."""
        self.toggle.observe(weak(host, self._on_change), names="value")
        self.budget.observe(weak(host, self._on_change), names="value")

    def _on_change(self, host: Host, value: Any) -> None:
        shown = host.shown()
        if shown is not None:
            with host.working("attacking") if self.toggle.value else _nothing():
                self.show(shown)

    def forget(self) -> None:
        """New images: the attacks were of the old ones."""
        self._done.clear()

    def attack(self, shown: Shown) -> AttackResult:
        """PGD on the image shown at the budget picked (kept per image and budget)."""
        key = (shown.state.image, int(self.budget.value))
        if key not in self._done:
            eps = int(self.budget.value) / 255
            self._done[key] = pgd(
                shown.engine,
                shown.image.prepared.tensor,
                eps=eps,
                steps=STEPS,
                step_size=max(eps / 4, 1 / 255),
                progress=False,
            )
        return self._done[key]

    def show(self, shown: Shown) -> None:
        """Draw the attack of the image shown while the toggle is on."""
        if not self.toggle.value:
            self.holder.layout.display = "none"
            self.note.value = ""
            return
        try:
            res = self.attack(shown)
            view = attack_view(shown, res)
            if self.figure is None:
                # Built whole and shown as built: no update right after creation, which a
                # view still connecting may miss (notes/environment.md, Voila and Lab).
                self.figure = FigureWidget(attack_figure(view))
                self._parts = attack_parts(view)[0]
                self.holder.children = (self.figure,)
            else:
                self._parts = attack_update(self.figure, view, self._parts)
        except Exception as error:  # shown here; the main view stays as it is
            self.note.value = f'<span style="color:#b00">attack: {html.escape(str(error))}</span>'
            self.holder.layout.display = "none"
            return
        self.result, self.view = res, view
        change = float(np.abs(res.images[0] - res.original_pictures[0]).max()) * 255
        self.note.value = (
            f"PGD moved every pixel value by at most {change:.1f}/255: "
            f"<b>{html.escape(view.original_name)}</b> → <b>{html.escape(view.new_name)}</b>"
            f"{'' if res.success else ' (not flipped)'}"
        )
        self.holder.layout.display = None


class _nothing:
    """A context manager that does nothing (no busy line when the view is switched off)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None
