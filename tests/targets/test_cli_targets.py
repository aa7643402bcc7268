"""``camwidgets explain`` with detectors (--box), segmenters (--region) and Hugging Face
directories (--model hf:PATH). Expected numbers come from the engine called directly on the
same model and picture."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

from camwidgets import GradCAM
from camwidgets.cli import main
from camwidgets.targets import Region

# Each test builds a detector or segmenter engine twice (the command's and the expected one).
pytestmark = pytest.mark.slow

PEAK = re.compile(r"map max ([0-9.e+-]+) at \(x (\d+), y (\d+)\)")


def _picture(path: Path, size: tuple[int, int] = (120, 90)) -> Image.Image:
    rng = np.random.default_rng(0)
    picture = Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))
    picture.save(path)
    return picture


def _peak(out: str) -> tuple[float, int, int]:
    found = PEAK.search(out)
    assert found, out
    return float(found.group(1)), int(found.group(2)), int(found.group(3))


def _expected_peak(heat: torch.Tensor) -> tuple[float, int, int]:
    row, col = np.unravel_index(int(heat.argmax()), tuple(heat.shape))
    return float(heat.max()), int(col), int(row)


@pytest.fixture(scope="module")
def detector_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None)
    model = FasterRCNN(backbone, num_classes=3, min_size=128, max_size=160).eval()
    path = tmp_path_factory.mktemp("det") / "detector.pt"
    torch.save(model, path)
    return path


def test_box_explains_the_nth_detection(
    detector_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = _picture(tmp_path / "pic.png")
    args = ["explain", str(tmp_path / "pic.png"), "--model", str(detector_file), "--box", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    engine = GradCAM(torch.load(detector_file, weights_only=False))
    found = engine.detect(picture)
    assert f"{len(found)} detections" in out and "box 1:" in out
    res = engine.explain(picture, target=found[1])
    assert f"'{found[1].name} box 1' (class {found[1].label})" in out
    peak, x, y = _peak(out)
    expected = _expected_peak(res.heatmap)
    assert (x, y) == expected[1:] and peak == pytest.approx(expected[0], rel=1e-3)


def test_box_errors_are_usage_errors(
    detector_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _picture(tmp_path / "pic.png")
    base = ["explain", str(tmp_path / "pic.png"), "--model", str(detector_file)]
    assert main([*base, "--box", "100000"]) == 2
    assert "the detector found" in capsys.readouterr().err
    assert main([*base, "--box", "0", "--target", "1"]) == 2
    assert "give one of --target, --box and --region" in capsys.readouterr().err
    assert main([*base, "--region", "1"]) == 2
    assert "--region needs a segmentation model" in capsys.readouterr().err
    assert main(["explain", "--box", "0"]) == 2  # the zoo classifier
    assert "--box needs a detection model" in capsys.readouterr().err


def test_region_explains_the_predicted_region(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = torchvision.models.segmentation.fcn_resnet50(
        weights=None, weights_backbone=None, num_classes=3
    ).eval()
    path = tmp_path / "seg.pt"
    torch.save(model, path)
    picture = _picture(tmp_path / "pic.png")
    engine = GradCAM(model, layers=["backbone.layer4"])
    with torch.no_grad():
        labels = model(engine.prepare(picture).tensor)["out"][0].argmax(0).numpy()
    label = int(np.bincount(labels.ravel()).argmax())
    args = ["explain", str(tmp_path / "pic.png"), "--model", str(path), "--region", str(label)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "predicted classes" in out
    res = engine.explain(picture, target=Region(labels == label, label))
    peak, x, y = _peak(out)
    expected = _expected_peak(res.heatmap)
    assert (x, y) == expected[1:] and peak == pytest.approx(expected[0], rel=1e-3)


def test_hf_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "fox"},
        label2id={"cat": 0, "dog": 1, "fox": 2},
    )
    torch.manual_seed(0)
    model = transformers.ViTForImageClassification(config).eval()
    processor = transformers.ViTImageProcessor(size={"height": 32, "width": 32})
    model.save_pretrained(tmp_path / "vit")
    processor.save_pretrained(tmp_path / "vit")
    picture = _picture(tmp_path / "pic.png")
    args = ["explain", str(tmp_path / "pic.png"), "--model", f"hf:{tmp_path / 'vit'}"]
    assert main([*args, "--target", "dog"]) == 0
    out = capsys.readouterr().out
    engine = GradCAM(model, transform=processor)
    res = engine.explain(picture, target="dog")
    assert "'dog' (class 1)" in out and "ViTForImageClassification" in out
    assert _peak(out)[0] == pytest.approx(float(res.heatmap.max()), rel=1e-3)
    assert main(["explain", "--model", f"hf:{tmp_path / 'missing'}"]) == 2
    assert "save_pretrained" in capsys.readouterr().err
