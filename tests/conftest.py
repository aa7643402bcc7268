"""Shared fixtures: small seeded models that are real torch networks, made here, offline."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision import transforms

SIZE = 64
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def small_transform() -> transforms.Compose:
    """Resize to the small models' input size and normalise with made-up statistics."""
    return transforms.Compose(
        [
            transforms.Resize(SIZE),
            transforms.CenterCrop(SIZE),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )


def resnet18(num_classes: int = 10, seed: int = 0) -> nn.Module:
    """torchvision's ResNet-18 with seeded random weights and BN statistics that are not trivial."""
    torch.manual_seed(seed)
    return with_random_batchnorm(torchvision.models.resnet18(weights=None, num_classes=num_classes))


def with_random_batchnorm(model: nn.Module) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine terms; return it in eval mode."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return model.eval()


class TinyNet(nn.Module):
    """A small residual CNN with in-place ReLUs and a BatchNorm overwritten by ``+=``."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        identity = out
        out = self.bn2(self.conv2(out))
        out += identity
        out = self.relu(out)
        return self.fc(torch.flatten(self.pool(out), 1))


def tiny_net(seed: int = 0) -> TinyNet:
    """A seeded TinyNet with non-trivial BN statistics, in eval mode."""
    torch.manual_seed(seed)
    model = TinyNet()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.3, 0.3)
            bn.running_var.uniform_(0.5, 1.5)
    return model.eval()


def hook_state(model: nn.Module) -> list[tuple[str, int, int, int, int, int, int]]:
    """How many hooks of each kind every module holds."""
    return [
        (
            name,
            len(m._forward_hooks),
            len(m._forward_pre_hooks),
            len(m._backward_hooks),
            len(m._backward_pre_hooks),
            len(m._forward_hooks_with_kwargs),
            len(m._state_dict_hooks),
        )
        for name, m in model.named_modules()
    ]


def snapshot(model: nn.Module) -> dict[str, object]:
    """Everything the engine must leave untouched: flags, tensors, grads, hooks."""
    return {
        "training": [(n, m.training) for n, m in model.named_modules()],
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "grads": {
            n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()
        },
        "buffers": {n: b.detach().clone() for n, b in model.named_buffers()},
        "hooks": hook_state(model),
    }


def assert_unchanged(model: nn.Module, before: dict[str, object]) -> None:
    """Fail if any flag, parameter, gradient, buffer or hook differs from ``before``."""
    after = snapshot(model)
    assert after["training"] == before["training"]
    assert after["hooks"] == before["hooks"]
    assert after["requires_grad"] == before["requires_grad"]
    for key in ("params", "buffers"):
        a, b = after[key], before[key]
        assert isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys()
        for name in a:
            assert torch.equal(a[name], b[name]), f"{key} {name} changed"
    assert {n: g is None for n, g in after["grads"].items()} == {  # type: ignore[union-attr]
        n: g is None
        for n, g in before["grads"].items()  # type: ignore[union-attr]
    }


class Block(nn.Module):
    """conv-bn-relu-conv-bn plus a (projected) shortcut, as in a ResNet basic block."""

    def __init__(self, inp: int, out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.down = nn.Conv2d(inp, out, 1, stride, bias=False) if stride > 1 or inp != out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    """A ResNet-shaped CNN: stem, layer1..layer4 (4 px maps at 64x64 input), avgpool, fc."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.layer3 = Block(16, 24, 2)
        self.layer4 = Block(24, 32, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def tiny_resnet(seed: int = 0) -> TinyResNet:
    """A seeded TinyResNet in eval mode with BN statistics that are not trivial."""
    torch.manual_seed(seed)
    model = TinyResNet()
    with_random_batchnorm(model)
    return model
