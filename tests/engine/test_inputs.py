"""Image inputs: bad files and pictures are clear errors; unchanged tensors cost nothing."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from camwidgets import GradCAM
from camwidgets.engine import inputs
from camwidgets.engine.inputs import Prepared, fingerprint, prepare
from tests.conftest import SIZE, assert_unchanged, small_transform, snapshot, tiny_net


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return tiny_net()


@pytest.fixture()
def engine(model: nn.Module) -> GradCAM:
    return GradCAM(model, transform=small_transform())


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_header(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk claiming ``width`` x ``height``, and nothing else."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)


def png_shell(width: int, height: int) -> bytes:
    """A well-formed PNG claiming ``width`` x ``height`` with almost no pixel data (tiny file)."""
    return (
        png_header(width, height)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("text.png", b"this is not an image\n" * 20, "cannot read .* as an image"),
    ("empty.png", b"", "cannot read .* as an image"),
    ("fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "cannot read .* as an image"),
    ("header_only.png", png_header(64, 64), "cannot read .* as an image"),
    ("short_data.png", png_shell(64, 64), "cannot decode .* truncated or corrupt"),
    ("truncated.png", png_bytes(64, 64)[:80], "cannot (decode|read)"),
    ("bomb.png", png_shell(20_000, 20_000), "decompression bomb"),  # > 2x limit: PIL errors
    ("warned.png", png_shell(10_000, 10_000), "decompression bomb"),  # 1x-2x: PIL only warns
    ("thin.png", png_shell(1, 6000), "proportions of 1:6000"),
    ("text.txt", b"hello", "cannot read .* as an image"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES)
def test_bad_files_are_value_errors(
    engine: GradCAM, model: nn.Module, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = snapshot(model)
    forwards = engine.cache_info().forwards
    with pytest.raises(ValueError, match=message):
        engine.explain(path)
    with pytest.raises(ValueError, match=message):
        engine.explain(str(path))
    assert engine.cache_info().forwards == forwards
    assert_unchanged(model, before)


def test_path_errors(engine: GradCAM, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist") as missing:
        engine.explain(tmp_path / "missing.png")
    assert missing.value.filename == str(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="is a directory"):
        engine.explain(tmp_path)
    long = tmp_path / ("a" * 4000 + ".png")
    with pytest.raises(ValueError, match=r"\(4\d{3} characters\).: the name is too long"):
        engine.explain(long)
    with pytest.raises(ValueError, match="not a valid path"):
        engine.explain(str(tmp_path / "nul\x00.png"))


def test_valid_file_still_matches_its_pixels(engine: GradCAM, tmp_path: Path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "ok.png"
    Image.fromarray(pixels).save(path)
    torch.testing.assert_close(
        engine.explain(path, target=2).heatmap, engine.explain(pixels, target=2).heatmap
    )


def test_pil_bomb_limit_applies_to_in_memory_pictures(
    engine: GradCAM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"more than PIL\.Image\.MAX_IMAGE_PIXELS"):
        engine.explain(Image.new("RGB", (40, 40)))
    with pytest.raises(ValueError, match=r"more than PIL\.Image\.MAX_IMAGE_PIXELS"):
        engine.explain(np.zeros((40, 40, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the user's explicit "no limit"
    assert engine.explain(Image.new("RGB", (40, 40))).heatmap.shape == (SIZE, SIZE)


def test_proportions_at_the_limit_pass_and_beyond_fail(engine: GradCAM) -> None:
    limit = inputs.MAX_ASPECT
    assert engine.explain(Image.new("RGB", (limit * 2, 2))).heatmap.shape == (SIZE, SIZE)
    with pytest.raises(ValueError, match=f"at most 1:{limit}"):
        engine.explain(Image.new("RGB", (limit * 2 + 1, 2)))


def test_truncated_picture_opened_by_the_user(engine: GradCAM) -> None:
    lazy = Image.open(io.BytesIO(png_bytes(64, 64)[:90]))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        engine.explain(lazy)


def test_thin_image_peak_memory_stays_small(tmp_path: Path) -> None:
    """A 1 x 6000 picture (a tiny file) is refused from its header: peak RSS stays small."""
    path = tmp_path / "thin.png"
    Image.new("RGB", (6000, 1), (1, 2, 3)).save(path)
    code = f"""
import resource, sys, torch
sys.path.insert(0, {str(Path.cwd())!r})
from camwidgets import GradCAM
from tests.conftest import tiny_net
engine = GradCAM(tiny_net())  # the default ImageNet transform (resize the short side to 256)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for image in ({str(path)!r}, __import__("numpy").zeros((1, 6000, 3), "uint8")):
    try:
        engine.explain(image)
    except ValueError as err:
        assert "1:6000" in str(err), err
    else:
        raise AssertionError("accepted")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_mb = float(out.stdout.strip().splitlines()[-1])
    assert grown_mb < 100, f"peak memory grew by {grown_mb:.0f} MB"


# -- tensors -------------------------------------------------------------------------------


def test_float64_overflow_and_half_models(engine: GradCAM) -> None:
    big = torch.full((3, SIZE, SIZE), 1e300, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"overflows the model's torch\.float32"):
        engine.explain(big)
    with pytest.raises(ValueError, match=r"overflows the model's torch\.float16"):
        prepare(
            torch.full((1, 3, 4, 4), 1e5), small_transform(), 3, torch.device("cpu"), torch.half
        )
    with pytest.raises(ValueError, match="NaN or infinite"):
        engine.explain(torch.full((3, SIZE, SIZE), float("-inf")))


def test_model_overflow_is_named_not_returned_as_nan(model: nn.Module) -> None:
    class Overflow(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny_net()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            scale = 1e30 if float(x.detach().abs().max()) > 50 else 1.0
            return self.net(x * scale) * scale  # overflows to inf, then NaN, for large inputs

    wrapped = Overflow()
    engine = GradCAM(wrapped, transform=small_transform())
    before = snapshot(wrapped)
    with pytest.raises(ValueError, match="scores contain NaN or infinite values"):
        engine.explain(torch.full((3, SIZE, SIZE), 60.0))
    with pytest.raises(ValueError, match="scores contain NaN or infinite values"):
        engine.predict(torch.full((3, SIZE, SIZE), 60.0))
    assert engine.cache_info().entries == 0
    assert_unchanged(wrapped, before)


def test_same_tensor_object_is_not_rehashed(
    engine: GradCAM, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = inputs.fingerprint
    monkeypatch.setattr(inputs, "fingerprint", lambda t: calls.append(1) or real(t))
    x = torch.randn(3, SIZE, SIZE)
    first = engine.explain(x, target=1)
    for _ in range(3):
        engine.explain(x, target=1, counterfactual=True)
    assert len(calls) == 1
    x.mul_(-1)  # bumps the version: the content key is recomputed and the map follows
    flipped = engine.explain(x, target=1)
    assert len(calls) == 2 and not flipped.cached
    assert not torch.equal(first.heatmap, flipped.heatmap)
    same_pixels = x.clone()  # another object, same content: hashed once, hits the cache
    assert engine.explain(same_pixels, target=1).cached and len(calls) == 3


def test_a_view_changed_in_place_is_seen(engine: GradCAM) -> None:
    base = torch.randn(2, 3, SIZE, SIZE)
    view = base[0]
    a = engine.explain(view, target=0)
    base[0, 0, :4].fill_(3.0)  # write through the base: views share its version counter
    b = engine.explain(view, target=0)
    assert not b.cached and not torch.equal(a.coarse, b.coarse)


def test_prepared_is_reused_until_its_tensor_changes(engine: GradCAM) -> None:
    prepared = engine.prepare(torch.randn(3, SIZE, SIZE))
    assert engine.prepare(prepared) is prepared
    key = prepared.fingerprint
    prepared.tensor.add_(1.0)
    again = engine.prepare(prepared)
    assert again is not prepared and again.fingerprint != key


def test_display_is_built_only_when_asked(engine: GradCAM, monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    real = inputs.to_display
    monkeypatch.setattr(inputs, "to_display", lambda t, n: built.append(1) or real(t, n))
    prepared = engine.prepare(np.zeros((20, 20, 3), np.uint8))
    engine.explain(prepared)
    assert built == []
    assert prepared.display.shape == (1, SIZE, SIZE, 3) and prepared.display is prepared.display
    assert built == [1]


def test_converted_copies_are_not_kept_alive() -> None:
    """A float64 source is converted to float32; the memo keeps only the key, not the copy."""
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    device = torch.device("cpu")
    first = prepare(x, small_transform(), 3, device, torch.float32)
    key = first.fingerprint
    copy_storage = first.tensor.untyped_storage().data_ptr()
    del first
    again = prepare(x, small_transform(), 3, device, torch.float32)
    assert again.fingerprint == key
    assert again.tensor.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
    assert copy_storage != x.untyped_storage().data_ptr()


def test_memo_entries_die_with_their_tensors() -> None:
    device = torch.device("cpu")
    before = len(inputs._SEEN)
    tensors = [torch.randn(1, 3, 4, 4) for _ in range(5)]
    for t in tensors:
        prepare(t, small_transform(), 3, device, torch.float32)
    assert len(inputs._SEEN) == before + 5
    del tensors, t
    assert len(inputs._SEEN) == before


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_device_hash_is_a_content_key(dtype: torch.dtype) -> None:
    """The on-device key (used for CUDA tensors) tested on the CPU: equal iff equal content."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 7, 5, generator=generator).to(dtype)
    key = inputs._device_hash(x)
    assert inputs._device_hash(x.clone()) == key
    assert inputs._device_hash(x.contiguous(memory_format=torch.channels_last)) == key
    y = x.clone()
    y.view(-1)[17] = y.view(-1)[17] + 1  # one value changed
    assert inputs._device_hash(y) != key
    swapped = x.clone()
    swapped.view(-1)[[3, 4]] = x.view(-1)[[4, 3]]  # same values, other positions
    if not torch.equal(swapped, x):
        assert inputs._device_hash(swapped) != key
    keys = {inputs._device_hash(torch.randn(3, 4, 4, generator=generator)) for _ in range(200)}
    assert len(keys) == 200


def test_fingerprint_includes_shape_and_dtype() -> None:
    x = torch.zeros(1, 3, 4, 4)
    assert fingerprint(x) != fingerprint(x.view(1, 3, 2, 8))
    assert fingerprint(x) != fingerprint(x.double())
    assert fingerprint(x) == fingerprint(torch.zeros(1, 3, 4, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_keys_are_made_on_the_device() -> None:
    x = torch.randn(8, 3, 32, 32, device="cuda")
    prepared = Prepared(x, batched=True)
    assert prepared.fingerprint == fingerprint(x.clone())
    assert prepared.fingerprint != fingerprint(x + 1)
    assert prepared.tensor.device.type == "cuda"


def test_activations_that_overflow_are_refused() -> None:
    class Scale(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 1e30 * 1e30 if float(x.detach().abs().amax()) > 20 else x

    class Blowup(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.scale = Scale()
            self.head = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.scale(self.conv(x))
            return self.head(torch.tanh(out).mean(dim=(2, 3)))  # scores stay finite

    engine = GradCAM(Blowup(), transform=small_transform())
    with pytest.raises(ValueError, match=r"output at layer 'scale' contains NaN or inf"):
        engine.activations(torch.full((3, SIZE, SIZE), 60.0), "scale")
    assert bool(torch.isfinite(engine.activations(torch.zeros(3, SIZE, SIZE), "scale")).all())
    with pytest.raises(ValueError, match=r"gradcam map at layer 'scale' contains NaN or inf"):
        engine.explain(torch.full((3, SIZE, SIZE), 60.0), "scale", target=0)
