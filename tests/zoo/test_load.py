"""load(): both shipped models, their packaging and their held-out accuracy."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision import transforms

from camwidgets.zoo import SHAPE_CLASSES, ZooModel, load, make_scene
from camwidgets.zoo.evaluate import accuracy
from camwidgets.zoo.registry import WEIGHTS_DIR

# Collections 0 and 1 are the training and validation scenes of the shipped weights.
HELD_OUT_SEED = 2024


@pytest.mark.parametrize("name", ["shapes", "shortcut"])
def test_packaging(name: str) -> None:
    path = WEIGHTS_DIR / f"{name}.pt"
    assert path.stat().st_size <= 3 * 1024 * 1024
    zm = load(name)
    assert isinstance(zm, ZooModel)
    assert zm.name == name
    assert not any(m.training for m in zm.model.modules())
    assert all(p.dtype == torch.float32 for p in zm.model.parameters())
    assert zm.classes == list(SHAPE_CLASSES)
    assert zm.input_size == (96, 96)
    assert zm.description
    # The zoo's preprocessing is the engine's torchvision-free copy (engine/preprocess.py, for
    # start-up time): its steps read like torchvision's and give torchvision's numbers.
    steps = zm.transform.transforms
    assert [type(step).__name__ for step in steps] == ["Resize", "ToTensor", "Normalize"]
    picture = Image.fromarray(make_scene(HELD_OUT_SEED, 0).image)
    x = zm.transform(picture)
    assert x.shape == (3, 96, 96) and x.dtype == torch.float32
    reference = transforms.Compose(
        [
            transforms.Resize((96, 96)),
            transforms.ToTensor(),
            transforms.Normalize(steps[-1].mean, steps[-1].std),
        ]
    )
    assert torch.equal(x, reference(picture))
    with pytest.raises(AttributeError):
        zm.name = "other"  # type: ignore[misc]


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match="'shapes', 'shortcut'"):
        load("resnet50")


def test_shapes_accuracy(shapes: ZooModel) -> None:
    assert accuracy(shapes.model, HELD_OUT_SEED, 300) >= 0.97


def test_transform_path_agrees(shapes: ZooModel) -> None:
    """A PIL image through the model's transform gives the same prediction as the dataset."""
    scenes = [make_scene(HELD_OUT_SEED, i) for i in range(20)]
    x = torch.stack([shapes.transform(Image.fromarray(s.image)) for s in scenes])
    with torch.no_grad():
        pred = shapes.model(x).argmax(1).tolist()
    assert sum(p == s.labels[0] for p, s in zip(pred, scenes, strict=True)) >= 19
