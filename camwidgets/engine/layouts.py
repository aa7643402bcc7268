"""How a layer's output is laid out over the image grid, and how to bring it to (N, C, h, w)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layout:
    """The layout of a layer output; ``to_nchw`` maps it (and its gradient) to (N, C, h, w).

    Only channels-first maps exist so far: ``kind="nchw"``, where the conversion is the identity.
    """

    kind: str = "nchw"

    def to_nchw(self, tensor: torch.Tensor) -> torch.Tensor:
        """The tensor as (N, C, h, w)."""
        return tensor


NCHW = Layout()
