"""A small ResNet with torchvision's module names, sized for 96x96 teaching scenes.

The names (``conv1``, ``bn1``, ``relu``, ``layer1``..``layer4``, ``avgpool``, ``fc``) and the
block's in-place residual add match ``torchvision.models.resnet``, so whatever works on the zoo
model (layer names, the in-place pitfalls of capturing a ``bn2`` output) carries over to
ImageNet ResNets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["BasicBlock", "SmallResNet"]


class BasicBlock(nn.Module):
    """conv-bn-relu-conv-bn, plus the identity (projected when the shape changes), then relu."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        # In place, exactly as torchvision does: it overwrites bn2's output, which is what a
        # Grad-CAM engine must not be fooled by.
        out += identity
        result: torch.Tensor = self.relu(out)
        return result


class SmallResNet(nn.Module):
    """ResNet for small inputs: a stride-2 3x3 stem, four stages, global average pool, linear.

    With the default strides a 96x96 input gives 48x48 after the stem and a 12x12 map at
    ``layer4`` (one output cell per 8x8 input pixels), fine enough to point at a shape.

    Args:
        num_classes: number of output logits.
        widths: channels of ``layer1``..``layer4``.
        blocks: BasicBlocks per stage.
        strides: stride of the first block of each stage.
    """

    def __init__(
        self,
        num_classes: int = 6,
        widths: Sequence[int] = (16, 32, 64, 128),
        blocks: Sequence[int] = (1, 1, 1, 1),
        strides: Sequence[int] = (1, 2, 2, 1),
    ) -> None:
        super().__init__()
        if not len(widths) == len(blocks) == len(strides) == 4:
            raise ValueError("widths, blocks and strides need four entries each")
        self.conv1 = nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes = widths[0]
        stages: list[nn.Sequential] = []
        for planes, count, stride in zip(widths, blocks, strides, strict=True):
            layers: list[nn.Module] = [BasicBlock(inplanes, planes, stride)]
            layers += [BasicBlock(planes, planes) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            inplanes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(inplanes, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        logits: torch.Tensor = self.fc(x)
        return logits
