"""Bad input gets a precise error, and the model and the cache are left as they were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from camwidgets import GradCAM
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot, tiny_net


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return resnet18()


@pytest.fixture(scope="module")
def engine(model: nn.Module) -> GradCAM:
    return GradCAM(model, transform=small_transform())


GOOD = torch.zeros(3, SIZE, SIZE)

CASES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"layer": "layer5"}, ValueError, r"unknown layer 'layer5'; did you mean .*'layer4'"),
    ({"layer": "layr4.1.bn2"}, ValueError, r"did you mean 'layer4.1.bn2'"),
    ({"layer": "fc"}, ValueError, r"'fc' is not a spatial layer: its output is \(1, 10\)"),
    ({"layer": "avgpool"}, ValueError, r"not a spatial layer.*\(1, 512, 1, 1\)"),
    ({"layer": 3}, TypeError, "layer must be a name, a module or None"),
    ({"target": 10}, ValueError, r"target 10 is out of range: the model has 10 classes \(0..9\)"),
    ({"target": -1}, ValueError, "out of range"),
    ({"target": "zebra"}, ValueError, "unknown class name 'zebra'"),
    ({"target": 2.5}, TypeError, "target must be a class index"),
    ({"target": [1, 2]}, ValueError, "got 2 targets for a batch of 1"),
    ({"method": "lime"}, ValueError, "unknown method 'lime'; available: gradcam, cam"),
    ({"image": torch.zeros(SIZE, SIZE)}, ValueError, r"expected \(C, H, W\) or \(N, C, H, W\)"),
    ({"image": torch.zeros(1, 1, 3, SIZE, SIZE)}, ValueError, r"expected \(C, H, W\)"),
    ({"image": torch.zeros(4, SIZE, SIZE)}, ValueError, "has 4 channels; the model takes 3"),
    ({"image": torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)}, TypeError, "must be float"),
    ({"image": torch.zeros(1, 3, 0, SIZE)}, ValueError, "image is empty"),
    ({"image": np.zeros((0, 5, 3), np.uint8)}, ValueError, "image is empty"),
    ({"image": np.zeros((8, 8, 2), np.uint8)}, ValueError, r"C in 1, 3, 4"),
    ({"image": np.zeros((3, 8, 8), np.uint8)}, ValueError, "looks channels-first"),
    ({"image": np.zeros((8, 8, 3), np.int64)}, TypeError, "dtype int64 not supported"),
    ({"image": np.full((8, 8, 3), 2.0)}, ValueError, r"float images must lie in \[0, 1\]"),
    ({"image": torch.full((3, SIZE, SIZE), float("nan"))}, ValueError, "NaN or infinite"),
    ({"image": "no/such/file.png"}, ValueError, "does not exist"),
    ({"image": {"pixels": 1}}, TypeError, "cannot use a dict as an image"),
    ({"image": []}, ValueError, "empty list of images"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), CASES)
def test_bad_input(
    engine: GradCAM, model: nn.Module, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = snapshot(model)
    entries = engine.cache_info().entries
    args = {"image": GOOD, **kwargs}
    with pytest.raises(error, match=message):
        engine.explain(**args)
    assert_unchanged(model, before)
    # Input errors are raised before any forward; target errors after the (cached) forward.
    assert engine.cache_info().entries <= entries + 1


def test_nan_numpy_pixels(engine: GradCAM) -> None:
    pixels = np.zeros((8, 8, 3), np.float32)
    pixels[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        engine.explain(pixels)


def test_no_pass_for_input_errors(engine: GradCAM) -> None:
    before = engine.cache_info()
    with pytest.raises(ValueError):
        engine.explain(torch.zeros(4, SIZE, SIZE))
    with pytest.raises(ValueError):
        engine.explain(GOOD, layer="nope")
    after = engine.cache_info()
    assert (after.forwards, after.backwards) == (before.forwards, before.backwards)


def test_model_without_spatial_layer() -> None:
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, 4))
    before = snapshot(mlp)
    with pytest.raises(ValueError, match="the model has no spatial layer"):
        GradCAM(mlp, transform=small_transform())
    assert_unchanged(mlp, before)


class DictOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = tiny_net()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.net(x)}


def test_model_output_not_scores_needs_score_fn() -> None:
    model = DictOutput()
    with pytest.raises(ValueError, match=r"model output is dict.*pass score_fn="):
        GradCAM(model, transform=small_transform())
    engine = GradCAM(model, transform=small_transform(), score_fn=lambda out: out["logits"])  # type: ignore[index]
    res = engine.explain(torch.randn(3, SIZE, SIZE), layer="net.bn2", target=2)
    assert res.heatmap.shape == (SIZE, SIZE)


def test_score_fn_must_return_a_matrix() -> None:
    with pytest.raises(ValueError, match="score_fn must return an"):
        GradCAM(tiny_net(), transform=small_transform(), score_fn=lambda out: out.sum())  # type: ignore[attr-defined]


def test_constructor_arguments() -> None:
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        GradCAM("resnet")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="got 3 class names but the model outputs 5"):
        GradCAM(tiny_net(), classes=["a", "b", "c"], transform=small_transform())
    with pytest.raises(ValueError, match="unknown layer 'layer9'"):
        GradCAM(resnet18(), transform=small_transform(), layers=["layer4", "layer9"])
    with pytest.raises(ValueError, match="cache_bytes must be a positive"):
        GradCAM(tiny_net(), transform=small_transform(), cache_bytes=0)
    with pytest.raises(ValueError, match="the model's parameters are on cpu"):
        GradCAM(tiny_net(), transform=small_transform(), device="meta")


def test_layers_argument_restricts_candidates(model: nn.Module) -> None:
    engine = GradCAM(model, transform=small_transform(), layers=["layer4", model.layer2, "layer3"])  # type: ignore[list-item]
    assert engine.layers == ["layer2", "layer3", "layer4"] and engine.default_layer == "layer4"
    assert engine.layer_shapes["layer4"] == (512, 2, 2)
    with pytest.raises(ValueError, match="'layer1' is spatial but not one of this engine's layers"):
        engine.explain(GOOD, layer="layer1")


def test_image_kinds_agree(engine: GradCAM, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
    pil = Image.fromarray(pixels)
    path = tmp_path / "img.png"
    pil.save(path)
    ref = engine.explain(pil, target=1)
    for same in (pixels, pixels.astype(np.float32) / 255.0, path, str(path), pil.convert("RGBA")):
        res = engine.explain(same, target=1)
        torch.testing.assert_close(res.heatmap, ref.heatmap)
    tensor = engine.prepare(pil).tensor
    torch.testing.assert_close(engine.explain(tensor[0], target=1).heatmap, ref.heatmap)
    gray = engine.explain(pil.convert("L"), target=1)
    assert gray.heatmap.shape == (SIZE, SIZE)
    assert engine.explain(np.zeros((30, 40), np.uint8)).heatmap.shape == (SIZE, SIZE)


def test_display_undoes_normalisation(engine: GradCAM) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    prepared = engine.prepare(pixels)
    assert prepared.display.shape == (1, SIZE, SIZE, 3) and prepared.display.dtype == np.uint8
    assert np.abs(prepared.display[0].astype(int) - pixels.astype(int)).max() <= 1
