"""The panel's extension point: a section in its own module is laid out, shown after every
draw, told to forget on new images and wired to its own controls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import ipywidgets as w
import numpy as np
import pytest

from camwidgets.engine import GradCAM
from camwidgets.widgets.panel import Host, Panel, Section, Shown
from camwidgets.widgets.panel.base import weak
from camwidgets.widgets.panel.sections import default_sections


class Seen(Section):
    """Writes the class and layer it was shown, counts forgets, and has a button of its own."""

    name = "seen"

    def __init__(self) -> None:
        self.widget = w.HTML()
        self.button = w.Button(description="again")
        self.forgotten = 0

    def show(self, shown: Shown) -> None:
        self.widget.value = f"{shown.state.layer} {shown.result.target} {shown.image.label}"

    def forget(self) -> None:
        self.forgotten += 1

    def wire(self, host: Host) -> None:
        # The button moves the panel to layer1 through the host, holding it weakly.
        self.button.on_click(
            weak(host, lambda h, _: h.change(lambda s: replace(s, layer="layer1")))
        )


def test_a_new_section_is_laid_out_shown_forgotten_and_wired(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    seen = Seen()
    panel = Panel(make_engine(), sections=[*default_sections(), seen])
    assert seen.widget in panel.root.children  # under the chart, before the status line
    assert panel.root.children.index(seen.widget) == len(panel.root.children) - 2
    panel.load(images[:1])
    result = panel.result
    assert result is not None and seen.forgotten == 1
    assert seen.widget.value == f"layer4 {result.target} image 1"
    panel.controls.layer.value = "layer2"
    assert seen.widget.value.startswith("layer2 ")
    seen.button.click()
    assert panel.state.layer == "layer1" and seen.widget.value.startswith("layer1 ")
    panel.load(images[1:2])
    assert seen.forgotten == 2


def test_section_names_are_unique(make_engine: Callable[..., GradCAM]) -> None:
    with pytest.raises(ValueError, match="two sections are named 'seen'"):
        Panel(make_engine(), sections=[Seen(), Seen()])


def test_a_panel_without_a_faithfulness_section_says_so(
    make_engine: Callable[..., GradCAM], images: list[np.ndarray]
) -> None:
    panel = Panel(make_engine(), sections=[])
    panel.load(images[:1])
    with pytest.raises(RuntimeError, match="no faithfulness section"):
        panel.measure()
