"""Gradients through dynamically quantised Linear layers (``torch.ao`` ``quantize_dynamic``).

``quantized::linear_dynamic`` has no autograd kernel: backpropagating through it gives zero
gradients with only a warning, so a quantised model's Grad-CAM would silently come back empty.
For the duration of one forward, a hook gives each such layer's output the gradient of
``x @ W^T`` with the dequantised weight, the derivative of the layer with its activation
rounding passed straight through, while keeping the output's value exactly:
``out + (x @ W^T - (x @ W^T).detach())`` adds an exact zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def _dynamic_linear() -> type[nn.Module] | None:
    """The class of dynamically quantised Linear layers (None where torch lacks it)."""
    try:
        from torch.ao.nn.quantized.dynamic import Linear
    except ImportError:  # pragma: no cover - every supported torch has it
        return None
    return Linear


def _hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
    x = args[0] if args else None
    if not (
        isinstance(output, torch.Tensor)
        and isinstance(x, torch.Tensor)
        and x.requires_grad
        and torch.is_grad_enabled()
    ):
        return None
    weight, _ = module._weight_bias()  # type: ignore[operator]
    linear = F.linear(x, weight.dequantize().to(x.dtype))
    return output.detach() + (linear - linear.detach())


@contextmanager
def quantized_gradients(model: nn.Module) -> Iterator[None]:
    """Make dynamically quantised Linear layers differentiable for the block (hooks removed
    after, whatever happens)."""
    kind = _dynamic_linear()
    handles = []
    try:
        if kind is not None:
            for module in model.modules():
                if isinstance(module, kind):
                    handles.append(module.register_forward_hook(_hook))
        yield
    finally:
        for handle in handles:
            handle.remove()
