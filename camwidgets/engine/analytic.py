"""Prove, per layer, that the scores are a global average pool + linear head of its output.

Where they are, ``Y = W mean_ij(A) + b`` exactly, so ``dY_c / dA^k_ij = W_ck / (h w)`` for every
image and every pixel: Grad-CAM's alpha and the full gradient need no backward, and the forward
needs no graph. This is never assumed from the module names. A layer qualifies only when both
hold:

1. **Structure**: walking the autograd graph from the scores back to the layer's recorded
   gradient edge meets only operations that are linear in the one input that leads to the layer
   (views, transposes, means, sums, average pools, additions, ``addmm``/``mm`` with a weight that
   does not depend on the input, products with parameters), and every other input is a constant
   (a parameter or a tensor outside the graph). An in-place op on the layer's output after the
   layer (a ReLU, ``+=``) appears as its own graph node and breaks the proof, as it must: the map
   is no longer linear in what the layer produced. So the path is affine in A and its Jacobian is
   the same at every input.
2. **Value**: that constant Jacobian, measured with ``torch.autograd.grad`` on a batch of two
   random images for a random combination of all classes, equals ``W / (h w)`` broadcast over
   the grid, image by image (so nothing mixes images of a batch).

The check runs once, when the engine is built; the live weight of the head is read at each use,
so in-place weight edits and ``load_state_dict`` are followed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .capture import Record

# Autograd nodes that are linear in each input that is not a constant.
_SHAPE = frozenset(
    {
        "ViewBackward0",
        "UnsafeViewBackward0",
        "ReshapeAliasBackward0",
        "TBackward0",
        "PermuteBackward0",
        "TransposeBackward0",
        "TransposeBackward1",
        "SqueezeBackward0",
        "SqueezeBackward1",
        "SqueezeBackward2",
        "SqueezeBackward3",
        "SqueezeBackward4",
        "UnsqueezeBackward0",
        "ExpandBackward0",
        "CloneBackward0",
        "AliasBackward0",
        "ToCopyBackward0",
        "SelectBackward0",
        "SliceBackward0",
    }
)
_LINEAR = _SHAPE | frozenset(
    {
        "MeanBackward0",
        "MeanBackward1",
        "SumBackward0",
        "SumBackward1",
        "AdaptiveAvgPool2DBackward0",
        "AvgPool2DBackward0",
        "AddBackward0",
        "AddBackward1",
        "SubBackward0",
        "SubBackward1",
        "NegBackward0",
        "AddmmBackward0",
        "MmBackward0",
        "MvBackward0",
        "BmmBackward0",
        "MulBackward0",
        "MulBackward1",
        "DivBackward0",
        "DivBackward1",
    }
)
# Elementwise products are linear in one factor only when the other is a parameter (a graph
# leaf), never some detached tensor that might depend on the image. (A matmul's weight shows as
# None when parameters are frozen; the value check in ``prove`` pins that weight down.)
_SCALED = frozenset({"MulBackward0", "DivBackward0"})
# Nodes whose effect depends on the grid size: a path with any of them is trusted only at the
# grid it was proven at. A path that pools with means alone is global at every grid.
_GRID_PINNED = frozenset(
    {
        "AdaptiveAvgPool2DBackward0",
        "AvgPool2DBackward0",
        "SumBackward0",
        "SumBackward1",
        "MulBackward0",
        "MulBackward1",
        "DivBackward0",
        "DivBackward1",
        "SelectBackward0",
        "SliceBackward0",
        "ExpandBackward0",
    }
)
_MEANS = frozenset({"MeanBackward0", "MeanBackward1"})


@dataclass(frozen=True)
class PooledHead:
    """The proven head: its linear module and, per proven layer, the grid (h, w) the proof is
    pinned to, or None where the path pools with means alone and so holds at any grid."""

    linear: nn.Linear
    grids: Mapping[str, tuple[int, int] | None]

    def covers(self, layer: str, grid: tuple[int, int]) -> bool:
        """Whether alpha at ``layer`` on a ``grid``-sized output is proven analytic.

        An input of another size gives another grid, where a fixed-size pool (``AvgPool2d(7)``)
        would no longer be global: a pinned proof holds at its own grid only.
        """
        if layer not in self.grids:
            return False
        pinned = self.grids[layer]
        return pinned is None or pinned == grid

    def alpha(
        self, layer: str, classes: tuple[int, ...], grid: tuple[int, int]
    ) -> torch.Tensor | None:
        """alpha = W[c] / (h w) for each image's class, (N, K) float32; None if not covered."""
        if not self.covers(layer, grid):
            return None
        weight = self.linear.weight.detach()
        rows = torch.tensor(classes, device=weight.device)
        return weight.index_select(0, rows).float() / float(grid[0] * grid[1])


def _name(node: object) -> str:
    return type(node).__name__


def _is_leaf(node: object) -> bool:
    return node is None or _name(node) == "AccumulateGrad"


class _Walk:
    """Reachability of one target node from the score graph, memoised per node."""

    def __init__(self, target: object) -> None:
        self.target = target
        self.memo: dict[int, bool] = {}
        self.alive: list[object] = []  # keep walked nodes alive so their ids stay unique
        self.path: list[str] = []  # the node names on the proven path, scores first

    def reaches(self, node: object) -> bool:
        """Whether the target is ``node`` or lies below it (iterative: graphs can be deep)."""
        if node is None:
            return False
        stack: list[tuple[object, bool]] = [(node, False)]
        while stack:
            current, expanded = stack.pop()
            key = id(current)
            if current is self.target:
                self.memo[key] = True
                continue
            if key in self.memo and not expanded:
                continue
            children = [n for n, _ in getattr(current, "next_functions", ()) if n is not None]
            if expanded:
                self.memo[key] = any(self.memo.get(id(n), False) for n in children)
                continue
            self.alive.append(current)
            self.memo[key] = False  # provisional; acyclic graphs never read it before the end
            stack.append((current, True))
            stack.extend((n, False) for n in children if id(n) not in self.memo)
        return self.memo.get(id(node), node is self.target)

    def constant(self, node: object) -> bool:
        """No input dependence: a leaf, or shape ops down to leaves only."""
        if _is_leaf(node):
            return True
        if _name(node) not in _SHAPE:
            return False
        return all(self.constant(n) for n, _ in getattr(node, "next_functions", ()))

    def linear(self, node: object) -> bool:
        """Every path from ``node`` to the target runs through linear operations only."""
        if node is self.target:
            return True
        name = _name(node)
        self.path.append(name)
        if name not in _LINEAR:
            return False
        branches = [n for n, _ in getattr(node, "next_functions", ())]
        leading = [i for i, n in enumerate(branches) if self.reaches(n)]
        if len(leading) != 1:
            return False  # products of two input-dependent factors, or no path at all
        others = [n for i, n in enumerate(branches) if i != leading[0]]
        if not all(self.constant(n) for n in others):
            return False
        if name in _SCALED and not all(n is not None and _is_leaf(n) for n in others):
            # x * t or x / t with a tensor t: linear only if t is a parameter, not some
            # detached tensor that may depend on the image.
            return False
        if name == "DivBackward0" and leading[0] != 0:
            return False  # t / x is not linear in x
        return self.linear(branches[leading[0]])


def prove(
    records: Mapping[str, Record],
    layers: frozenset[str],
    scores: torch.Tensor,
    linear: nn.Linear,
    seed: int = 0,
) -> dict[str, tuple[int, int] | None]:
    """The layers of ``layers`` whose path to ``scores`` is proven to be GAP + ``linear``.

    ``records`` and ``scores`` come from one forward with gradients on a batch of at least two
    images. Returns layer -> the (h, w) grid the proof is pinned to, or None for any grid.
    """
    proven: dict[str, tuple[int, int] | None] = {}
    weight = linear.weight.detach()
    if scores.grad_fn is None or scores.dim() != 2 or scores.shape[0] < 2:
        return proven
    if weight.shape[0] != scores.shape[1]:
        return proven
    generator = torch.Generator().manual_seed(seed)
    count, classes = int(scores.shape[0]), int(scores.shape[1])
    # Two directions: a random mix of every class (pins the whole linear map), and one class per
    # image, a different one each (exact in any precision: nothing is summed; and it shows
    # whether one image's score reaches another image's gradient).
    mix = torch.randn((count, classes), generator=generator, dtype=torch.float64)
    picks = torch.randperm(classes, generator=generator)[:count] if classes >= count else None
    one_hot = torch.zeros((count, classes), dtype=torch.float64)
    if picks is not None:
        one_hot[torch.arange(count), picks] = 1.0
    else:
        one_hot[:, 0] = 1.0
    eps_out = torch.finfo(scores.dtype).eps
    # Half-precision matmuls accumulate in float32 on CPUs and GPUs.
    eps_sum = torch.finfo(torch.float32).eps if eps_out > 1e-6 else eps_out
    for name in sorted(layers):
        record = records.get(name)
        if record is None or record.edge is None or record.output.dim() != 4:
            continue
        walk = _Walk(record.edge.node)
        if not walk.linear(scores.grad_fn):
            continue
        if weight.shape[1] != record.output.shape[1]:
            continue
        h, w = int(record.output.shape[-2]), int(record.output.shape[-1])
        ok = True
        for direction, summed in ((mix, True), (one_hot, False)):
            given = direction.to(scores.dtype).to(scores.device)
            # d(sum(scores * given)) is ``given`` exactly (1 * given): the same backward as
            # grad_outputs=given, without torch importing sympy to check a grad_outputs shape
            # (seconds at the first engine built, on a small machine).
            (grad,) = torch.autograd.grad(
                (scores * given).sum(),
                [record.edge],
                retain_graph=True,
                allow_unused=True,
            )
            if grad is None or grad.shape != record.output.shape:
                ok = False
                break
            exact = given.double().cpu()
            full = weight.double().cpu()
            expected = (exact @ full)[:, :, None, None] / (h * w)
            bound = (exact.abs() @ full.abs())[:, :, None, None] / (h * w)
            tolerance = 2 * eps_out * expected.abs() + 1e-30
            if summed:
                tolerance = tolerance + 4 * eps_sum * classes**0.5 * bound
            if not bool(((grad.detach().double().cpu() - expected).abs() <= tolerance).all()):
                ok = False
                break
        if ok:
            free = any(n in _MEANS for n in walk.path) and not any(
                n in _GRID_PINNED for n in walk.path
            )
            proven[name] = None if free else (h, w)
    return proven


def find_linear(model: nn.Module, weight: torch.Tensor) -> nn.Linear | None:
    """The model's Linear module whose weight shares storage with ``weight``."""
    for module in model.modules():
        if isinstance(module, nn.Linear) and module.weight.data_ptr() == weight.data_ptr():
            return module
    return None
