"""The panel's state transitions, without widgets: each rule written once, checked here."""

from __future__ import annotations

import dataclasses

import pytest

from camwidgets.widgets import state as st
from camwidgets.widgets.state import PanelState

START = PanelState(layer="layer4", target=3, channel=7, extra=(8,), method="gradcam")


def test_state_is_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        START.layer = "layer1"  # type: ignore[misc]


def test_another_layer_shows_its_strongest_channel() -> None:
    moved = st.pick_layer(START, "layer2")
    assert (moved.layer, moved.channel, moved.target, moved.extra) == ("layer2", None, 3, (8,))
    assert st.pick_layer(START, "layer4") is START  # same layer: nothing changes
    assert START.channel == 7  # the old state is untouched


def test_another_layer_falls_back_to_a_method_defined_there() -> None:
    cam = dataclasses.replace(START, method="cam")
    assert st.pick_layer(cam, "layer2", ["gradcam", "gradcam++"]).method == "gradcam"
    assert st.pick_layer(cam, "layer2", ["cam", "gradcam"]).method == "cam"
    with pytest.raises(ValueError, match="no method"):
        st.pick_layer(cam, "layer2", [])


def test_another_image_starts_from_its_top_class() -> None:
    moved = st.pick_image(START, 2, top=5)
    assert (moved.image, moved.target, moved.channel, moved.extra) == (2, 5, None, ())
    assert moved.layer == "layer4" and moved.counterfactual == START.counterfactual
    with pytest.raises(ValueError):
        st.pick_image(START, -1, top=5)


def test_a_class_outside_the_offered_ones_joins_the_list_once() -> None:
    offered = [3, 1, 0, 2, 9]
    moved = st.pick_target(START, 4, offered)
    assert (moved.target, moved.extra) == (4, (8, 4))
    assert st.pick_target(moved, 4, offered).extra == (8, 4)
    assert st.pick_target(moved, 1, offered).extra == (8, 4)  # an offered one adds nothing
    assert st.pick_target(START, 3, offered).channel == 7  # same layer: channel stays


def test_counterfactual_channel_scale_and_style() -> None:
    flipped = st.set_counterfactual(START, True)
    assert flipped.counterfactual and flipped.channel == 7
    assert st.pick_channel(START, 2).channel == 2
    assert st.pick_channel(START, None).channel is None
    with pytest.raises(ValueError):
        st.pick_channel(START, -1)
    assert st.set_scale(START, "shared").scale == "shared"
    with pytest.raises(ValueError, match="scale must be one of"):
        st.set_scale(START, "log")
    styled = st.set_style(START, opacity=0.2, bars=4)
    assert (styled.opacity, styled.bars, styled.colorscale) == (0.2, 4, START.colorscale)
    for bad in ({"opacity": 1.5}, {"bars": 0}):
        with pytest.raises(ValueError):
            st.set_style(START, **bad)  # type: ignore[arg-type]


def test_method_must_be_available_at_the_layer() -> None:
    assert st.pick_method(START, "cam", ["gradcam", "cam"]).method == "cam"
    with pytest.raises(ValueError, match="not available at layer 'layer4'"):
        st.pick_method(START, "cam", ["gradcam"])


def test_the_engine_question_ignores_drawing_choices() -> None:
    drawn = st.set_scale(st.set_style(st.pick_channel(START, 1), opacity=0.9), "shared")
    assert drawn.explanation == START.explanation
    assert st.set_counterfactual(START, True).explanation != START.explanation
