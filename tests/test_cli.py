"""The ``camwidgets`` command: what explain prints and saves, checked against independent numbers.

Expected values come from the engine called directly, from plain torch (logits, bilinear
resizing) and from torchvision's own transforms, never from the command's code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn
from torchvision import transforms

import camwidgets
from camwidgets import GradCAM, zoo
from camwidgets.cli import main
from camwidgets.cli.errors import UsageError
from camwidgets.cli.geometry import Geometry, geometry
from camwidgets.cli.overlay import card_layout, overlay
from camwidgets.cli.save import write_bytes
from camwidgets.engine.inputs import default_transform

ROOT = Path(__file__).resolve().parents[1]
PEAK = re.compile(r"map max ([0-9.e+-]+) at \(x (\d+), y (\d+)\)")


def _photo(path: Path, size: tuple[int, int] = (200, 150), seed: int = 0) -> Image.Image:
    """A noisy RGB picture of the given (width, height), saved as PNG at ``path``."""
    rng = np.random.default_rng(seed)
    pixels = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    picture = Image.fromarray(pixels)
    picture.save(path)
    return picture


def _small_model(classes: int = 4) -> nn.Module:
    """A tiny CNN made only of torch.nn classes, so its pickle loads anywhere."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, classes),
    ).eval()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command in a fresh interpreter, as a user would."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "camwidgets.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _shapes_engine() -> GradCAM:
    shapes = zoo.load("shapes")
    return GradCAM(shapes.model, classes=shapes.classes, transform=shapes.transform)


# -- printing what the engine computes ----------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"camwidgets {camwidgets.__version__}"


def test_explain_prints_what_the_engine_computes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_png = tmp_path / "overlay.png"
    assert main(["explain", "--seed", "2", "--top", "3", "--save", str(out_png)]) == 0
    printed = capsys.readouterr().out.splitlines()
    engine = _shapes_engine()
    image = zoo.sample_scenes(1, seed=2)[0].image
    top = engine.predict(image, k=3)
    for line, p in zip(printed[1:4], top, strict=True):
        assert line.split()[0] == p.name  # type: ignore[union-attr]
        assert f"p={p.probability:.3f}" in line  # type: ignore[union-attr]
    heat = engine.explain(image).heatmap
    # A 96x96 scene is the model's input size: the picture's pixels are the map's pixels.
    row, col = divmod(int(heat.argmax()), heat.shape[1])
    peak = PEAK.search("\n".join(printed))
    assert peak is not None
    assert float(peak.group(1)) == pytest.approx(float(heat.max()), rel=1e-3)
    assert (int(peak.group(3)), int(peak.group(2))) == (row, col)
    saved = np.asarray(Image.open(out_png))
    # A 96 px scene is drawn 4x (each pixel a 4x4 block) beside its colour bar.
    assert saved.shape[0] >= 4 * 96 and saved.shape[1] >= 4 * 96 + 40


def test_target_by_any_case_counterfactual_and_method(capsys: pytest.CaptureFixture[str]) -> None:
    engine = _shapes_engine()
    image = zoo.sample_scenes(1, seed=3)[0].image
    method = next(m for m in engine.methods() if m != "gradcam")
    assert main(["explain", "--seed", "3", "--target", "TRIANGLE", "--counterfactual"]) == 0
    out = capsys.readouterr().out
    expected = engine.explain(image, target=2, counterfactual=True).heatmap
    assert "map against 'triangle' (class 2)" in out
    _assert_peak(out, expected)
    assert main(["explain", "--seed", "3", "--target", "4", "--method", method]) == 0
    out = capsys.readouterr().out
    assert f"{method} map for '{engine.classes[4]}' (class 4)" in out
    _assert_peak(out, engine.explain(image, target=4, method=method).heatmap)


def _assert_peak(out: str, heat: torch.Tensor) -> None:
    """The printed maximum is the engine's (an empty map is said in words)."""
    if float(heat.max()) == 0.0:
        assert "map is empty" in out
        return
    peak = PEAK.search(out)
    assert peak is not None, out
    assert float(peak.group(1)) == pytest.approx(float(heat.max()), rel=1e-3)


def test_list_shows_layers_and_methods(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--list"]) == 0
    out = capsys.readouterr().out
    engine = _shapes_engine()
    for name in engine.layers:
        assert re.search(rf"^\s+{re.escape(name)}\s", out, re.M), name
    assert f"default {engine.default_layer}" in out


# -- the map on the picture --------------------------------------------------------------------


@pytest.mark.parametrize("size", [(200, 150), (150, 260), (640, 480)])
@pytest.mark.parametrize(
    "transform",
    [
        default_transform(224),
        transforms.Compose([transforms.Resize((96, 96)), transforms.ToTensor()]),
        transforms.Compose(
            [
                transforms.Resize(100, max_size=120),
                transforms.CenterCrop((90, 130)),
                transforms.ToTensor(),
            ]
        ),
        torchvision.models.get_model_weights("resnet18").DEFAULT.transforms(),
    ],
    ids=["resize-crop", "squash", "max-size-and-padding", "torchvision-preset"],
)
def test_geometry_follows_torchvision(size: tuple[int, int], transform: object) -> None:
    # A white block on black: where torchvision's transform puts it in the model input, mapped
    # back, must be where it was drawn in the picture.
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    top, left = height // 3, width // 2 - 10
    bottom, right = top + height // 4, left + width // 5
    pixels[top:bottom, left:right] = 255
    tensor = transform(Image.fromarray(pixels))  # type: ignore[operator]
    view = geometry(transform, (height, width))
    assert isinstance(view, Geometry)
    assert view.model_input == tuple(tensor.shape[-2:])
    block = (tensor[0] > (tensor[0].max() + tensor[0].min()) / 2).float()
    on_picture, inside = view.to_picture(block)
    rows, cols = np.nonzero(on_picture > 0.5)
    seen_top, seen_left, seen_bottom, seen_right = view.view()
    # The block as far as the model saw it (a centre crop may cut it).
    want = (
        max(top, seen_top),
        min(bottom, seen_bottom),
        max(left, seen_left),
        min(right, seen_right),
    )
    got = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
    tolerance = 2 + max(width, height) / 224  # one model pixel, plus resampling
    assert np.allclose(got, want, atol=tolerance), (got, want)
    assert not on_picture[~inside].any()


def test_a_plain_resize_maps_like_torch_interpolate() -> None:
    # A tall picture (resampled in blocks of rows) squashed to 96x96: drawing the map back is
    # exactly a bilinear resize, which torch computes independently.
    transform = transforms.Compose([transforms.Resize((96, 96)), transforms.ToTensor()])
    view = geometry(transform, (2100, 70))
    assert isinstance(view, Geometry) and view.covers_all()
    values = torch.rand(96, 96, generator=torch.Generator().manual_seed(0))
    on_picture, inside = view.to_picture(values)
    expected = F.interpolate(values[None, None], size=(2100, 70), mode="bilinear")[0, 0]
    assert inside.all()
    np.testing.assert_allclose(on_picture, expected.numpy(), atol=1e-4)


def test_unknown_geometry_is_reported() -> None:
    transform = transforms.Compose([transforms.RandomCrop(32), transforms.ToTensor()])
    why = geometry(transform, (64, 64))
    assert isinstance(why, str) and "RandomCrop" in why


def test_photo_with_a_zoo_model_gets_a_note_and_a_full_size_overlay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    picture = _photo(photo, (200, 150))
    out_png = tmp_path / "out.png"
    assert main(["explain", str(photo), "--model", "zoo:shapes", "--save", str(out_png)]) == 0
    captured = capsys.readouterr()
    assert "96x96 synthetic scenes" in captured.err
    top, left, bottom, right = card_layout(150, 200).map_box
    assert (bottom - top, right - left) == (300, 400)  # scaled 2x to be readable
    assert Image.open(out_png).size[0] > right
    # Independent: the engine's 96x96 map, bilinearly resized to the picture by torch.
    heat = _shapes_engine().explain(picture).heatmap
    resized = F.interpolate(heat[None, None], size=(150, 200), mode="bilinear")[0, 0]
    row, col = divmod(int(resized.argmax()), 200)
    peak = PEAK.search(captured.out)
    assert peak is not None
    assert (int(peak.group(3)), int(peak.group(2))) == (row, col)
    assert float(peak.group(1)) == pytest.approx(float(resized.max()), rel=1e-3)


def test_model_file_with_a_centre_crop(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    model = _small_model()
    path = tmp_path / "model.pt"
    torch.save(model, path)
    photo = tmp_path / "wide.png"
    picture = _photo(photo, (320, 160))
    out_png = tmp_path / "overlay.png"
    args = ["explain", str(photo), "--model", str(path), "--size", "64", "--top", "2"]
    assert main([*args, "--save", str(out_png)]) == 0
    captured = capsys.readouterr()
    assert "pickled nn.Module" in captured.err and "pickled nn.Module" in captured.out
    with torch.no_grad():
        x = transforms.Compose(
            [
                transforms.Resize(73),  # round(64 * 256 / 224)
                transforms.CenterCrop(64),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )(picture)
        probabilities = model(x[None]).softmax(1)[0]
    best = int(probabilities.argmax())
    lines = captured.out.splitlines()
    assert lines[1].split()[0] == str(best)
    assert f"p={float(probabilities[best]):.3f}" in lines[1]
    # Resize to 146x73 (x 73/160); the 64x64 crop starts at x 41 = round(82 / 2), y 4 = round(4.5).
    scale = 73 / 160
    seen = (
        f"x {41 / scale:.0f}-{105 / scale:.0f}, y {4 / scale:.0f}-{68 / scale:.0f} (a centre crop)"
    )
    assert seen in captured.out
    card = np.asarray(Image.open(out_png)).astype(int)
    layout = card_layout(160, 320)
    top, left, bottom, right = layout.map_box
    drawn = card[top : bottom : layout.scale, left : right : layout.scale]  # one pixel per block
    assert drawn.shape == (160, 320, 3)
    # Left of the crop the model saw nothing: the picture there is only darkened, never coloured.
    outside = drawn[:, :80]
    original = np.asarray(picture)[:, :80].astype(int)
    assert (outside <= original).all() and outside.mean() < 0.6 * original.mean()


def test_state_dict_and_torchscript_files_are_explained(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = _small_model()
    photo = tmp_path / "p.png"
    _photo(photo)
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    assert main(["explain", str(photo), "--model", str(weights)]) == 2
    err = capsys.readouterr().err
    assert "state_dict" in err and "torch.save(model" in err and len(err.splitlines()) == 1
    scripted = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch deprecates TorchScript
        torch.jit.save(torch.jit.script(model), str(scripted))
    assert main(["explain", str(photo), "--model", str(scripted)]) == 2
    err = capsys.readouterr().err
    assert "TorchScript" in err and len(err.splitlines()) == 1
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    assert main(["explain", str(photo), "--model", str(junk)]) == 2
    assert "not a file written by torch.save" in capsys.readouterr().err


def test_torchvision_weights_from_the_cache_or_random_with_a_warning(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    photo = tmp_path / "p.png"
    picture = _photo(photo, (180, 120))
    args = ["explain", str(photo), "--model", "torchvision:squeezenet1_1", "--top", "1"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "RANDOM weights" in captured.err and "--download" in captured.err
    assert "squeezenet1_1 (random weights)" in captured.out
    # Now weights in torch hub's cache (as a download would leave them): the real weights API
    # loads them, and the top class is the one this network with these weights gives.
    weights = torchvision.models.get_model_weights("squeezenet1_1").DEFAULT
    torch.manual_seed(1)
    network = torchvision.models.squeezenet1_1().eval()
    cached = tmp_path / "torch" / "hub" / "checkpoints" / os.path.basename(weights.url)
    cached.parent.mkdir(parents=True)
    torch.save(network.state_dict(), cached)
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "RANDOM" not in captured.err and "(random weights)" not in captured.out
    with torch.no_grad():
        probabilities = network(weights.transforms()(picture)[None]).softmax(1)[0]
    best = int(probabilities.argmax())
    line = captured.out.splitlines()[1]
    assert f"(class {best})" in line and f"p={float(probabilities[best]):.3f}" in line
    assert weights.meta["categories"][best] in line


# -- never overwrite, never follow a link --------------------------------------------------------


def test_save_never_replaces_without_force_nor_an_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    _photo(photo)
    before = photo.read_bytes()
    for forced in ([], ["--force"]):
        assert main(["explain", str(photo), "--save", str(photo), *forced]) == 2
        assert "input" in capsys.readouterr().err
    link = tmp_path / "hard.png"
    os.link(photo, link)  # another name for the input is still the input
    assert main(["explain", str(photo), "--save", str(link), "--force"]) == 2
    assert photo.read_bytes() == before
    existing = tmp_path / "existing.png"
    existing.write_bytes(b"keep me")
    assert main(["explain", str(photo), "--save", str(existing)]) == 2
    assert "--force" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
    assert main(["explain", str(photo), "--save", str(existing), "--force"]) == 0
    height, width = card_layout(150, 200).size
    assert Image.open(existing).size == (width, height)


def test_save_never_follows_a_symlink(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    photo = tmp_path / "photo.png"
    _photo(photo)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out.png"
    link.symlink_to(victim)
    dangling = tmp_path / "new.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    for target in (link, dangling):
        assert main(["explain", str(photo), "--save", str(target), "--force"]) == 2
        assert "symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "precious" and not (tmp_path / "nowhere.png").exists()
    # The write itself refuses a link planted after the checks (O_NOFOLLOW).
    for force in (False, True):
        with pytest.raises(UsageError, match="symbolic link"):
            write_bytes(link, b"x", force=force, inputs=[])
    assert victim.read_text() == "precious"


def test_output_format_comes_from_the_extension(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    _photo(photo)
    assert main(["explain", str(photo), "--save", str(tmp_path / "out.xyz")]) == 2
    err = capsys.readouterr().err
    assert "'.xyz'" in err and ".png" in err and ".jpg" in err
    assert main(["explain", str(photo), "--save", str(tmp_path / "missing" / "o.png")]) == 2
    assert "does not exist" in capsys.readouterr().err
    out_jpg = tmp_path / "out.JPG"
    assert main(["explain", str(photo), "--save", str(out_jpg)]) == 0
    assert Image.open(out_jpg).format == "JPEG"


# -- errors ------------------------------------------------------------------------------------


def test_user_errors_are_one_line_with_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cases = {
        ("--model", "nope"): "neither a known model nor a file",
        ("--model", "zoo:nope"): "zoo:shapes",
        ("--model", "torchvision:resnet5"): "did you mean",
        ("--target", "triangel"): "did you mean 'triangle'",
        ("--target", "99"): "out of range",
        ("--layer", "layer9"): "did you mean",
        ("--method", "nope"): "unknown method 'nope'; available: gradcam, ",
    }
    for args, expected in cases.items():
        assert main(["explain", *args]) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and expected in err, (args, err)
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\nCat\ncrane\ncrane\nbird\n")
    assert main(["explain", "--classes", str(names), "--target", "crane"]) == 2
    assert "'crane' matches several classes: 'crane' (3), 'crane' (4)" in capsys.readouterr().err
    assert main(["explain", "--classes", str(names), "--target", "Cat"]) == 0
    assert "map for 'Cat' (class 2)" in capsys.readouterr().out  # the exact spelling wins
    assert main(["explain", "--classes", str(names), "--target", "BIRD"]) == 0
    assert "map for 'bird' (class 5)" in capsys.readouterr().out
    not_a_picture = tmp_path / "text.png"
    not_a_picture.write_text("hello")
    assert main(["explain", str(not_a_picture)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_errors_in_a_real_process_have_no_traceback(tmp_path: Path) -> None:
    done = _cli("explain", str(tmp_path / "missing.jpg"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"camwidgets explain: error: image file {str(tmp_path / 'missing.jpg')!r} does not exist"
    ]
    done = _cli("explain", "--top", "zero")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "--top" in done.stderr
    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"camwidgets {camwidgets.__version__}"


def test_audit_is_a_subcommand_of_the_one_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`camwidgets audit` goes through the same entry point: rows written, overwrite refused."""
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "a.parquet"
    args = ["audit", "zoo:scenes:8", "--model", "zoo:shapes", "--out", str(out)]
    assert main([*args, "--batch-size", "4"]) == 0
    assert pq.read_table(out).num_rows == 8
    capsys.readouterr()  # the first run's progress and summary
    assert main(args) == 2  # exists: refused without --force, one line on stderr
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--force" in err[0]


def test_audit_takes_the_same_model_files_as_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole pickled module works (predictions as the model gives them); a state_dict is a
    one-line error, as for `explain`: one model loader for every subcommand."""
    pq = pytest.importorskip("pyarrow.parquet")
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=4).eval()
    torch.save(model, tmp_path / "model.pt")
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"p{i}.png")
    out = tmp_path / "a.parquet"
    args = ["audit", str(folder), "--size", "64", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.load of a whole module warns about pickles
        assert main([*args, "--model", str(tmp_path / "model.pt")]) == 0
    table = pq.read_table(out).to_pandas().sort_values("id")
    transform = default_transform(64)
    expected = []
    for path in sorted(folder.glob("*.png")):
        with torch.no_grad():
            x = transform(Image.open(path).convert("RGB"))[None]
            expected.append(int(model(x).argmax()))
    assert table["target"].tolist() == expected
    capsys.readouterr()
    weights_only = [
        *args[:-1],
        str(tmp_path / "b.parquet"),
        "--model",
        str(tmp_path / "weights.pt"),
    ]
    assert main(weights_only) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "state_dict" in err[0]


def _reference_jet(v: np.ndarray) -> np.ndarray:
    """The classic jet colour map, written out: dark blue (0) .. cyan .. yellow .. dark red (1)."""
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1) * 255


def test_saved_overlay_is_readable_and_carries_a_colour_bar(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_png = tmp_path / "card.png"
    assert main(["explain", "--seed", "2", "--save", str(out_png)]) == 0
    assert "scaled 4x, with a colour bar" in capsys.readouterr().out
    card = np.asarray(Image.open(out_png)).astype(float)
    layout = card_layout(96, 96)
    assert layout.scale == 4 and layout.font >= 14  # text at least 14 px high
    # The map area is the 96x96 overlay, each pixel a 4x4 block.
    image = zoo.sample_scenes(1, seed=2)[0].image
    heat = _shapes_engine().explain(image).heatmap.numpy()
    expected = overlay(np.asarray(image), heat, np.ones(heat.shape, dtype=bool))
    top, left, bottom, right = layout.map_box
    area = card[top:bottom, left:right]
    assert area.shape[:2] == (384, 384)
    assert np.abs(area[::4, ::4] - expected).max() <= 1
    assert np.array_equal(area[1::4, 2::4], area[::4, ::4])  # blocks, not resampled
    # The colour bar: jet from the map's maximum (top) to zero (bottom), read off its middle.
    b_top, b_left, b_bottom, b_right = layout.bar_box
    column = card[b_top:b_bottom, (b_left + b_right) // 2]
    levels = 1 - np.arange(len(column)) / (len(column) - 1)
    assert np.abs(column - _reference_jet(levels)).max() <= 1.5
    assert b_bottom - b_top >= 300  # as tall as most of the map
    # Dark text beside the bar (its tick labels: max, half, 0) and above the map (the title).
    labels = card[b_top - 8 : b_bottom + 8, b_right + 6 :]
    assert (labels.min(axis=-1) < 100).sum() > 50
    title = card[:top, left:right]
    assert (title.min(axis=-1) < 100).sum() > 200
