"""Seeded families of good and bad engine calls, shared by the fuzz tests and benchmarks/fuzz.py.

Each family draws one call from a ``random.Random`` and says whether the input is bad (so a
``ValueError``/``TypeError``/``FileNotFoundError`` is the right answer) or good (so a finite
result is). The families cover every input the engine takes: tensors (shape, dtype, layout,
device, values), numpy arrays, PIL pictures, files (garbage, truncated, bombs, thin), paths,
targets, the counterfactual flag, layers, methods, ``k`` and the constructor's arguments.
"""

from __future__ import annotations

import io
import random
import struct
import tempfile
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from camwidgets import GradCAM
from tests.conftest import SIZE, assert_unchanged, small_transform, snapshot, tiny_net

CLASSES = 5  # tiny_net's
LAYERS = ("conv1", "bn1", "conv2", "bn2", "relu")


@dataclass(frozen=True)
class Case:
    """One drawn call: ``run(engine)`` performs it; ``bad`` says an error is the right answer.

    ``bad=None``: either answer is right (a finite result, or a ValueError naming the NaN),
    for inputs whose overflow inside the model cannot be known before running it.
    """

    family: str
    form: str
    run: Callable[[GradCAM], Any]
    bad: bool | None


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def png_shell(width: int, height: int, data: bool = True) -> bytes:
    """A PNG claiming ``width`` x ``height`` with (almost) no pixel data: a tiny file."""
    head = b"\x89PNG\r\n\x1a\n" + _chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    )
    if not data:
        return head
    return head + _chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + _chunk(b"IEND", b"")


def png_bytes(width: int, height: int, rng: random.Random) -> bytes:
    pixels = np.random.default_rng(rng.getrandbits(32)).integers(0, 256, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


class Files:
    """A temporary folder for drawn files (one per run, removed by ``close``)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="camwidgets-fuzz-")
        self.root = Path(self._dir.name)
        self._count = 0

    def write(self, content: bytes, suffix: str = ".png") -> Path:
        self._count += 1
        path = self.root / f"f{self._count}{suffix}"
        path.write_bytes(content)
        return path

    def close(self) -> None:
        self._dir.cleanup()


def _explain(image: Any, **kwargs: Any) -> Callable[[GradCAM], Any]:
    return lambda engine: engine.explain(image, **kwargs)


def tensor_shape(rng: random.Random, files: Files) -> Case:
    dims = rng.choice([0, 1, 2, 3, 3, 4, 4, 5])
    channels = rng.choice([3, 3, 3, 1, 4, 0])
    if dims == 3:
        shape: tuple[int, ...] = (channels, rng.choice([0, 1, 7, SIZE]), rng.choice([1, 9, SIZE]))
    elif dims == 4:
        shape = (
            rng.choice([0, 1, 2, 3]),
            channels,
            rng.choice([1, 8, SIZE]),
            rng.choice([2, SIZE]),
        )
    else:
        shape = tuple(rng.choice([1, 3, 5]) for _ in range(dims))
    bad = dims not in (3, 4) or channels != 3 or 0 in shape
    x = torch.randn(shape) if all(shape) else torch.zeros(shape)
    return Case("tensor shape", f"{dims}-d, {channels} channels", _explain(x), bad)


def tensor_dtype(rng: random.Random, files: Files) -> Case:
    dtype = rng.choice(
        [
            torch.float32,
            torch.float64,
            torch.float16,
            torch.bfloat16,
            torch.int64,
            torch.uint8,
            torch.bool,
            torch.complex64,
            torch.int8,
        ]
    )
    x = (
        torch.randn(3, SIZE, SIZE).to(dtype)
        if dtype.is_floating_point
        else torch.ones(3, SIZE, SIZE, dtype=dtype)
    )
    bad = not dtype.is_floating_point
    return Case("tensor dtype", str(dtype), _explain(x, target=rng.randrange(CLASSES)), bad)


def tensor_values(rng: random.Random, files: Files) -> Case:
    value = rng.choice([float("nan"), float("inf"), -float("inf"), 1e300, -1e300, 1e39, 3.0, -2.5])
    dtype = (
        torch.float64
        if abs(value) > 3.4e38 and value == value
        else rng.choice([torch.float32, torch.float64])
    )
    x = torch.randn(3, SIZE, SIZE, dtype=dtype)
    count = rng.choice([1, 5, SIZE * SIZE * 3])
    flat = x.view(-1)
    flat[
        torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(rng.getrandbits(31)))[
            :count
        ]
    ] = value
    bad = not (abs(value) < 3.4e38)  # NaN, inf and values that overflow float32
    return Case("tensor values", f"{value:g} x{count} {dtype}", _explain(x), bad)


def model_overflow(rng: random.Random, files: Files) -> Case:
    """Finite inputs so large that the model's own arithmetic may overflow to inf/NaN."""
    value = rng.choice([1e30, 1e36, 3e38, -3e38, 1e20])
    x = torch.randn(1, 3, SIZE, SIZE) * value
    call = rng.choice(["explain", "predict"])
    run = (
        _explain(x, target=rng.randrange(CLASSES))
        if call == "explain"
        else (lambda engine: engine.predict(x))
    )
    return Case("model overflow", f"{call} x{value:g}", run, None)


def tensor_layout(rng: random.Random, files: Files) -> Case:
    kind = rng.choice(
        ["sparse_coo", "sparse_csr", "meta", "requires_grad", "channels_last", "view"]
    )
    x = torch.randn(1, 3, SIZE, SIZE)
    bad = True
    if kind == "sparse_coo":
        x = x.to_sparse()
    elif kind == "sparse_csr":
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            x = x[0, 0].to_sparse_csr()
    elif kind == "meta":
        x = x.to("meta")
    elif kind == "requires_grad":
        x, bad = x.requires_grad_(True), False
    elif kind == "channels_last":
        x, bad = x.contiguous(memory_format=torch.channels_last), False
    else:
        x, bad = torch.randn(2, 3, SIZE, SIZE)[1:, :, ::1], False
    return Case("tensor layout/device", kind, _explain(x), bad)


def numpy_image(rng: random.Random, files: Files) -> Case:
    kind = rng.choice(
        ["ok", "ok-gray", "ok-float", "thin", "chw", "empty", "int64", "range", "nan", "bool", "5d"]
    )
    h, w = rng.randint(5, 60), rng.randint(5, 60)
    generator = np.random.default_rng(rng.getrandbits(32))
    array: np.ndarray = generator.integers(0, 256, (h, w, 3)).astype(np.uint8)
    if kind == "ok-gray":
        array = array[..., 0]
    elif kind == "ok-float":
        array = generator.random((h, w, 3))
    elif kind == "thin":
        array = np.zeros((1, rng.randint(40 * 1, 9000), 3), np.uint8)
    elif kind == "chw":
        array = (
            np.zeros((3, h, w), np.uint8) if w not in (1, 3, 4) else np.zeros((3, h, 7), np.uint8)
        )
    elif kind == "empty":
        array = np.zeros((0, w, 3), np.uint8)
    elif kind == "int64":
        array = array.astype(np.int64)
    elif kind == "range":
        array = array.astype(np.float32)
    elif kind == "nan":
        array = generator.random((h, w, 3))
        array[0, 0, 0] = np.nan
    elif kind == "bool":
        array = array > 100
    elif kind == "5d":
        array = np.zeros((2, 2, 2, 2, 2), np.uint8)
    return Case("numpy image", kind, _explain(array), not kind.startswith("ok"))


def pil_image(rng: random.Random, files: Files) -> Case:
    mode = rng.choice(["RGB", "L", "RGBA", "P", "CMYK", "1", "I", "F", "LA"])
    shape = rng.choice(["ok", "ok", "thin", "empty"])
    size = {"ok": (rng.randint(1, 90), rng.randint(1, 90)), "thin": (1, 4000), "empty": (0, 7)}[
        shape
    ]
    if shape == "ok" and max(size) > 32 * min(size):
        size = (size[0], size[0])
    picture = Image.new(mode, size)
    return Case("PIL image", f"{mode} {shape}", _explain(picture), shape != "ok")


def image_file(rng: random.Random, files: Files) -> Case:
    kind = rng.choice(
        [
            "ok",
            "text",
            "empty",
            "garbage",
            "fake-png",
            "header-only",
            "truncated",
            "bomb",
            "warned-bomb",
            "thin",
        ]
    )
    good = png_bytes(rng.randint(8, 40), rng.randint(8, 40), rng)
    content = {
        "ok": good,
        "text": ("hello " * rng.randint(1, 500)).encode(),
        "empty": b"",
        "garbage": rng.randbytes(rng.randint(1, 3000)),
        "fake-png": b"\x89PNG\r\n\x1a\n" + rng.randbytes(rng.randint(0, 500)),
        "header-only": png_shell(rng.randint(1, 500), rng.randint(1, 500), data=False),
        "truncated": good[: rng.randint(1, len(good) - 13)],
        "bomb": png_shell(rng.randint(13_500, 40_000), rng.randint(13_500, 20_000)),
        "warned-bomb": png_shell(rng.randint(9_500, 12_000), rng.randint(9_500, 10_500)),
        "thin": png_shell(1, rng.randint(40, 60_000)),
    }[kind]
    path = files.write(content, rng.choice([".png", ".jpg", ".txt", ""]))
    image: Any = path if rng.random() < 0.5 else str(path)
    return Case("image file", kind, _explain(image), kind != "ok")


def image_path(rng: random.Random, files: Files) -> Case:
    kind = rng.choice(["missing", "directory", "long-name", "nul", "empty", "bytes"])
    image: Any = {
        "missing": files.root / f"missing-{rng.getrandbits(40)}.png",
        "directory": files.root,
        "long-name": "y" * rng.randint(256, 5000) + ".png",
        "nul": str(files.root / "a\x00b.png"),
        "empty": "",
        "bytes": b"/tmp/x.png",
    }[kind]
    return Case("image path", kind, _explain(image), True)


def _target(rng: random.Random) -> tuple[Any, bool, str]:
    """A drawn target value, whether it is bad, and its form."""
    kind = rng.choice(
        [
            "int",
            "int-out",
            "negative",
            "np-int",
            "np-out",
            "tensor-int",
            "tensor-bool",
            "bool",
            "np-bool",
            "float",
            "np-float",
            "name",
            "bad-name",
            "none",
            "list",
            "list-wrong",
            "dict",
            "tensor-float",
            "tensor-2",
        ]
    )
    good = rng.randrange(CLASSES)
    value: Any = {
        "int": good,
        "int-out": rng.randint(CLASSES, 10**6),
        "negative": -rng.randint(1, 9),
        "np-int": np.int32(good),
        "np-out": np.int64(CLASSES + rng.randint(0, 9)),
        "tensor-int": torch.tensor(good),
        "tensor-bool": torch.tensor(rng.random() < 0.5),
        "bool": rng.random() < 0.5,
        "np-bool": np.bool_(True),
        "float": float(good),
        "np-float": np.float64(good),
        "name": str(good),
        "bad-name": rng.choice(["zebra", "", "5", " 1"]),
        "none": None,
        "list": [good],
        "list-wrong": [good, good],
        "dict": {"class": good},
        "tensor-float": torch.tensor(float(good)),
        "tensor-2": torch.tensor([good, good]),
    }[kind]
    bad = kind not in ("int", "np-int", "tensor-int", "name", "none", "list")
    return value, bad, kind


def target(rng: random.Random, files: Files) -> Case:
    value, bad, kind = _target(rng)
    x = torch.randn(3, SIZE, SIZE, generator=torch.Generator().manual_seed(rng.getrandbits(31)))
    return Case("target", kind, _explain(x, target=value), bad)


def flag(rng: random.Random, files: Files) -> Case:
    value: Any = rng.choice(
        [
            True,
            False,
            np.bool_(False),
            np.bool_(True),
            torch.tensor(True),
            1,
            0,
            "yes",
            None,
            1.0,
            np.int64(1),
            torch.tensor([True]),
        ]
    )
    name = rng.choice(["counterfactual", "cache"])
    x = torch.randn(3, SIZE, SIZE)
    bool_like = isinstance(value, (bool, np.bool_)) or (
        isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.dim() == 0
    )
    return Case(name, type(value).__name__, _explain(x, **{name: value}), not bool_like)


def layer_method(rng: random.Random, files: Files) -> Case:
    layer: Any = rng.choice([*LAYERS, None, "fc", "pool", "", "conv9", 3, 2.0, "net.conv1"])
    method: Any = rng.choice(["gradcam", "gradcam", "cam", "lime", "", None, 7])
    bad_layer = layer not in (*LAYERS, None)
    bad_method = method not in ("gradcam", "cam")
    cam_only_at = "relu"  # tiny_net's pooled layer is the last ReLU's output
    bad = bad_layer or bad_method or (method == "cam" and layer not in (cam_only_at, None))
    x = torch.randn(3, SIZE, SIZE)
    return Case(
        "layer/method", f"{layer!r}/{method!r}", _explain(x, layer=layer, method=method), bad
    )


def top_k(rng: random.Random, files: Files) -> Case:
    k: Any = rng.choice(
        [1, 3, CLASSES, 99, 0, -1, True, 2.0, np.int64(2), torch.tensor(2), "3", None]
    )
    bad = isinstance(k, (bool, float, str)) or k is None or int(k) < 1
    x = torch.randn(3, SIZE, SIZE)
    return Case("predict k", type(k).__name__, lambda engine: engine.predict(x, k=k), bad)


def constructor(rng: random.Random, files: Files) -> Case:
    arg = rng.choice(["cache_bytes", "device", "layers", "score_fn", "transform"])
    value: Any
    if arg == "cache_bytes":
        value = rng.choice(
            [float("nan"), float("inf"), 0, -1, True, 1e8, 1 << 20, 10.5, "1GB", np.int64(1 << 20)]
        )
        bad = not (
            not isinstance(value, (bool, str))
            and float(value) == float(value)
            and 0 < float(value) < float("inf")
            and float(value).is_integer()
        )
    elif arg == "device":
        value = rng.choice(
            ["CPU", "bogus", -1, "cpu", None, torch.device("cpu"), "meta", True, "cuda:99"]
        )
        bad = value not in ("cpu", None, torch.device("cpu"))
    elif arg == "layers":
        value = rng.choice([[], [3], ["nope"], ["bn2"], "conv2", None, 5])
        bad = value in ([], [3], ["nope"], 5)
    elif arg == "score_fn":
        value = rng.choice(
            [
                lambda o: o.detach(),
                lambda o: o.argmax(1, keepdim=True),
                lambda o: o[0],
                lambda o: o,
                lambda o: o * 2.0,
                "logits",
            ]
        )
        bad = (
            value == "logits"
            or value(torch.zeros(1, 5, requires_grad=True)).requires_grad is False
            or value(torch.zeros(1, 5)).dim() != 2
            or value(torch.zeros(1, 5)).dtype != torch.float32
        )
    else:
        value = rng.choice([small_transform(), 5, lambda image: "not a tensor"])
        bad = value == 5 or not hasattr(value, "transforms")

    def build(engine: GradCAM) -> Any:
        kwargs = {"transform": small_transform(), arg: value}
        made = GradCAM(engine.model, **kwargs)
        return made.explain(torch.randn(3, SIZE, SIZE))

    return Case("constructor", f"{arg}={value!r}"[:40], build, bad)


FAMILIES: tuple[Callable[[random.Random, Files], Case], ...] = (
    tensor_shape,
    tensor_dtype,
    tensor_values,
    model_overflow,
    tensor_layout,
    numpy_image,
    pil_image,
    image_file,
    image_path,
    target,
    flag,
    layer_method,
    top_k,
    constructor,
)


def fresh_engine() -> GradCAM:
    """The engine every case runs against: tiny_net (5 classes, 64 x 64 inputs)."""
    return GradCAM(tiny_net(), transform=small_transform())


@dataclass(frozen=True)
class Outcome:
    """How the engine answered one case."""

    verdict: str  # right, wrong exception, accepted bad input, refused good input, non-finite
    model_changed: bool
    pass_before_error: bool
    detail: str = ""


def _finite(result: Any) -> bool:
    """Whether every number in a CamResult or a list of Predictions is finite."""
    if isinstance(result, list):
        return all(_finite(item) for item in result)
    if hasattr(result, "heatmap"):
        tensors = [result.heatmap, result.coarse, result.logits]
        numbers = np.atleast_1d(np.asarray(result.score, dtype=float)).tolist()
        numbers += np.atleast_1d(np.asarray(result.probability, dtype=float)).tolist()
        return all(bool(torch.isfinite(t).all()) for t in tensors) and all(np.isfinite(numbers))
    return bool(np.isfinite([result.probability, result.logit]).all())


def judge(case: Case, engine: GradCAM) -> Outcome:
    """Run ``case`` against ``engine`` and classify the answer; model state compared too."""
    model = engine.model
    before = snapshot(model)
    passes = engine.cache_info().forwards + engine.cache_info().backwards
    detail = ""
    errored = False
    try:
        result = case.run(engine)
    except (ValueError, TypeError) as err:  # FileNotFoundError is a ValueError here too
        errored = True
        verdict = "refused good input" if case.bad is False else "right"
        detail = f"{type(err).__name__}: {err}"[:160]
    except Exception as err:
        errored = True
        verdict, detail = "wrong exception", f"{type(err).__name__}: {err}"[:160]
    else:
        if not _finite(result):
            verdict = "non-finite"
        else:
            verdict = "accepted bad input" if case.bad is True else "right"
    try:
        assert_unchanged(model, before)
        changed = False
    except AssertionError:
        changed = True
    now = engine.cache_info().forwards + engine.cache_info().backwards
    ran = errored and now != passes and "NaN or inf" not in detail and case.family != "constructor"
    return Outcome(verdict, changed, ran, detail)
