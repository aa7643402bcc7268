"""Layouts: token and channels-last maps are detected, exact, and attention internals excluded.

Expected maps come from ``reference_layout_gradcam``, written here: it hooks the layer, takes
``torch.autograd.grad`` of the score on the hooked output, and rearranges activations and
gradients by hand (drop the leading tokens, reshape to the grid, permute) before the formula.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from camwidgets import GradCAM
from camwidgets.engine.layouts import Layout
from tests.conftest import SIZE, assert_unchanged, resnet18, small_transform, snapshot
from tests.engine.reference import layer_output_and_gradient

Rearrange = Callable[[torch.Tensor], torch.Tensor]


def tokens_to_nchw(prefix: int, h: int, w: int) -> Rearrange:
    """Hand-written: drop ``prefix`` tokens, rows of ``w`` tokens, channels first."""

    def rearrange(t: torch.Tensor) -> torch.Tensor:
        n, _, c = t.shape
        out = torch.empty(n, c, h, w, dtype=t.dtype)
        for i in range(h):
            for j in range(w):
                out[:, :, i, j] = t[:, prefix + i * w + j, :]
        return out

    return rearrange


def nhwc_to_nchw(t: torch.Tensor) -> torch.Tensor:
    """Hand-written channels-last to channels-first."""
    return torch.stack([t[..., k] for k in range(t.shape[-1])], dim=1)


def reference_layout_gradcam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    targets: list[int],
    rearrange: Rearrange,
    sign: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(heatmap (N, H, W), coarse (N, h, w), alpha (N, K)) for a batch, from scratch."""
    output, grad = layer_output_and_gradient(model, x, layer, targets, sign)
    activations = rearrange(output).float()
    alpha = rearrange(grad).float().mean(dim=(2, 3))
    coarse = (alpha[:, :, None, None] * activations).sum(1)
    heat = F.interpolate(
        coarse.clamp_min(0)[:, None], size=x.shape[-2:], mode="bilinear", align_corners=False
    )[:, 0]
    return heat, coarse, alpha


def assert_maps_close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal up to float rounding, relative to the map's own scale (random nets: tiny maps)."""
    scale = float(want.abs().max()) + 1e-12
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)


# -- small models ------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention whose q, k and attention weights are module outputs."""

    def __init__(self, dim: int, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.Identity()  # (N, heads, T, d): per-head, not a map
        self.k_norm = nn.Identity()
        self.softmax = nn.Softmax(dim=-1)  # (N, heads, T, T): attention weights
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = self.q_norm(qkv[0]), self.k_norm(qkv[1]), qkv[2]
        weights = self.softmax(q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5)
        return self.proj((weights @ v).transpose(1, 2).reshape(n, t, c))


class Block(nn.Module):
    """A pre-norm transformer block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    """Patch embedding, a class token and ``registers`` register tokens in front, 2 blocks, a
    head on the class token. ``fixed``: a learned position embedding, one input size only."""

    def __init__(
        self, registers: int = 2, patch: int = 8, dim: int = 16, fixed: bool = False
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.reg_token = nn.Parameter(torch.randn(1, registers, dim))
        cells = (SIZE // patch) ** 2
        self.pos = nn.Parameter(torch.randn(1, 1 + registers + cells, dim)) if fixed else None
        self.blocks = nn.Sequential(Block(dim), Block(dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.pos is not None and image.shape[-2:] != (SIZE, SIZE):
            raise ValueError(f"input must be {SIZE} x {SIZE}")
        x = self.patch_embed(image).flatten(2).transpose(1, 2)
        n = x.shape[0]
        x = torch.cat([self.cls_token.expand(n, -1, -1), self.reg_token.expand(n, -1, -1), x], 1)
        if self.pos is not None:
            x = x + self.pos
        return self.head(self.norm(self.blocks(x))[:, 0])


class Permute(nn.Module):
    """A layout change as a module (as torchvision's Swin and ConvNeXt have)."""

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class ChannelsLast(nn.Module):
    """A conv stem, then channels-last norm and MLP, a downsampling conv, a channels-last norm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.to_last = Permute(0, 2, 3, 1)
        self.norm = nn.LayerNorm(8)
        self.mlp = nn.Sequential(nn.Linear(8, 12), nn.GELU())
        self.down = nn.Sequential(Permute(0, 3, 1, 2), nn.Conv2d(12, 12, 2, 2), Permute(0, 2, 3, 1))
        self.final = nn.LayerNorm(12)
        self.head = nn.Linear(12, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.final(self.down(self.mlp(self.norm(self.to_last(self.stem(image))))))
        return self.head(x.mean(dim=(1, 2)))


def seeded(factory: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return factory().eval()


def batch(n: int = 2, seed: int = 7) -> torch.Tensor:
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# -- tokens ------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixed", [False, True], ids=["two-sizes", "one-size-probes"])
@pytest.mark.parametrize("registers", [0, 2])
def test_token_maps_are_exact(fixed: bool, registers: int) -> None:
    model = seeded(lambda: TinyViT(registers=registers, fixed=fixed))
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    grid = SIZE // 8
    assert engine.default_layer == "blocks.1.norm1"
    assert engine.layer_shapes["blocks.1.norm1"] == (16, grid, grid)
    assert engine.stages == ["blocks.0", "blocks.1.norm1", "blocks.1"]
    x = batch()
    rearrange = tokens_to_nchw(1 + registers, grid, grid)
    for layer in ("blocks.1.norm1", "blocks.0", "blocks.0.mlp"):
        for counterfactual in (False, True):
            res = engine.explain(x, layer=layer, target=[1, 3], counterfactual=counterfactual)
            sign = -1.0 if counterfactual else 1.0
            heat, coarse, alpha = reference_layout_gradcam(model, x, layer, [1, 3], rearrange, sign)
            assert_maps_close(res.coarse, coarse)
            assert_maps_close(res.heatmap, heat)
            assert res.weights is not None
            assert_maps_close(res.weights, alpha)
        single = engine.explain(x[1:], layer=layer, target=3)
        assert_maps_close(single.coarse, engine.explain(x, layer=layer, target=[1, 3])[1].coarse)
    assert float(engine.explain(x, target=[1, 3]).coarse.abs().max()) > 0
    assert_unchanged(model, before)


def test_no_attention_internal_is_a_layer() -> None:
    model = seeded(TinyViT)
    engine = GradCAM(model, transform=small_transform())
    for name in ("qkv", "q_norm", "k_norm", "softmax", "proj"):
        assert not [n for n in engine.layers if n.endswith(f"attn.{name}")]
        with pytest.raises(ValueError, match="inside an attention module"):
            engine.explain(batch(1), layer=f"blocks.0.attn.{name}")
    assert "blocks.0.attn" in engine.layers  # the attention's own output is a token map
    # After the last attention the patch tokens no longer reach the head (it reads the class
    # token): those maps are offered but are zero, which is why they are not the default.
    res = engine.explain(batch(1), layer="blocks.1.mlp")
    assert float(res.coarse.abs().max()) == 0.0


class Split(nn.Module):
    """(N, T, heads * d) to per-head (N, heads, T, d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, c = x.shape
        return x.reshape(n, t, 2, c // 2).transpose(1, 2)


class Merge(nn.Module):
    """(N, heads, T, d) back to (N, T, heads * d)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, heads, t, d = x.shape
        return x.transpose(1, 2).reshape(n, t, heads * d)


@pytest.mark.parametrize("fixed", [False, True], ids=["two-sizes", "one-size-probes"])
def test_per_head_tensors_are_not_maps_even_outside_attention(fixed: bool) -> None:
    model = seeded(lambda: TinyViT(fixed=fixed))
    block = model.blocks[0]
    assert isinstance(block, Block)
    block.mlp = nn.Sequential(Split(), Merge(), *block.mlp)
    engine = GradCAM(model, transform=small_transform())
    assert "blocks.0.mlp.0" not in engine.layers  # (N, heads, T, d)
    assert engine.layer_shapes["blocks.0.mlp.1"] == (16, SIZE // 8, SIZE // 8)


def test_token_grid_follows_the_input_size_of_a_dynamic_model() -> None:
    model = seeded(TinyViT)
    engine = GradCAM(model, transform=small_transform())
    x = torch.randn(1, 3, 48, 80, generator=torch.Generator().manual_seed(3))
    res = engine.explain(x, layer="blocks.1.norm1", target=2)
    _, coarse, _ = reference_layout_gradcam(
        model, x, "blocks.1.norm1", [2], tokens_to_nchw(3, 6, 10)
    )
    assert res.coarse.shape == (6, 10)
    assert_maps_close(res.coarse, coarse[0])


# -- channels last -----------------------------------------------------------------------------


def test_channels_last_maps_are_exact() -> None:
    model = seeded(ChannelsLast)
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    assert engine.default_layer == "final"
    assert engine.layer_shapes["final"] == (12, SIZE // 8, SIZE // 8)
    assert engine.layer_shapes["norm"] == (8, SIZE // 4, SIZE // 4)
    assert engine.layer_shapes["stem"] == (8, SIZE // 4, SIZE // 4)
    x = batch()
    for layer in ("final", "mlp", "norm", "down.1"):
        rearrange: Rearrange = (lambda t: t) if layer == "down.1" else nhwc_to_nchw
        res = engine.explain(x, layer=layer, target=[0, 4], counterfactual=True)
        heat, coarse, alpha = reference_layout_gradcam(model, x, layer, [0, 4], rearrange, -1.0)
        assert_maps_close(res.coarse, coarse)
        assert_maps_close(res.heatmap, heat)
        assert res.weights is not None
        assert_maps_close(res.weights, alpha)
        assert_maps_close(res.activations, engine.activations(x, layer).cpu())
    assert "final" in engine.cam_layers  # mean over the channels-last grid feeds the head
    assert_unchanged(model, before)


class Windows(nn.Module):
    """Channels-last (N, H, W, C) to windows (N, windows, tokens per window, C), as Swin and
    MaxViT partition their maps: not a grid reading of the image."""

    def __init__(self, size: int, inverse: bool = False) -> None:
        super().__init__()
        self.size, self.inverse = size, inverse

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.size
        if self.inverse:
            n, windows, _, c = x.shape
            side = int(windows**0.5)
            x = x.reshape(n, side, side, s, s, c).permute(0, 1, 3, 2, 4, 5)
            return x.reshape(n, side * s, side * s, c)
        n, h, w, c = x.shape
        x = x.reshape(n, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5)
        return x.reshape(n, (h // s) * (w // s), s * s, c)


class Windowed(nn.Module):
    """A stem, a per-token layer on window-partitioned tokens, back to the grid, a head."""

    def __init__(self, fixed: bool) -> None:
        super().__init__()
        self.fixed = fixed
        self.stem = nn.Conv2d(3, 8, 4, 4)
        self.to_last = Permute(0, 2, 3, 1)
        self.partition = Windows(4)
        self.mix = nn.Linear(8, 8)
        self.departition = Windows(4, inverse=True)
        self.head = nn.Linear(8, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.fixed and image.shape[-2:] != (SIZE, SIZE):
            raise ValueError(f"input must be {SIZE} x {SIZE}")
        x = self.departition(self.mix(self.partition(self.to_last(self.stem(image)))))
        return self.head(x.mean(dim=(1, 2)))


@pytest.mark.parametrize("fixed", [False, True], ids=["two-sizes", "one-size-probes"])
def test_window_partitions_are_not_maps(fixed: bool) -> None:
    model = seeded(lambda: Windowed(fixed))
    engine = GradCAM(model, transform=small_transform())
    # (1, 16, 16, 8) reads like a 16 x 16 channels-last grid, but its axes are (window, token)
    assert "partition" not in engine.layers and "mix" not in engine.layers
    assert engine.default_layer == "departition"
    assert engine.layer_shapes["departition"] == (8, SIZE // 4, SIZE // 4)
    x = batch()
    res = engine.explain(x, target=[1, 2])
    _, coarse, _ = reference_layout_gradcam(model, x, "departition", [1, 2], nhwc_to_nchw)
    assert_maps_close(res.coarse, coarse)


class FlatHead(nn.Module):
    """A CNN whose head flattens the map: it takes one input size only (probe path)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 16, 3, padding=1),
        )
        self.head = nn.Linear(16 * (SIZE // 4) ** 2, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image).flatten(1))


def test_one_size_cnn_keeps_every_map() -> None:
    model = seeded(FlatHead)
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform())
    assert engine.layers == [*(f"features.{i}" for i in range(7)), "features"]
    assert engine.default_layer == "features"
    x = batch()
    res = engine.explain(x, layer="features.4", target=[0, 1])
    _, coarse, _ = reference_layout_gradcam(model, x, "features.4", [0, 1], lambda t: t)
    assert_maps_close(res.coarse, coarse)
    assert_unchanged(model, before)


# -- pools, defaults, stages -------------------------------------------------------------------


def test_adaptive_pool_is_not_a_map() -> None:
    model = seeded(
        lambda: nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d((3, 3)),
            nn.Flatten(),
            nn.Linear(54, 4),
        )
    )
    engine = GradCAM(model, transform=small_transform())
    assert engine.layers == ["0", "1"] and engine.default_layer == "1"
    with pytest.raises(ValueError, match="'2' is not a spatial layer"):
        engine.explain(batch(1), layer="2")


def test_resnet_stages_and_default() -> None:
    engine = GradCAM(resnet18(), transform=small_transform())
    assert engine.stages == ["layer1", "layer2", "layer3", "layer4"]
    assert engine.default_layer == "layer4"
    assert all(name in engine.layers for name in engine.stages)


# -- explicit layouts --------------------------------------------------------------------------


class UnfoldViT(TinyViT):
    """Patches cut by ``unfold`` and a linear embedding: no map shows the grid, so the token
    layout cannot be detected and must be stated."""

    def __init__(self) -> None:
        super().__init__(registers=0)
        self.embed = nn.Linear(3 * 64, 16)
        self.calls = 0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        x = self.embed(F.unfold(image, 8, stride=8).transpose(1, 2))
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1)
        return self.head(self.norm(self.blocks(x))[:, 0])


@pytest.mark.parametrize(
    "spec",
    ["tokens", Layout("tokens", prefix=1), tokens_to_nchw(1, SIZE // 8, SIZE // 8)],
    ids=["name", "Layout", "callable"],
)
def test_explicit_layout(spec: Any) -> None:
    model = seeded(UnfoldViT)
    with pytest.raises(ValueError, match=r"the model has no spatial layer.*see layouts="):
        GradCAM(model, transform=small_transform())
    before = snapshot(model)
    engine = GradCAM(model, transform=small_transform(), layouts={"blocks.1.norm1": spec})
    assert engine.layers == ["blocks.1.norm1"] and engine.default_layer == "blocks.1.norm1"
    x = batch()
    res = engine.explain(x, target=[2, 0])
    grid = SIZE // 8
    _, coarse, _ = reference_layout_gradcam(
        model, x, "blocks.1.norm1", [2, 0], tokens_to_nchw(1, grid, grid)
    )
    assert res.coarse.shape == (2, grid, grid)
    assert_maps_close(res.coarse, coarse)
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    ("layouts", "error", "match"),
    [
        ("tokens", TypeError, "layouts must be a dict"),
        ({"blocks.1.nrm1": "tokens"}, ValueError, "did you mean 'blocks.1.norm1'"),
        ({"blocks.1.norm1": "ncwh"}, ValueError, "use one of 'nchw', 'nhwc', 'tokens'"),
        ({"blocks.1.norm1": 3}, TypeError, "must be 'nchw', 'nhwc', 'tokens', a Layout"),
    ],
)
def test_bad_layouts_fail_before_any_pass(layouts: Any, error: type[Exception], match: str) -> None:
    model = seeded(UnfoldViT)
    before = snapshot(model)
    with pytest.raises(error, match=match):
        GradCAM(model, transform=small_transform(), layouts=layouts)
    assert isinstance(model, UnfoldViT) and model.calls == 0
    assert_unchanged(model, before)


def test_layout_that_does_not_fit_the_output() -> None:
    model = seeded(UnfoldViT)
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"layouts\['blocks.1.norm1'\].*cannot be read as nhwc"):
        GradCAM(model, transform=small_transform(), layouts={"blocks.1.norm1": "nhwc"})
    with pytest.raises(ValueError, match=r"cannot be read as custom.*boom"):
        GradCAM(model, transform=small_transform(), layouts={"blocks.1.norm1": explode})
    assert_unchanged(model, before)


def explode(tensor: torch.Tensor) -> torch.Tensor:
    raise IndexError("boom")


def test_layout_to_nchw_matches_hand_written_rearrangements() -> None:
    t = torch.randn(2, 3 + 4 * 6, 5)
    got = Layout("tokens", prefix=3).to_nchw(t, size=(32, 48))
    torch.testing.assert_close(got, tokens_to_nchw(3, 4, 6)(t), rtol=0, atol=0)
    c = torch.randn(2, 4, 6, 5)
    torch.testing.assert_close(Layout("nhwc").to_nchw(c), nhwc_to_nchw(c), rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs a 3-d tensor"):
        Layout("tokens").to_nchw(c)
    with pytest.raises(ValueError, match="custom layout needs a rearrange callable"):
        Layout("custom")
    # 196 tokens: the 14 x 14 grid seen at 224 x 224, but 7 x 28 for a 112 x 448 input
    seen = Layout("tokens", prefix=1, grids=(((224, 224), (14, 14)),))
    assert seen.grid(197, (224, 224)) == (14, 14) and seen.grid(197) == (14, 14)
    assert seen.grid(197, (112, 448)) == (7, 28)
