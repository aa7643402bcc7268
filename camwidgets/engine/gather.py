"""Method inputs and result assembly: what a method reads, and the CamResult it gives."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .backward import BackwardCache
from .checks import check_map
from .entry import ImageEntry
from .inputs import Prepared
from .methods import Method, MethodInputs, MethodOutput
from .result import CamResult, assemble_result


class MethodGatherer(BackwardCache):
    """Gathers a method's inputs from the cache (or one backward) and assembles results."""

    def _method_inputs(
        self,
        method: Method,
        entry: ImageEntry,
        prepared: Prepared,
        classes: tuple[int, ...],
        name: str,
        sign: float,
        cache: bool,
    ) -> MethodInputs:
        """Gather what ``method`` needs at ``name``, from the cache or one backward."""
        layout = self._layouts[name]
        activations = layout.to_nchw(entry.records[name].value(self.model), entry.size).float()
        alpha = gradients = head = None
        if method.needs_gradients or method.needs_alpha:
            grid = (int(activations.shape[-2]), int(activations.shape[-1]))
            pooled = self._pooled
            exact = pooled.alpha(name, classes, grid) if pooled is not None else None
            if exact is not None:
                # dY_c/dA^k_ij = W_ck / (h w) at every pixel: proven, so no backward.
                alpha = sign * exact.to(self.device)
                if method.needs_gradients:
                    gradients = alpha[:, :, None, None].expand(-1, -1, *grid).contiguous()
                if cache and self._watched and entry.graph and classes not in entry.gradients:
                    # Watched layers promise free switches: pay this class's one backward for
                    # them now, as for any other first map of a class (no-op if all are exact).
                    self._backward(entry, [classes], name, False, cache)
            else:
                if method.needs_gradients:
                    self._full_layers.add(name)
                if not entry.graph:
                    # Only if the model's grid differs from the one the head was proven at.
                    entry = (
                        self._entry(prepared, name, graph=True)
                        if cache
                        else self._forward(prepared.tensor, [name])
                    )
                grads = self._gradients(entry, classes, name, method.needs_gradients, cache)
                alpha = sign * grads.alphas[name].to(self.device, torch.float32)
                if method.needs_gradients:
                    gradients = sign * grads.full[name].to(self.device, torch.float32)
        if method.needs_head:
            assert self._found.cam is not None
            head = sign * self._found.cam.weight[list(classes)].to(self.device, torch.float32)
        guided = self._guided(entry, prepared, classes, sign) if method.needs_guided else None
        return MethodInputs(
            activations=activations,
            classes=classes,
            sign=sign,
            layer=name,
            image=prepared.tensor,
            gradients=gradients,
            alpha=alpha,
            head_weight=head,
            scores=self.scores,
            guided=guided,
        )

    def _result(
        self,
        output: MethodOutput,
        inputs: MethodInputs,
        prepared: Prepared,
        entry: ImageEntry,
        method: str,
        counterfactual: bool,
        cached: bool,
    ) -> CamResult:
        """Check a method's map, resize it to the input and assemble the CamResult."""
        name, classes = inputs.layer, inputs.classes
        coarse = output.coarse.float()
        heatmap = F.interpolate(
            coarse.clamp_min(0).unsqueeze(1),
            size=prepared.size,
            mode="bilinear",
            align_corners=False,
        ).squeeze(1)
        pixels = output.pixels
        return assemble_result(
            self.classes,
            prepared.batched,
            entry.scores.detach().float(),
            classes,
            (heatmap, coarse, output.weights, inputs.activations),
            layer=name,
            counterfactual=counterfactual,
            method=method,
            cached=cached,
            guided=None if pixels is None else pixels.float() * heatmap.unsqueeze(1),
            # Raises with the cause when the map is not finite (checked in the result's sync).
            check=lambda: check_map(coarse, output.weights, inputs.activations, name, method),
        )
