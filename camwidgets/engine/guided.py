"""Guided backpropagation (Springenberg et al. 2015), the pixel half of Guided Grad-CAM.

Guided backpropagation is the gradient of a score with respect to the input, except that every
ReLU passes backward only positive gradients, and only where its input was positive:

    R_in = 1[x > 0] * ReLU(R_out)        (plain backprop: R_in = 1[x > 0] * R_out)

Guided Grad-CAM (Selvaraju et al. 2017) multiplies it, channel by channel, with the Grad-CAM
heatmap resized to the input: ``guided_backprop(x) * heatmap``.

How the ReLUs are guided, and what is not:

* Every module that is an instance of ``torch.nn.ReLU`` (in place or not) is guided, each time
  it is called. For the duration of one call a forward hook on each such module registers a hook
  on the autograd node its output came from (``ReluBackward0``); that node hook clamps the
  gradient the node hands to its input at zero. No module is replaced, no tensor value changes,
  the hooks on the modules are removed in ``finally`` and the node hooks die with the graph,
  which exists only inside the call. Parameters' ``.grad`` is never written (the gradient is
  taken with ``torch.autograd.grad`` with respect to the input only) and every module's
  train/eval flag is restored.
* ``F.relu`` / ``torch.relu`` called inside a ``forward`` (not through a ``nn.ReLU`` module) is
  NOT guided: gradients flow through it as in plain backpropagation (negative gradients pass
  where its input was positive). This is also what captum's ``GuidedBackprop`` does. When the
  graph holds such unguided ReLU ops, :class:`UnguidedReLUWarning` says how many, so a model
  built on ``F.relu`` does not silently get a plain gradient under the guided name.
* Other activations (``ReLU6``, ``LeakyReLU``, ``GELU``, ...) are differentiated normally.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .capture import evaluating
from .quantized import quantized_gradients

__all__ = ["UnguidedReLUWarning", "guided_gradients"]

_RELU_NODES = frozenset({"ReluBackward0", "ReluBackward1", "ThresholdBackward0"})


class UnguidedReLUWarning(UserWarning):
    """ReLU operations that are not ``nn.ReLU`` modules were differentiated without guidance."""


def _clamp_grad_inputs(
    grad_inputs: tuple[torch.Tensor | None, ...], _grad_outputs: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor | None, ...]:
    """Node hook: a ReLU's gradient to its input, with the negative part set to zero."""
    return tuple(None if g is None else g.clamp_min(0) for g in grad_inputs)


def _unguided_relu_nodes(root: Any, guided: set[int]) -> int:
    """How many ReLU nodes reachable from ``root`` in the autograd graph are not guided."""
    seen: set[int] = set()
    stack = [root]
    count = 0
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name() in _RELU_NODES and id(node) not in guided:
            count += 1
        stack.extend(next_node for next_node, _ in node.next_functions)
    return count


def _outside_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside camwidgets."""
    frame = sys._getframe(1)  # the function that will call warnings.warn
    level = 1
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
        "camwidgets."
    ):
        frame = frame.f_back
        level += 1
    return level


def guided_gradients(
    model: nn.Module,
    batch: torch.Tensor,
    objective: Callable[[Any], torch.Tensor],
    *,
    warn: bool = True,
) -> torch.Tensor:
    """Guided-backpropagation gradient of ``objective(model(batch))`` with respect to ``batch``.

    Runs one forward (model in eval mode for the call) and one ``torch.autograd.grad``; works
    under an outer ``torch.no_grad()`` or ``torch.inference_mode()`` and with frozen parameters.

    Args:
        model: the network; its ``nn.ReLU`` modules are guided for this call only.
        batch: model input (N, C, H, W), already preprocessed and on the model's device.
        objective: model output -> scalar to differentiate, e.g. ``lambda y: y[:, 3].sum()``
            (images of a batch are independent in eval mode, so a sum gives each image its own
            gradient).
        warn: emit :class:`UnguidedReLUWarning` when ReLU ops outside ``nn.ReLU`` modules
            (``F.relu`` in a ``forward``) were differentiated without guidance.

    Returns:
        The guided gradient, float32, same shape and device as ``batch``, detached.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
        >>> x = torch.randn(1, 3, 8, 8)
        >>> _ = net(x)  # materialise the lazy layer
        >>> guided_gradients(net, x, lambda y: y[:, 1].sum()).shape
        torch.Size([1, 3, 8, 8])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(batch, torch.Tensor) or batch.dim() < 2:
        raise TypeError("batch must be a batched input tensor (N, ...)")
    guided: set[int] = set()
    nodes: list[Any] = []  # keeps the node wrappers alive, so their ids stay theirs

    def hook(_module: nn.Module, _args: Any, output: Any) -> None:
        node = getattr(output, "grad_fn", None)
        if node is not None and node.name() in _RELU_NODES and id(node) not in guided:
            guided.add(id(node))
            nodes.append(node)
            node.register_hook(_clamp_grad_inputs)

    handles = []
    try:
        for module in model.modules():
            if isinstance(module, nn.ReLU):
                handles.append(module.register_forward_hook(hook))
        with (
            evaluating(model),
            torch.inference_mode(False),
            torch.enable_grad(),
            quantized_gradients(model),
        ):
            x = batch.detach().clone().requires_grad_(True)
            value = objective(model(x))
            if not isinstance(value, torch.Tensor) or value.numel() != 1:
                raise ValueError("objective must return a single-element tensor (a scalar score)")
            if warn:
                unguided = _unguided_relu_nodes(value.grad_fn, guided)
                if unguided:
                    warnings.warn(
                        f"{unguided} ReLU op(s) in the graph are not nn.ReLU modules (F.relu or "
                        "torch.relu in a forward) and were differentiated without guidance; "
                        "only nn.ReLU modules are guided",
                        UnguidedReLUWarning,
                        stacklevel=_outside_stacklevel(),
                    )
            (grad,) = torch.autograd.grad(value.reshape(()), x)
    finally:
        for handle in handles:
            handle.remove()
    return grad.detach().float()
