"""Recording the forward: one pass per distinct input, recording the layers that can be asked."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .capture import evaluating, recording, unrecoverable
from .checks import check_scores_finite
from .entry import ImageEntry
from .follow import ModelFollower
from .inputs import Prepared
from .layers import scores_of
from .locks import serialized


class ForwardRecorder(ModelFollower):
    """Runs and caches the forwards; each records the layers a later question may read."""

    def _recorded(self, layer: str | None) -> list[str]:
        """The layers a cached forward records: the readable stages (so a first switch between
        them costs no forward), the watched ones, those explained so far, and ``layer``.

        Recording is a hook that keeps a reference and a gradient edge: no copy, and with the
        graph kept the stage outputs are mostly held by autograd already (the next stage's
        convolution saves its input).
        """
        wanted = {*self.stages, *self._watched, *self._asked, layer or self.default_layer}
        return [n for n in self.layers if n in wanted]

    def _entry(
        self, prepared: Prepared, layer: str | None = None, graph: bool = False
    ) -> ImageEntry:
        """The cached forward of this batch's content; run again if new, if it did not record
        ``layer``, or if it kept no graph and ``graph`` is needed."""
        entry = self._cache.get(prepared.fingerprint)
        if (
            entry is not None
            and (layer is None or layer in entry.records)
            and (entry.graph or not graph)
        ):
            return entry
        wanted = set(self._recorded(layer))
        if entry is not None:
            wanted |= set(entry.records)
        names = [n for n in self.layers if n in wanted]
        # Keep a graph when any recorded layer may need a backward later.
        graph = graph or any(not self._analytic(n, prepared.size) for n in names)
        fresh = self._forward(prepared.tensor, names, gradients=graph)
        if entry is not None:  # same image, same model: what it computed is still exact
            fresh.gradients, fresh.guided, fresh.outputs = (
                entry.gradients,
                entry.guided,
                entry.outputs,
            )
        self._cache.put(prepared.fingerprint, fresh)
        return fresh

    def _forward(
        self, batch: torch.Tensor, layers: Sequence[str] | None = None, gradients: bool = True
    ) -> ImageEntry:
        """One forward that records the output and gradient edge of ``layers`` (default all)."""
        modules = dict(self.model.named_modules())
        targets = {name: modules[name] for name in (self.layers if layers is None else layers)}
        while True:
            with (
                evaluating(self.model),
                torch.inference_mode(False),
                torch.set_grad_enabled(gradients),
                recording(targets, clone=self._clone) as records,
            ):
                # The input requires grad so the graph exists even with frozen parameters;
                # gradients still go only where autograd.grad asks (never into .grad).
                source = batch.clone().requires_grad_(True) if gradients else batch
                scores = scores_of(self.model(source), self.score_fn)
            self._forwards += 1
            missing = unrecoverable(records) - self._clone
            if not missing:
                break
            # Dynamic models only: a layer's output and inputs were both overwritten in a way the
            # example forward did not show; copy them from now on and run again.
            self._clone |= missing
        for record in records.values():
            record.release_inputs()
        if scores.shape != (batch.shape[0], self.num_classes):
            raise ValueError(
                f"model scores have shape {tuple(scores.shape)}, expected "
                f"({batch.shape[0]}, {self.num_classes}) as seen when the engine was built"
            )
        check_scores_finite(scores)
        seen: set[int] = set()
        nbytes = 0
        for record in records.values():
            storage = record.output.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                nbytes += storage.nbytes()
        size = (int(batch.shape[-2]), int(batch.shape[-1]))
        return ImageEntry(
            scores=scores, records=records, activation_bytes=nbytes, size=size, graph=gradients
        )

    @serialized
    def scores(self, batch: torch.Tensor | Prepared) -> torch.Tensor:
        """Raw class scores (N, classes) of a preprocessed batch, in eval mode, no gradients."""
        self._follow_model()
        prepared = self.prepare(batch)
        with evaluating(self.model), torch.no_grad():
            scores = scores_of(self.model(prepared.tensor), self.score_fn)
        self._forwards += 1
        check_scores_finite(scores)
        return scores.detach()
