"""Bad input gets a precise error, and the model and the cache are left as they were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
    ({"target": 10}, ValueError, r"class index 10 is out of range: the model has 10 classes"),
    ({"target": -1}, ValueError, "out of range"),
    ({"target": np.int64(12)}, ValueError, "class index 12 is out of range"),
    ({"target": torch.tensor(10)}, ValueError, "class index 10 is out of range"),
    ({"target": "zebra"}, ValueError, "unknown class 'zebra'"),
    ({"target": 2.5}, TypeError, "target must be a class index"),
    ({"target": np.float32(2.0)}, TypeError, "target must be a class index"),
    ({"target": True}, TypeError, "target must be a class index"),
    ({"target": np.bool_(True)}, TypeError, "target must be a class index"),
    ({"target": torch.tensor(True)}, TypeError, "target must be a class index"),
    ({"target": torch.tensor([1, 2])}, ValueError, "got 2 targets for a batch of 1"),
    ({"target": torch.tensor(1.0)}, TypeError, "target must be a class index"),
    ({"target": [1, 2]}, ValueError, "got 2 targets for a batch of 1"),
    ({"target": [99]}, ValueError, "class index 99 is out of range"),
    ({"target": {"a": 1}}, TypeError, "target must be a class index"),
    ({"method": "lime"}, ValueError, "unknown method 'lime'; available: gradcam, cam"),
    ({"method": None}, TypeError, r"method must be a name \(str\)"),
    ({"counterfactual": 1}, TypeError, r"counterfactual must be True or False .* got int 1"),
    ({"counterfactual": "yes"}, TypeError, "counterfactual must be True or False"),
    ({"counterfactual": np.float64(1.0)}, TypeError, "got numpy.float64"),
    ({"counterfactual": None}, TypeError, "counterfactual must be True or False"),
    ({"cache": "no"}, TypeError, "cache must be True or False"),
    ({"image": torch.zeros(SIZE, SIZE)}, ValueError, r"expected \(C, H, W\) or \(N, C, H, W\)"),
    ({"image": torch.zeros(1, 1, 3, SIZE, SIZE)}, ValueError, r"expected \(C, H, W\)"),
    ({"image": torch.zeros(4, SIZE, SIZE)}, ValueError, "has 4 channels; the model takes 3"),
    ({"image": torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)}, TypeError, "real floating point"),
    ({"image": torch.zeros(3, SIZE, SIZE, dtype=torch.complex64)}, TypeError, "complex64"),
    ({"image": torch.zeros(3, SIZE, SIZE, device="meta")}, ValueError, "meta device"),
    ({"image": torch.zeros(3, SIZE, SIZE).to_sparse()}, TypeError, "must be dense"),
    ({"image": torch.zeros(1, 3, 0, SIZE)}, ValueError, "image is empty"),
    ({"image": np.zeros((0, 5, 3), np.uint8)}, ValueError, "image is empty"),
    ({"image": np.zeros((8, 8, 2), np.uint8)}, ValueError, r"C in 1, 3, 4"),
    ({"image": np.zeros((3, 8, 8), np.uint8)}, ValueError, "looks channels-first"),
    ({"image": np.zeros((8, 8, 3), np.int64)}, TypeError, "dtype int64 not supported"),
    ({"image": np.full((8, 8, 3), 2.0)}, ValueError, r"float images must lie in \[0, 1\]"),
    ({"image": np.zeros((1, 6000, 3), np.uint8)}, ValueError, "proportions of 1:6000"),
    ({"image": torch.full((3, SIZE, SIZE), float("nan"))}, ValueError, "NaN or infinite"),
    ({"image": torch.full((3, SIZE, SIZE), 1e300, dtype=torch.float64)}, ValueError, "overflows"),
    ({"image": "no/such/file.png"}, FileNotFoundError, "does not exist"),
    ({"image": "x" * 4000 + ".png"}, ValueError, "the name is too long"),
    ({"image": "."}, ValueError, "is a directory"),
    ({"image": ""}, ValueError, "empty string"),
    ({"image": {"pixels": 1}}, TypeError, "cannot use a dict as an image"),
    ({"image": []}, ValueError, "empty list of images"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), CASES)
def test_bad_input(
    engine: GradCAM, model: nn.Module, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = snapshot(model)
    info = engine.cache_info()
    args = {"image": GOOD, **kwargs}
    with pytest.raises(error, match=message):
        engine.explain(**args)
    assert_unchanged(model, before)
    # Every check (targets included) runs before any model pass: nothing ran, nothing cached.
    after = engine.cache_info()
    assert (after.forwards, after.backwards, after.entries) == (
        info.forwards,
        info.backwards,
        info.entries,
    )


def test_missing_file_is_also_a_value_error(engine: GradCAM) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        engine.explain("no/such/file.png")


def test_numpy_scalars_are_accepted_where_python_ones_are(
    engine: GradCAM, model: nn.Module
) -> None:
    x = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    plain = engine.explain(x, target=4, counterfactual=True)
    for target in (np.int64(4), np.uint8(4), torch.tensor(4), np.array(4)):
        res = engine.explain(x, target=target, counterfactual=np.bool_(True))
        assert res.target == 4 and res.counterfactual is True
        torch.testing.assert_close(res.heatmap, plain.heatmap, rtol=0, atol=0)
    assert len(engine.predict(x, k=np.int32(3))) == 3
    assert len(engine.predict(x, k=torch.tensor(2))) == 2
    batch = torch.stack([x, -x])
    res = engine.explain(batch, target=np.array([4, 1]))
    assert res.target == (4, 1)


@pytest.mark.parametrize(
    ("k", "error"),
    [(0, ValueError), (-2, ValueError), (True, TypeError), (2.0, TypeError), ("3", TypeError)],
)
def test_bad_k(engine: GradCAM, k: object, error: type[Exception]) -> None:
    forwards = engine.cache_info().forwards
    with pytest.raises(error, match="k must be"):
        engine.predict(GOOD, k=k)  # type: ignore[arg-type]
    assert engine.cache_info().forwards == forwards


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
    with pytest.raises(ValueError, match="device='meta' holds no data"):
        GradCAM(tiny_net(), transform=small_transform(), device="meta")
    with pytest.raises(ValueError, match="the model's parameters are on the meta device"):
        GradCAM(tiny_net().to("meta"), transform=small_transform())


BAD_CONSTRUCTION: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"cache_bytes": 0}, ValueError, "cache_bytes must be a positive"),
    ({"cache_bytes": -5}, ValueError, "cache_bytes must be a positive"),
    ({"cache_bytes": float("nan")}, ValueError, "cache_bytes must be a positive"),
    ({"cache_bytes": float("inf")}, ValueError, "cache_bytes must be a positive"),
    ({"cache_bytes": 10.5}, ValueError, "cache_bytes must be a positive"),
    ({"cache_bytes": True}, TypeError, "not a bool"),
    ({"cache_bytes": "1GB"}, TypeError, "cache_bytes must be a positive"),
    ({"layers": []}, ValueError, "layers is empty"),
    ({"layers": [3]}, TypeError, "each entry of layers must be"),
    ({"layers": 3}, TypeError, "layers must be None"),
    ({"device": "CPU"}, ValueError, r"unknown device 'CPU' \(device names are lower case: 'cpu'\)"),
    ({"device": "bogus"}, ValueError, "unknown device 'bogus'"),
    ({"device": -1}, ValueError, "device index must be >= 0"),
    ({"device": True}, TypeError, "device must be"),
    ({"device": 2.0}, TypeError, "device must be"),
    ({"transform": 5}, TypeError, "transform must be callable"),
    ({"score_fn": "logits"}, TypeError, "score_fn must be callable"),
    ({"score_fn": lambda out: out.detach()}, ValueError, r"detached\?"),
    ({"score_fn": lambda out: out.argmax(1, keepdim=True)}, ValueError, "int64 scores"),
    ({"score_fn": lambda out: out[0]}, ValueError, "expected raw class scores"),
    ({"score_fn": lambda out: out.repeat(2, 1)}, ValueError, r"shape \(2, 5\) for a batch of 1"),
]


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_CONSTRUCTION)
def test_bad_construction(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    model = tiny_net()
    before = snapshot(model)
    with pytest.raises(error, match=message):
        GradCAM(model, **{"transform": small_transform(), **kwargs})
    assert_unchanged(model, before)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where CUDA is absent")
@pytest.mark.parametrize("device", [0, "cuda", "cuda:1"])
def test_cuda_asked_where_there_is_none(device: object) -> None:
    class NoParameters(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return F.avg_pool2d(x, 4).flatten(1)[:, :5]

    with pytest.raises(ValueError, match="CUDA is not available"):
        GradCAM(NoParameters(), transform=small_transform(), device=device)  # type: ignore[arg-type]


def test_whole_float_cache_bytes_and_numpy_ints_are_accepted() -> None:
    for budget in (1e9, np.int64(1 << 20), 1 << 20):
        engine = GradCAM(tiny_net(), transform=small_transform(), cache_bytes=budget)  # type: ignore[arg-type]
        assert engine.cache_info().max_bytes == int(budget) and isinstance(
            engine.cache_info().max_bytes, int
        )


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
