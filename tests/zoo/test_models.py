"""The small ResNet: torchvision's names, map sizes, in-place residual add."""

from __future__ import annotations

import torch
from torch import nn

from camwidgets.zoo.models import BasicBlock, SmallResNet


def test_torchvision_names_and_shapes() -> None:
    model = SmallResNet().eval()
    names = [n for n, _ in model.named_children()]
    assert names == [
        "conv1",
        "bn1",
        "relu",
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "avgpool",
        "fc",
    ]
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    block = model.layer4[0]
    assert isinstance(block, BasicBlock)
    assert [n for n, _ in block.named_children()] == [
        "conv1", "bn1", "relu", "conv2", "bn2", "downsample"
    ]  # fmt: skip
    assert block.relu.inplace
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        getattr(model, n).register_forward_hook(
            lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape))
        )
        for n in ("layer1", "layer2", "layer3", "layer4")
    ]
    with torch.no_grad():
        logits = model(torch.zeros(2, 3, 96, 96))
    for h in hooks:
        h.remove()
    assert logits.shape == (2, 6)
    assert shapes == {
        "layer1": (2, 16, 48, 48),
        "layer2": (2, 32, 24, 24),
        "layer3": (2, 64, 12, 12),
        "layer4": (2, 128, 12, 12),
    }


def test_residual_add_is_in_place() -> None:
    """bn2's output is overwritten by ``out += identity``, as in torchvision (engines beware)."""
    block = BasicBlock(4, 4).eval()
    seen: list[torch.Tensor] = []
    block.bn2.register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        x = torch.randn(1, 4, 8, 8)
        out = block(x)
    assert seen[0] is not None
    assert torch.equal(seen[0], out)  # the captured tensor now holds the block's output
