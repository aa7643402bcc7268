"""torchvision_model offline: a clear error without the weights, a ZooModel with them."""

from __future__ import annotations

import os
import time
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

from camwidgets.zoo.torchvision_models import checkpoint_path, torchvision_model


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache, and a download that fails like a machine without a network.

    The download is replaced rather than attempted so the test neither hangs behind a
    firewall nor fetches 45 MB where a network exists.
    """
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path


def test_missing_weights_raise_with_the_path(torch_home: Path) -> None:
    expected = os.path.join(str(torch_home), "hub", "checkpoints", "resnet18-f37072fd.pth")
    assert checkpoint_path("resnet18") == expected
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"resnet18-f37072fd\.pth") as info:
        torchvision_model("resnet18")
    assert time.perf_counter() - start < 10
    assert expected in str(info.value)
    assert isinstance(info.value.__cause__, urllib.error.URLError)


def test_cached_weights_load(torch_home: Path) -> None:
    target = Path(checkpoint_path("resnet18", "IMAGENET1K_V1"))
    target.parent.mkdir(parents=True)
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    torch.save(reference.state_dict(), target)

    zm = torchvision_model("resnet18", "IMAGENET1K_V1")
    assert zm.name == "resnet18"
    assert not zm.model.training
    assert len(zm.classes) == 1000 and zm.classes[0] == "tench"
    assert zm.input_size == (224, 224)
    assert isinstance(zm.transform.transforms[-1], transforms.Normalize)
    x = zm.transform(Image.new("RGB", (300, 260), (120, 30, 200)))
    assert x.shape == (3, 224, 224)
    # Same numbers as torchvision's own preset.
    preset = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert torch.allclose(x, preset(Image.new("RGB", (300, 260), (120, 30, 200))), atol=1e-5)
    assert torch.equal(zm.model.fc.weight, reference.fc.weight)


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        torchvision_model("resnet18", "NOPE")
    with pytest.raises(ValueError, match="unknown torchvision model"):
        torchvision_model("not_a_model")
