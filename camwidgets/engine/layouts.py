"""How a layer's output lies over the image grid, how to bring it to (N, C, h, w), and how to tell.

Real models hand out maps in three layouts:

- ``"nchw"``: (N, C, h, w), CNNs;
- ``"nhwc"``: channels last (N, h, w, C), Swin, ConvNeXt blocks, timm stages;
- ``"tokens"``: (N, T, C) sequences whose tokens, after ``prefix`` leading ones (class,
  distillation, register tokens), are the patch grid in row-major order (ViT, DeiT, ...).

``Layout.to_nchw`` is a pure rearrangement (slice, reshape, permute), so applying it to a layer's
output and to the gradient of a score with respect to that output gives exactly the activations
and gradients of the (N, C, h, w) map: Grad-CAM on the result is Grad-CAM on the grid.

The layout is *detected*, never guessed from a shape alone (``detect``):

1. **Two more input sizes** (one taller, one wider, no gradients). An axis is a grid row axis if
   it changes with the input's height and not with its width, a column axis likewise. (N, C, h,
   w) and (N, h, w, C) follow from which axes move; a token axis moves with both, and its leading
   token count must be the same at all three sizes for the grid of a map found in step 1
   (the patch embedding's). Per-head tensors (N, heads, T, d), attention weights (N, heads, T,
   T) and adaptive pools (whose grid stays put) match none of these.
2. **Models that accept one input size only** (torchvision ``vit_b_16``, timm ViTs with a fixed
   ``img_size``, MaxViT): one batch of spatially localised perturbations. A reading of a tensor
   as a grid proves that grid if, for every probe, the cell that changed most is under the probe
   (give or take one cell); deeper maps on a proven grid may peak up to a quarter of the grid
   away (attention spreads a change). Token sequences must fit a proven grid after their leading
   tokens the same way; an attention output, which mixes all tokens, is accepted when it is as
   long as a sequence proven so. Window-partitioned tensors (MaxViT) and per-head tensors have
   no proven grid.

Tensors computed inside an attention module (its class name contains "attention": q, k, v,
attention weights, ...) are never candidates; the attention module's own output is. For exotic
models, ``GradCAM(model, layouts={"name": "tokens" | "nhwc" | "nchw" | Layout | callable})``
states a layer's layout outright.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from .capture import evaluating

Grid = tuple[int, int]
Size = tuple[int, int]
Rearrange = Callable[[torch.Tensor], torch.Tensor]
KINDS = ("nchw", "nhwc", "tokens")

# How much taller / wider the probe inputs are: more than any stride a classifier uses (32, 64),
# so every grid axis grows by at least one cell.
GROWTH = 64
# Perturbation probes (fractions of height, width): distinct rows and columns, no symmetry, so a
# transposed or scrambled reading cannot put every probe in its own cell by chance.
PROBES = ((0.3, 0.7), (0.72, 0.22), (0.14, 0.46), (0.86, 0.9))
# Where a probe's peak change may land: the cells under the probe, give or take one (a strict
# pass, which proves a grid), or give or take a quarter of the grid (a lenient pass: deep layers
# of attention models spread a change over a few cells). A lenient pass counts only for a reading
# whose grid a strict pass proved; scrambled readings (window partitions, per-head tensors) have
# grids no map has.
LENIENT = 0.25
STREAM_PROBES = 6  # token sequences of one length whose probe responses are read


@dataclass(frozen=True)
class Layout:
    """The layout of a layer's output, and its rearrangement to channels-first (N, C, h, w).

    For tokens, ``A[n, c, i, j] = X[n, prefix + i * w + j, c]``; channels last is
    ``A[n, c, i, j] = X[n, i, j, c]``. The token grid (h, w) comes from the grids seen at
    discovery (``grids``: input size -> grid) or, for an input size not seen, from the
    factorisation h * w = T - prefix closest to the input's aspect ratio.

    Example:
        >>> import torch
        >>> tokens = torch.arange(2 * 5 * 3.0).reshape(2, 5, 3)   # class token + 2 x 2 grid
        >>> Layout("tokens", prefix=1).to_nchw(tokens, size=(32, 32)).shape
        torch.Size([2, 3, 2, 2])

    Args:
        kind: "nchw", "nhwc", "tokens", or "custom" (``rearrange`` does it).
        prefix: leading tokens that are not grid cells (class, distillation, registers).
        grids: ((input H, W), (h, w)) pairs known for a token layout.
        rearrange: a callable tensor -> (N, C, h, w) that only slices, reshapes and permutes.
    """

    kind: str = "nchw"
    prefix: int = 0
    grids: tuple[tuple[Size, Grid], ...] = ()
    rearrange: Rearrange | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in (*KINDS, "custom"):
            raise ValueError(f"layout kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.kind == "custom") != (self.rearrange is not None):
            raise ValueError("a custom layout needs a rearrange callable, and only it has one")
        if not isinstance(self.prefix, int) or self.prefix < 0:
            raise ValueError(f"prefix must be a non-negative int, got {self.prefix!r}")

    def to_nchw(self, tensor: torch.Tensor, size: Size | None = None) -> torch.Tensor:
        """The tensor as (N, C, h, w); ``size`` is the model input's (H, W) (token grids)."""
        if self.kind == "nchw":
            _expect_dims(tensor, 4, self.kind)
            return tensor
        if self.kind == "nhwc":
            _expect_dims(tensor, 4, self.kind)
            return tensor.permute(0, 3, 1, 2)
        if self.kind == "tokens":
            _expect_dims(tensor, 3, self.kind)
            n, count, channels = tensor.shape
            h, w = self.grid(int(count), size)
            return tensor[:, self.prefix :, :].reshape(n, h, w, channels).permute(0, 3, 1, 2)
        assert self.rearrange is not None
        out = self.rearrange(tensor)
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != tensor.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"a layout callable must return (N, C, h, w) with the input's N = "
                f"{tensor.shape[0]}; it returned {got} for an input of {tuple(tensor.shape)}"
            )
        return out

    def grid(self, count: int, size: Size | None = None) -> Grid:
        """The (h, w) patch grid of ``count`` tokens for an input of ``size``."""
        cells = count - self.prefix
        if cells < 1:
            raise ValueError(f"{count} tokens leave no grid after {self.prefix} leading tokens")
        # A grid seen at this input size; with no size, any seen grid of this many cells. At a
        # new size the same count may lie differently (196 = 14 x 14 = 7 x 28): go by aspect.
        known = [g for s, g in self.grids if g[0] * g[1] == cells and size in (None, s)]
        if known:
            return known[0]
        aspect = size or (self.grids[0][0] if self.grids else (1, 1))
        target = math.log(aspect[0] / aspect[1])
        pairs = [(h, cells // h) for h in range(1, cells + 1) if cells % h == 0]
        return min(pairs, key=lambda hw: abs(math.log(hw[0] / hw[1]) - target))


def _expect_dims(tensor: torch.Tensor, dims: int, kind: str) -> None:
    """Raise if a tensor does not have the rank its layout needs."""
    if tensor.dim() != dims:
        raise ValueError(
            f"layout {kind!r} needs a {dims}-d tensor, got shape {tuple(tensor.shape)}"
        )


NCHW = Layout()
NHWC = Layout("nhwc")


def parse_overrides(model: nn.Module, layouts: object) -> dict[str, Layout | str]:
    """Check the ``layouts=`` argument before any model pass; "tokens" stays a string to fill in.

    Accepted: a mapping from module names to "nchw", "nhwc", "tokens", a ``Layout`` or a
    callable tensor -> (N, C, h, w).
    """
    if layouts is None:
        return {}
    if not isinstance(layouts, Mapping):
        raise TypeError(
            "layouts must be a dict {module name: 'nchw' | 'nhwc' | 'tokens' | Layout | "
            f"callable}}, got {type(layouts).__name__}"
        )
    names = [n for n, _ in model.named_modules() if n]
    parsed: dict[str, Layout | str] = {}
    for name, spec in layouts.items():
        if not isinstance(name, str) or name not in names:
            close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"layouts names {name!r}, which is not a module of the model{hint}")
        if isinstance(spec, Layout):
            parsed[name] = spec
        elif isinstance(spec, str):
            if spec not in KINDS:
                raise ValueError(
                    f"layouts[{name!r}] = {spec!r}; use one of {', '.join(map(repr, KINDS))}, "
                    "a Layout or a callable tensor -> (N, C, h, w)"
                )
            parsed[name] = NCHW if spec == "nchw" else NHWC if spec == "nhwc" else spec
        elif callable(spec):
            parsed[name] = Layout("custom", rearrange=spec)
        else:
            raise TypeError(
                f"layouts[{name!r}] must be 'nchw', 'nhwc', 'tokens', a Layout or a callable, "
                f"got {type(spec).__name__}"
            )
    return parsed


def attention_internal(model: nn.Module) -> frozenset[str]:
    """Modules inside an attention module: their outputs are q, k, v, weights, not maps."""
    inside: set[str] = set()
    for name, module in model.named_modules():
        if name and "attention" in type(module).__name__.lower():
            inside.update(f"{name}.{sub}" for sub, _ in module.named_modules() if sub)
    return frozenset(inside)


# -- detection ---------------------------------------------------------------------------------


@contextmanager
def _hooks(modules: Mapping[str, nn.Module], seen: Callable[[str, Any], None]) -> Iterator[None]:
    """Forward hooks that hand each module's output to ``seen``; removed whatever happens."""
    handles = [
        module.register_forward_hook(lambda _m, _a, out, name=name: seen(name, out))
        for name, module in modules.items()
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _shapes_at(
    model: nn.Module, modules: Mapping[str, nn.Module], batch: torch.Tensor
) -> dict[str, tuple[int, ...]] | None:
    """Output shapes of ``modules`` for ``batch``, or None if the model rejects that input.

    Shapes come from a pass on the ``meta`` device first (``_meta_shapes``: no arithmetic, the
    model's own tensors untouched); only a model that cannot run on meta tensors (data-dependent
    control flow, tensors kept outside its parameters and buffers) costs a real forward.
    """
    shapes = _meta_shapes(model, modules, batch)
    if shapes is not None:
        return shapes
    shapes = {}

    def seen(name: str, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            shapes[name] = tuple(out.shape)

    with evaluating(model), torch.no_grad(), _hooks(modules, seen):
        try:
            model(batch)
        except Exception:  # any failure means "this model takes one input size only"
            return None
    return shapes


def _meta_shapes(
    model: nn.Module, modules: Mapping[str, nn.Module], batch: torch.Tensor
) -> dict[str, tuple[int, ...]] | None:
    """Output shapes from a forward on ``meta`` copies of the input, parameters and buffers.

    ``torch.func.functional_call`` swaps the meta tensors in for the call and back; anything a
    module stored on itself during the call (a lazily built cache) is put back as it was, so the
    model is left exactly as found. None when the pass fails in any way.
    """
    state = {
        name: torch.empty_like(tensor, device="meta")
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]
    }
    # Each module's attributes, and the contents of its dict attributes (a per-size cache).
    saved = [(m, dict(m.__dict__)) for m in model.modules()]
    inner = [(d, dict(d)) for _, a in saved for d in a.values() if type(d) is dict]
    shapes: dict[str, tuple[int, ...]] = {}

    def seen(name: str, out: Any) -> None:
        if isinstance(out, torch.Tensor):
            shapes[name] = tuple(out.shape)

    try:
        with evaluating(model), torch.no_grad(), _hooks(modules, seen):
            functional_call(model, state, (batch.to("meta"),), strict=False)
    except Exception:  # unsupported on meta: the caller runs the real forward instead
        return None
    finally:
        for held, contents in [*((m.__dict__, a) for m, a in saved), *inner]:
            # By identity: ``==`` on tensor values would compare elementwise.
            if len(held) != len(contents) or any(
                contents.get(key, held) is not value for key, value in held.items()
            ):
                held.clear()
                held.update(contents)
    return shapes


def detect(
    model: nn.Module, example: torch.Tensor, outputs: Mapping[str, torch.Tensor]
) -> dict[str, Layout]:
    """The layout of each output in ``outputs`` (name -> its output for ``example``) that is a
    map over the image grid; the others are left out. ``example`` is one (1, C, H, W) image."""
    named = dict(model.named_modules())
    modules = {name: named[name] for name in outputs}
    base = {name: tuple(t.shape) for name, t in outputs.items()}
    size: Size = (int(example.shape[-2]), int(example.shape[-1]))
    generator = torch.Generator().manual_seed(1)
    taller = torch.randn((2, example.shape[1], size[0] + GROWTH, size[1]), generator=generator)
    wider = torch.randn((1, example.shape[1], size[0], size[1] + GROWTH), generator=generator)
    by_h = _shapes_at(model, modules, taller.to(example))
    by_w = _shapes_at(model, modules, wider.to(example)) if by_h is not None else None
    if by_h is not None and by_w is not None and any(base[n] != by_h.get(n) for n in base):
        sizes = (size, (size[0] + GROWTH, size[1]), (size[0], size[1] + GROWTH))
        return _by_sizes(base, by_h, by_w, sizes)
    return _by_probes(model, modules, example, base, size)


def _by_sizes(
    base: Mapping[str, tuple[int, ...]],
    by_h: Mapping[str, tuple[int, ...]],
    by_w: Mapping[str, tuple[int, ...]],
    sizes: tuple[Size, Size, Size],
) -> dict[str, Layout]:
    """Layouts from which axes follow the input's height and width (the taller batch has N=2)."""
    layouts: dict[str, Layout] = {}
    grids: dict[tuple[Grid, Grid, Grid], None] = {}  # ordered set: a map's grid at each size
    tokens: list[str] = []
    for name, shape in base.items():
        tall, wide = by_h.get(name), by_w.get(name)
        if tall is None or wide is None or not len(shape) == len(tall) == len(wide):
            continue
        if shape[0] != 1 or tall[0] != 2 or wide[0] != 1:
            continue  # axis 0 is not the batch axis
        moves_h = {i for i in range(1, len(shape)) if tall[i] != shape[i]}
        moves_w = {i for i in range(1, len(shape)) if wide[i] != shape[i]}
        if len(shape) == 4 and (moves_h, moves_w) in (({2}, {3}), ({1}, {2})):
            row = min(moves_h)
            layouts[name] = NCHW if row == 2 else NHWC
            grids[
                (shape[row], shape[row + 1]), (tall[row], tall[row + 1]), (wide[row], wide[row + 1])
            ] = None
        elif len(shape) == 3 and moves_h == moves_w == {1}:
            tokens.append(name)
    for name in tokens:
        counts = (base[name][1], by_h[name][1], by_w[name][1])
        fits = [
            (counts[0] - g[0][0] * g[0][1], g)
            for g in grids
            if len({c - h * w for c, (h, w) in zip(counts, g, strict=True)}) == 1
            and counts[0] >= g[0][0] * g[0][1]
        ]
        if fits:
            prefix, g = min(fits)
            layouts[name] = Layout("tokens", prefix, tuple(zip(sizes, g, strict=True)))
    return layouts


def _by_probes(
    model: nn.Module,
    modules: Mapping[str, nn.Module],
    example: torch.Tensor,
    base: Mapping[str, tuple[int, ...]],
    size: Size,
) -> dict[str, Layout]:
    """Layouts of a one-size model: which reading puts each probe's change in the probed cell."""
    centres = [((fy * size[0]), (fx * size[1])) for fy, fx in PROBES]
    batch = example.detach().repeat(len(PROBES) + 1, 1, 1, 1)
    half = max(1, min(size) // 32)
    generator = torch.Generator().manual_seed(2)
    for k, (cy, cx) in enumerate(centres, start=1):
        rows = slice(max(0, int(cy) - half), int(cy) + half)
        cols = slice(max(0, int(cx) - half), int(cx) + half)
        patch = batch[k, :, rows, cols]
        noise = 3.0 * torch.randn(patch.shape, generator=generator)
        batch[k, :, rows, cols] = patch + noise.to(patch)
    responses: dict[str, dict[str, torch.Tensor]] = {}

    sequences: dict[int, int] = {}  # token count -> sequences of that length probed so far

    def seen(name: str, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.shape[0] != batch.shape[0]:
            return
        if out.dim() == 3:
            responses[name] = {}
            # A few sequences of a length prove its layout; the rest share it (see below).
            if sequences.setdefault(out.shape[1], 0) < STREAM_PROBES:
                sequences[out.shape[1]] += 1
                change = (out[1:].float() - out[:1].float()).abs()
                responses[name] = {"tokens": change.sum(2)}
        elif out.dim() == 4:
            change = (out[1:].float() - out[:1].float()).abs()  # half precision would overflow
            responses[name] = {"nchw": change.sum(1), "nhwc": change.sum(3)}

    with evaluating(model), torch.no_grad(), _hooks(modules, seen):
        model(batch)
    layouts: dict[str, Layout] = {}
    strict = {
        (name, kind): _miss(r, centres, size, half, 0.0)
        for name, per in responses.items()
        for kind, r in per.items()
        if kind != "tokens"
    }
    proven = {tuple(responses[n][k].shape[1:]) for (n, k), e in strict.items() if e is not None}
    for name, per in responses.items():
        if len(base[name]) != 4:
            continue
        passing = []
        for kind, r in per.items():
            error = strict[(name, kind)]
            if error is None and tuple(r.shape[1:]) in proven:
                error = _miss(r, centres, size, half, LENIENT)
            if error is not None:
                passing.append((error, kind))
        if passing:
            layouts[name] = NCHW if min(passing)[1] == "nchw" else NHWC
    for name, per in responses.items():
        if len(base[name]) != 3:
            continue
        count = base[name][1]
        fits = []
        if "tokens" not in per:
            continue
        for h, w in sorted(proven):
            prefix = count - h * w
            if prefix >= 0:
                reading = per["tokens"][:, prefix:].reshape(-1, h, w)
                error = _miss(reading, centres, size, half, LENIENT)
                if error is not None:
                    fits.append((prefix, error, (h, w)))
        if fits:
            prefix, _, grid = min(fits)
            layouts[name] = Layout("tokens", prefix, ((size, grid),))
    # An attention block's output mixes all tokens, so no probe peaks there; but a sequence as
    # long as one proven on the residual stream is that same token sequence.
    streams = {base[n][1]: lay for n, lay in layouts.items() if lay.kind == "tokens"}
    for name in responses:
        if len(base[name]) == 3 and name not in layouts and base[name][1] in streams:
            layouts[name] = streams[base[name][1]]
    return layouts


def _miss(
    response: torch.Tensor,
    centres: Sequence[tuple[float, float]],
    size: Size,
    half: int,
    slack: float,
) -> int | None:
    """Total cells between each probe's peak change and the cells under the probe, or None if
    any peak is further than one cell (``slack`` 0) or ``slack`` of the grid away."""
    _, h, w = response.shape
    if h * w < 2:
        return None
    total = 0
    for r, (cy, cx) in zip(response, centres, strict=True):
        if not bool(r.max() > 0) or not bool(torch.isfinite(r).all()):
            return None
        i, j = divmod(int(r.argmax()), w)
        off = (_outside(i, cy, half, h, size[0]), _outside(j, cx, half, w, size[1]))
        if off[0] > max(1, math.ceil(slack * h)) or off[1] > max(1, math.ceil(slack * w)):
            return None
        total += off[0] + off[1]
    return total


def _outside(cell: int, centre: float, half: int, cells: int, pixels: int) -> int:
    """How many cells ``cell`` lies outside those covering pixels centre +- half."""
    low = int(max(0.0, centre - half) * cells / pixels)
    high = int(min(pixels - 1.0, centre + half - 1) * cells / pixels)
    return max(low - cell, cell - high, 0)
