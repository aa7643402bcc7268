"""The backward and its gradient cache: alpha for every recorded layer per class set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd.graph import GradientEdge

from .entry import ClassGradients, ImageEntry
from .forward import ForwardRecorder
from .guided import guided_gradients
from .inputs import Prepared
from .layers import scores_of
from .methods import ClassScore


class BackwardCache(ForwardRecorder):
    """Backwards per (image, class set), cached with the image's forward."""

    def _guided(
        self, entry: ImageEntry, prepared: Prepared, classes: tuple[int, ...], sign: float
    ) -> torch.Tensor:
        """Guided-backprop input gradient of ``sign * Y_c``: cached, or a forward + backward."""
        key = (classes, sign)
        known = entry.guided.get(key)
        if known is None:

            def objective(output: Any) -> torch.Tensor:
                return ClassScore(classes, sign)(scores_of(output, self.score_fn))

            known = guided_gradients(self.model, prepared.tensor, objective)
            self._forwards += 1
            self._backwards += 1
            entry.guided[key] = known
            self._cache.shrink()
        return known

    def _gradients(
        self, entry: ImageEntry, classes: tuple[int, ...], name: str, full: bool, cache: bool
    ) -> ClassGradients:
        """Alpha (and, if ``full``, the gradient) at ``name`` for these classes: cached, or one
        backward that serves every recorded layer from the deepest asked for so far onward."""
        known = entry.gradients.get(classes)
        if known is not None and known.has(name, full):
            return known
        return self._backward(entry, [classes], name, full, cache)[0]

    def _backward(
        self,
        entry: ImageEntry,
        class_sets: Sequence[tuple[int, ...]],
        name: str,
        full: bool,
        cache: bool,
    ) -> list[ClassGradients]:
        """The gradients of several class sets: one vectorised backward where that is faster
        (``_batched_backward``), else one per class set. Without the cache, ``name`` only."""
        index = self.layers.index(name)
        if cache:
            # Go as deep as any layer asked for before, so one backward per class serves them all;
            # layers with a proven analytic alpha need no gradient.
            depth = min(index, self._depth)
            if len(self._asked) > 1 and self.stages:
                # A second layer was asked: the user explores layers. Each class's backward
                # then reaches the first stage, so every later stage switch is free (as if the
                # stages were watched) instead of one more backward per class per layer.
                depth = min(depth, self.layers.index(self.stages[0]))
            self._depth = depth
            names = [
                n for n in self.layers[depth:] if n in entry.records and not self._exact(n, entry)
            ]
            keep = {n for n in names if n in self._full_layers}
        else:
            names, keep = [name], {name} if full else set()
        edges: dict[tuple[int, int], GradientEdge] = {}
        for layer in names:
            edge = entry.records[layer].edge
            if edge is not None:
                edges.setdefault((id(edge.node), edge.output_nr), edge)
        if not edges:  # every recorded layer is analytic or ungraphed: nothing to differentiate
            per_set: list[tuple[torch.Tensor | None, ...]] = [() for _ in class_sets]
        else:
            with torch.inference_mode(False), torch.enable_grad():
                per_set = self._autograd(entry.scores, class_sets, list(edges.values()), cache)
        results = []
        for classes, grads in zip(class_sets, per_set, strict=True):
            by_edge = dict(zip(edges, grads, strict=True))
            known = entry.gradients.get(classes) if cache else None
            result = known if known is not None else ClassGradients()
            for layer in names:
                edge = entry.records[layer].edge
                grad = by_edge.get((id(edge.node), edge.output_nr)) if edge is not None else None
                if grad is None:  # the score does not depend on this layer
                    shape = (
                        self._layouts[layer].to_nchw(entry.records[layer].output, entry.size).shape
                    )
                    grad_nchw = torch.zeros(shape, device=self.device)
                else:
                    grad_nchw = self._layouts[layer].to_nchw(grad, entry.size).float()
                result.alphas[layer] = grad_nchw.mean(dim=(-2, -1))
                if layer in keep:
                    result.full[layer] = grad_nchw
            if cache:
                entry.gradients[classes] = result
            results.append(result)
        if cache:
            self._cache.shrink()
        return results

    def _exact(self, layer: str, entry: ImageEntry) -> bool:
        """Whether alpha at ``layer`` of this entry is analytic (so no gradient is asked)."""
        if self._pooled is None:
            return False
        output = entry.records[layer].output
        return output.dim() == 4 and self._pooled.covers(
            layer, (int(output.shape[-2]), int(output.shape[-1]))
        )

    def _autograd(
        self,
        scores: torch.Tensor,
        class_sets: Sequence[tuple[int, ...]],
        edges: list[GradientEdge],
        retain: bool,
    ) -> list[tuple[torch.Tensor | None, ...]]:
        """d(sum_i Y[i, c_i]) / d(edges) for each class set c; counts the backwards run."""
        if len(class_sets) > 1 and self._batched_backward:
            # One-hot rows of dY: the vectorised backward computes the same products as the
            # per-class loop, all at once.
            grad_outputs = torch.zeros(
                (len(class_sets), *scores.shape), dtype=scores.dtype, device=scores.device
            )
            rows = torch.arange(scores.shape[0], device=scores.device)
            for b, classes in enumerate(class_sets):
                grad_outputs[b, rows, torch.tensor(classes, device=scores.device)] = 1
            try:
                stacked = torch.autograd.grad(
                    scores,
                    edges,
                    grad_outputs=grad_outputs,
                    retain_graph=True,
                    allow_unused=True,
                    is_grads_batched=True,
                )
            except RuntimeError:
                # An op without a batching rule and no fallback: loop, and stop trying.
                self._batched_backward = False
            else:
                self._backwards += 1
                return [
                    tuple(None if g is None else g[b] for g in stacked)
                    for b in range(len(class_sets))
                ]
        out: list[tuple[torch.Tensor | None, ...]] = []
        for i, classes in enumerate(class_sets):
            grads = torch.autograd.grad(
                ClassScore(classes)(scores),
                edges,
                retain_graph=retain or i < len(class_sets) - 1,
                allow_unused=True,
            )
            self._backwards += 1
            out.append(tuple(grads))
        return out
