"""The model the engine reads: proving the pooled head at construction, following later changes."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import nn

from .analytic import PooledHead, find_linear, prove
from .capture import Record
from .checks import check_scores, resolve_placement
from .layers import Discovery, ScoreFn
from .state import EngineState


class ModelFollower(EngineState):
    """Proves the pooled head and follows a model that was moved, cast or changed."""

    def _prove_head(self, records: Mapping[str, Record], scores: torch.Tensor) -> PooledHead | None:
        """Which layers feed the scores through global average pooling + the linear head only.

        ``records`` and ``scores`` are the discovery forward's (two example images, with a
        graph): ``prove`` walks that graph and checks its Jacobian against
        ``torch.autograd.grad``, so the proof costs backwards near the head and no forward.
        """
        cam = self._found.cam
        if cam is None:
            return None
        linear = find_linear(self.model, cam.weight)
        # Channels-first maps only: the proof and alpha read the grid as the last two axes.
        layers = frozenset(n for n in cam.layers if n in self._layouts)
        layers = frozenset(n for n in layers if self._layouts[n].kind == "nchw")
        if linear is None or not layers:
            return None
        with torch.inference_mode(False), torch.enable_grad():
            grids = prove(records, layers, scores, linear)
        return PooledHead(linear, grids) if grids else None

    def _follow_model(self) -> None:
        """Drop cached passes if the model's weights changed; follow a moved or cast model."""
        if self._cache.validate():
            return
        self.device, self.dtype = resolve_placement(self.model, self._device_argument)
        pooled = self._pooled
        if pooled is not None and (
            self._head is None
            or dict(self.model.named_modules()).get(self._head) is not pooled.linear
        ):
            self._pooled = None  # the head module was replaced: the proof was about the old one
        cam = self._found.cam
        if cam is not None and self._head is not None:
            linear = dict(self.model.named_modules()).get(self._head)
            if isinstance(linear, nn.Linear) and linear.weight.shape == cam.weight.shape:
                fresh = dataclasses.replace(cam, weight=linear.weight.detach())
                self._found = dataclasses.replace(self._found, cam=fresh)


def _checked(score_fn: ScoreFn | None, batch: int) -> ScoreFn:
    """The scoring step with the construction-time checks (see ``check_scores``)."""

    def score(output: object) -> torch.Tensor:
        scores = score_fn(output) if score_fn is not None else output
        return check_scores(scores, batch, score_fn)

    return score


def _head_name(model: nn.Module, found: Discovery) -> str | None:
    """The name of the linear module whose weight is the CAM head (to re-read it later)."""
    if found.cam is None:
        return None
    address = found.cam.weight.data_ptr()
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and module.weight.data_ptr() == address:
            return str(name)
    return None
