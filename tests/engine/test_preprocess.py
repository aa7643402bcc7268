"""camwidgets' torchvision-free preprocessing gives torchvision's numbers, to the bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import v2

from camwidgets.engine import preprocess
from camwidgets.engine.inputs import find_normalize
from camwidgets.zoo.registry import scene_transform
from camwidgets.zoo.scenes import MEAN, STD


def _picture(width: int, height: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB").convert(mode)


# Wide, tall, square, smaller than the crop, odd sizes where centre crops round.
SIZES = [(320, 240), (240, 320), (224, 224), (100, 60), (257, 255), (37, 401)]


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("size", [224, 96, 64])
def test_default_transform_equals_torchvision_imagenet_preprocessing(
    width: int, height: int, size: int
) -> None:
    picture = _picture(width, height, seed=width * height + size)
    reference = transforms.Compose(
        [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )(picture)
    ours = preprocess.default_transform(size)(picture)
    assert ours.dtype == reference.dtype and ours.shape == reference.shape == (3, size, size)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize(("width", "height"), [(96, 96), (200, 150), (50, 70)])
def test_zoo_scene_transform_equals_torchvision(width: int, height: int) -> None:
    picture = _picture(width, height, seed=3)
    reference = transforms.Compose(
        [transforms.Resize((96, 96)), transforms.ToTensor(), transforms.Normalize(MEAN, STD)]
    )(picture)
    assert torch.equal(scene_transform()(picture), reference)


@pytest.mark.parametrize("mode", ["L", "RGBA", "1", "I", "F", "I;16"])
def test_to_tensor_matches_torchvision_for_every_pil_mode(mode: str) -> None:
    picture = _picture(31, 17, mode=mode if mode != "I;16" else "L", seed=5)
    if mode == "I;16":
        picture = Image.fromarray(np.asarray(picture).astype(np.uint16) * 200).convert("I;16")
    reference = transforms.ToTensor()(picture)
    ours = preprocess.ToTensor()(picture)
    assert ours.dtype == reference.dtype and torch.equal(ours, reference)


def test_to_tensor_matches_torchvision_for_arrays() -> None:
    array = np.random.default_rng(1).integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    assert torch.equal(preprocess.ToTensor()(array), transforms.ToTensor()(array))
    gray = array[:, :, 0]
    assert torch.equal(preprocess.ToTensor()(gray), transforms.ToTensor()(gray))


@pytest.mark.parametrize(
    ("size", "max_size"), [(50, None), ((40, 70), None), ([33], None), (60, 80), (None, 90)]
)
def test_resize_sizes_follow_torchvision(
    size: int | list[int] | None, max_size: int | None
) -> None:
    for width, height in SIZES:
        picture = _picture(width, height, seed=width)
        ours = preprocess.Resize(size, max_size=max_size)(picture)
        # torchvision's v1 Resize refuses size=None; v2 takes it (both resize PIL alike).
        theirs = v2.Resize if size is None else transforms.Resize
        reference = theirs(size, max_size=max_size)(picture)
        assert ours.size == reference.size
        assert np.array_equal(np.asarray(ours), np.asarray(reference))


@pytest.mark.parametrize("crop", [8, (20, 40), (120, 30), 500])
def test_center_crop_follows_torchvision_including_padding(crop: int | tuple[int, int]) -> None:
    for width, height in SIZES:
        picture = _picture(width, height, seed=height)
        ours = preprocess.CenterCrop(crop)(picture)
        reference = transforms.CenterCrop(crop)(picture)
        assert np.array_equal(np.asarray(ours), np.asarray(reference))
        tensor = transforms.ToTensor()(picture)
        assert torch.equal(preprocess.CenterCrop(crop)(tensor), transforms.CenterCrop(crop)(tensor))


def test_tensor_resize_matches_torchvision() -> None:
    tensor = torch.rand(3, 45, 67, generator=torch.Generator().manual_seed(0))
    for size in (20, (30, 90)):
        ours = preprocess.Resize(size)(tensor)
        reference = transforms.Resize(size, antialias=True)(tensor)
        assert torch.allclose(ours, reference, atol=1e-6, rtol=0)


def test_normalize_leaves_its_input_alone_and_refuses_zero_std() -> None:
    x = torch.rand(3, 4, 4)
    before = x.clone()
    out = preprocess.Normalize((0.5, 0.4, 0.3), (0.2, 0.3, 0.4))(x)
    assert torch.equal(x, before)
    assert torch.equal(out, transforms.Normalize((0.5, 0.4, 0.3), (0.2, 0.3, 0.4))(before))
    with pytest.raises(ValueError, match="zero"):
        preprocess.Normalize((0.5,), (0.0,))


def test_find_normalize_reads_both_kinds_of_steps() -> None:
    assert find_normalize(preprocess.default_transform()) == (
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
    )
    theirs = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1,), (0.2,))])
    assert find_normalize(theirs) == ([0.1], [0.2])
    assert find_normalize(transforms.Compose([transforms.ToTensor()])) is None
