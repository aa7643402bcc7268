"""GradCAM: one forward per image, gradients per (image, class), maps on demand."""

from __future__ import annotations

import difflib
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsIndex, cast

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.autograd.graph import GradientEdge

from .cache import ByteLRU
from .capture import Record, evaluating, recording, unrecoverable
from .inputs import ImageLike, Prepared, Transform, default_transform, prepare
from .layers import Discovery, ScoreFn, discover, resolve_layer, scores_of
from .layouts import NCHW, Layout
from .methods import METHODS as METHOD_REGISTRY
from .methods import ClassScore, Method, MethodInputs, get_method
from .result import CacheInfo, CamResult, Prediction

Target = int | str | None | Sequence[int | str]


@dataclass(eq=False)
class _ClassGradients:
    """The gradients of one class set: alpha for every layer from ``depth`` on, and the full
    gradient tensors of the layers that a gradient-reading method asked for so far."""

    depth: int
    alphas: dict[str, torch.Tensor]
    full: dict[str, torch.Tensor] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Bytes held by the alphas and the full gradients."""
        tensors = [*self.alphas.values(), *self.full.values()]
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(eq=False)
class _ImageEntry:
    """Cached state of one distinct input batch: scores with their graph, layer records, grads."""

    scores: torch.Tensor
    records: dict[str, Record]
    activation_bytes: int
    # classes -> alpha per layer (and full gradients where asked) of that class set
    gradients: dict[tuple[int, ...], _ClassGradients] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Estimated bytes held: activations, about as much again in the retained graph, grads."""
        return 2 * self.activation_bytes + sum(g.nbytes() for g in self.gradients.values())


class GradCAM:
    """Exact, cached Grad-CAM (Selvaraju et al.) for any CNN, leaving the model as found.

    For the chosen layer's output A (K channels of h x w) and the raw score Y_c of class c:

        alpha_k = (1 / hw) * sum_ij dY_c / dA^k_ij        (counterfactual: -alpha_k)
        coarse  = sum_k alpha_k A^k                        (signed, h x w)
        heatmap = bilinear_resize(ReLU(coarse), H x W)     (align_corners=False, not normalised)

    CAM (Zhou et al.) replaces alpha by the linear head's row for c, for models that end in
    global average pooling + a linear layer. Each distinct image (by content) costs one forward
    that records every candidate layer; each (image, class) costs one ``torch.autograd.grad``
    that yields alpha for every candidate layer from the deepest one asked for so far onward, so
    switching layer or toggling the counterfactual afterwards runs no model pass.

    Args:
        model: the network; its output must be (N, classes) raw scores, or see ``score_fn``.
        classes: class names, or torchvision weights (their ``meta["categories"]``).
        transform: PIL image -> normalised CHW tensor; defaults to ImageNet preprocessing at 224.
        layers: restrict the candidate layers (names or modules); default: every spatial layer.
        device: where inputs go; defaults to the model's own device.
        score_fn: turns a model output that is not a tensor (dict, tuple) into (N, classes).
        cache_bytes: byte budget of the cache of forwards and gradients (default 1 GiB).
    """

    def __init__(
        self,
        model: nn.Module,
        classes: Sequence[str] | Any | None = None,
        transform: Transform | None = None,
        layers: Sequence[str | nn.Module] | None = None,
        device: str | torch.device | None = None,
        score_fn: ScoreFn | None = None,
        cache_bytes: int = 1 << 30,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        if score_fn is not None and not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        self.model = model
        self.transform: Transform = transform if transform is not None else default_transform()
        self.score_fn = score_fn
        self.device, self.dtype = _placement(model, device)
        example = self.transform(Image.new("RGB", (256, 256), (124, 116, 104)))
        if not isinstance(example, torch.Tensor) or example.dim() != 3:
            raise TypeError("transform must turn a PIL image into a (C, H, W) torch.Tensor")
        self.channels = int(example.shape[0])
        generator = torch.Generator().manual_seed(0)  # never touch the user's global RNG
        noise = torch.randn((1, *example.shape), generator=generator)
        found = discover(model, noise.to(self.device, self.dtype), score_fn)
        self._found: Discovery = found
        shapes = dict(found.candidates)
        self._spatial = frozenset(shapes)
        if not shapes:
            raise ValueError(
                "the model has no spatial layer: no module outputs an (N, C, h, w) map with "
                "h*w > 1 that depends on the input, so there is nothing for Grad-CAM to explain"
            )
        names = [name for name, _ in found.candidates]
        if layers is not None:
            if isinstance(layers, (str, nn.Module)):
                layers = [layers]
            chosen = {resolve_layer(x, model, names, found.outputs, names[-1]) for x in layers}
            names = [n for n in names if n in chosen]  # keep forward order
        self.layers: list[str] = names
        self.layer_shapes: dict[str, tuple[int, int, int]] = {n: shapes[n] for n in names}
        self.default_layer: str = names[-1]
        self.num_classes: int = found.num_classes
        self.classes: list[str] = _class_names(classes, found.num_classes)
        self._clone = frozenset(found.clone) & frozenset(names)
        # How each layer's output lies over the image grid; methods always see (N, C, h, w).
        self._layouts: dict[str, Layout] = {n: NCHW for n in names}
        # Layers a gradient-reading method (Grad-CAM++, ...) was asked at: their full gradients
        # are kept by each later backward, so switching between such methods costs no pass.
        self._full_layers: set[str] = set()
        self._cache: ByteLRU[str, _ImageEntry] = ByteLRU(cache_bytes, _ImageEntry.nbytes)
        self._depth = len(names)  # index of the deepest layer gradients were asked for so far
        self._forwards = 0
        self._backwards = 0

    @property
    def has_cam(self) -> bool:
        """Whether the model ends in global average pooling + linear, so CAM is available."""
        return self._found.cam is not None

    @property
    def cam_layers(self) -> list[str]:
        """The layers CAM is defined at (the ones the pooled head reads), forward order."""
        cam = self._found.cam
        return [n for n in self.layers if cam is not None and n in cam.layers]

    @property
    def gradient_depth(self) -> str | None:
        """The deepest layer each new (image, class) backward reaches (None before the first).

        It follows the deepest layer asked for so far, so a first map at ``layer4`` costs only
        the backward down to ``layer4``. Set it to ``layers[0]`` to make every later layer
        switch free at the price of a full-depth backward per class (the Explorer does).
        """
        return self.layers[self._depth] if self._depth < len(self.layers) else None

    @gradient_depth.setter
    def gradient_depth(self, layer: str | nn.Module) -> None:
        self._depth = min(self._depth, self.layers.index(self._layer(layer)))

    def prepare(self, image: ImageLike | Sequence[ImageLike] | Prepared) -> Prepared:
        """Preprocess an image (or a list, or an NCHW tensor) into a model-ready batch."""
        return prepare(image, self.transform, self.channels, self.device, self.dtype)

    def methods(self, layer: str | nn.Module | None = None) -> list[str]:
        """The names of the methods usable at ``layer`` (default layer if None)."""
        name = self._layer(layer)
        return [n for n, m in METHOD_REGISTRY.items() if m.unavailable(self, name) is None]

    def explain(
        self,
        image: ImageLike | Sequence[ImageLike] | Prepared,
        layer: str | nn.Module | None = None,
        target: Target = None,
        counterfactual: bool = False,
        method: str = "gradcam",
        cache: bool = True,
    ) -> CamResult:
        """Explain ``target`` for ``image`` at ``layer``.

        Args:
            image: see ``prepare``; a list or an (N, C, H, W) tensor is a batch.
            layer: a candidate layer name or module; default the last spatial layer.
            target: class index or name, None for the top-1, or one per image for a batch.
            counterfactual: explain -Y_c: regions whose removal would raise the score.
            method: a registered method name (``engine.methods(layer)`` lists the usable ones).
            cache: False for the batch path: nothing is cached, only ``layer`` is recorded and
                no graph is kept beyond the call (same numbers).

        Returns:
            A frozen CamResult; tensors are detached float32 on the CPU.
        """
        chosen = get_method(method)
        if not isinstance(counterfactual, bool):
            raise TypeError(f"counterfactual must be a bool, got {type(counterfactual).__name__}")
        if counterfactual and not chosen.supports_counterfactual:
            raise ValueError(f"method {chosen.name!r} has no counterfactual (it is class-agnostic)")
        name = self._layer(layer)
        reason = chosen.unavailable(self, name)
        if reason is not None:
            raise ValueError(reason)
        prepared = self.prepare(image)
        passes = self._forwards + self._backwards
        entry = self._entry(prepared) if cache else self._forward(prepared.tensor, [name])
        classes = self._targets(target, entry.scores, prepared.batched)
        sign = -1.0 if counterfactual else 1.0
        inputs = self._method_inputs(chosen, entry, prepared, classes, name, sign, cache)
        output = chosen(inputs)
        coarse = output.coarse.float()
        heatmap = F.interpolate(
            coarse.clamp_min(0).unsqueeze(1),
            size=prepared.size,
            mode="bilinear",
            align_corners=False,
        ).squeeze(1)
        return self._result(
            prepared.batched,
            entry.scores.detach().float(),
            classes,
            (heatmap, coarse, output.weights, inputs.activations),
            layer=name,
            counterfactual=counterfactual,
            method=chosen.name,
            cached=passes == self._forwards + self._backwards,
        )

    def activations(
        self, image: ImageLike | Sequence[ImageLike] | Prepared, layer: str | nn.Module | None
    ) -> torch.Tensor:
        """The layer's output for a batch, (N, K, h, w) float32 on the model's device.

        One forward without gradients, recording only ``layer``; nothing is cached.
        """
        name = self._layer(layer)
        prepared = self.prepare(image)
        entry = self._forward(prepared.tensor, [name], gradients=False)
        return self._layouts[name].to_nchw(entry.records[name].value(self.model)).float()

    def scores(self, batch: torch.Tensor | Prepared) -> torch.Tensor:
        """Raw class scores (N, classes) of a preprocessed batch, in eval mode, no gradients."""
        prepared = self.prepare(batch)
        with evaluating(self.model), torch.no_grad():
            scores = scores_of(self.model(prepared.tensor), self.score_fn)
        self._forwards += 1
        return scores.detach()

    def predict(
        self, image: ImageLike | Sequence[ImageLike] | Prepared, k: int = 5
    ) -> list[Prediction] | list[list[Prediction]]:
        """Top-``k`` classes (index, name, probability, logit); a list per image for a batch."""
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        prepared = self.prepare(image)
        scores = self._entry(prepared).scores.detach().float().cpu()
        probabilities = scores.softmax(dim=1)
        top = probabilities.topk(min(k, self.num_classes), dim=1)
        per_image = [
            [
                Prediction(int(i), self.classes[int(i)], float(p), float(scores[row, int(i)]))
                for p, i in zip(top.values[row], top.indices[row], strict=True)
            ]
            for row in range(scores.shape[0])
        ]
        return per_image if prepared.batched else per_image[0]

    def cache_info(self) -> CacheInfo:
        """Model passes run so far and the cache's size and hit counters."""
        cache = self._cache
        return CacheInfo(
            self._forwards,
            self._backwards,
            cache.hits,
            cache.misses,
            len(cache),
            cache.nbytes,
            cache.max_bytes,
        )

    def clear_cache(self) -> None:
        """Drop every cached forward, graph and gradient."""
        self._cache.clear()

    # -- internals -------------------------------------------------------------------------

    def _layer(self, layer: str | nn.Module | None) -> str:
        """Resolve a layer argument against the candidates."""
        if isinstance(layer, str) and layer not in self.layers and layer in self._spatial:
            raise ValueError(
                f"layer {layer!r} is spatial but not one of this engine's layers "
                f"({', '.join(self.layers)}), which the layers= argument restricted"
            )
        return resolve_layer(
            layer, self.model, self.layers, self._found.outputs, self.default_layer
        )

    def _entry(self, prepared: Prepared) -> _ImageEntry:
        """The cached forward of this batch's content, running it if new."""
        entry = self._cache.get(prepared.fingerprint)
        if entry is None:
            entry = self._forward(prepared.tensor)
            self._cache.put(prepared.fingerprint, entry)
        return entry

    def _forward(
        self, batch: torch.Tensor, layers: Sequence[str] | None = None, gradients: bool = True
    ) -> _ImageEntry:
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
        if scores.shape != (batch.shape[0], self.num_classes):
            raise ValueError(
                f"model scores have shape {tuple(scores.shape)}, expected "
                f"({batch.shape[0]}, {self.num_classes}) as seen when the engine was built"
            )
        seen: set[int] = set()
        nbytes = 0
        for record in records.values():
            storage = record.output.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                nbytes += storage.nbytes()
        return _ImageEntry(scores=scores, records=records, activation_bytes=nbytes)

    def _method_inputs(
        self,
        method: Method,
        entry: _ImageEntry,
        prepared: Prepared,
        classes: tuple[int, ...],
        name: str,
        sign: float,
        cache: bool,
    ) -> MethodInputs:
        """Gather what ``method`` needs at ``name``, from the cache or one backward."""
        layout = self._layouts[name]
        activations = layout.to_nchw(entry.records[name].value(self.model)).float()
        alpha = gradients = head = None
        if method.needs_gradients or method.needs_alpha:
            if method.needs_gradients:
                self._full_layers.add(name)
            grads = self._gradients(entry, classes, name, method.needs_gradients, cache)
            alpha = sign * grads.alphas[name].to(self.device, torch.float32)
            if method.needs_gradients:
                gradients = sign * grads.full[name].to(self.device, torch.float32)
        if method.needs_head:
            assert self._found.cam is not None
            head = sign * self._found.cam.weight[list(classes)].to(self.device, torch.float32)
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
        )

    def _gradients(
        self, entry: _ImageEntry, classes: tuple[int, ...], name: str, full: bool, cache: bool
    ) -> _ClassGradients:
        """Alpha (and, if ``full``, the gradient) at ``name`` for these classes: cached, or one
        backward that serves every layer from the deepest asked for so far onward."""
        index = self.layers.index(name)
        known = entry.gradients.get(classes)
        if known is not None and known.depth <= index and (not full or name in known.full):
            return known
        if cache:
            # Go as deep as any layer asked for before, so one backward per class serves them all.
            self._depth = depth = min(index, self._depth)
            names = [n for n in self.layers[depth:] if n in entry.records]
            keep = {n for n in names if n in self._full_layers}
        else:
            depth, names, keep = index, [name], {name} if full else set()
        edges: dict[tuple[int, int], GradientEdge] = {}
        for layer in names:
            edge = entry.records[layer].edge
            if edge is not None:
                edges.setdefault((id(edge.node), edge.output_nr), edge)
        with torch.inference_mode(False), torch.enable_grad():
            grads = torch.autograd.grad(
                ClassScore(classes)(entry.scores),
                list(edges.values()),
                retain_graph=cache,
                allow_unused=True,
            )
        self._backwards += 1
        by_edge = dict(zip(edges, grads, strict=True))
        result = _ClassGradients(depth, {})
        for layer in names:
            edge = entry.records[layer].edge
            grad = by_edge.get((id(edge.node), edge.output_nr)) if edge is not None else None
            if grad is None:  # the score does not depend on this layer
                shape = self._layouts[layer].to_nchw(entry.records[layer].output).shape
                grad_nchw = torch.zeros(shape, device=self.device)
            else:
                grad_nchw = self._layouts[layer].to_nchw(grad).float()
            result.alphas[layer] = grad_nchw.mean(dim=(-2, -1))
            if layer in keep:
                result.full[layer] = grad_nchw
        if cache:
            entry.gradients[classes] = result
            self._cache.shrink()
        return result

    def _targets(self, target: Target, scores: torch.Tensor, batched: bool) -> tuple[int, ...]:
        """One class index per image from an index, a name, None (top-1) or a list."""
        count = scores.shape[0]
        if isinstance(target, (list, tuple)):
            if len(target) != count:
                raise ValueError(f"got {len(target)} targets for a batch of {count} images")
            return tuple(self._class_index(t, scores[i]) for i, t in enumerate(target))
        return tuple(self._class_index(target, scores[i]) for i in range(count))

    def _class_index(self, target: object, scores: torch.Tensor) -> int:
        """Validate one target: an int-like index, a class name, or None for the top-1."""
        if target is None:
            return int(scores.argmax())
        if isinstance(target, str):
            if target in self.classes:
                return self.classes.index(target)
            close = difflib.get_close_matches(target, self.classes, n=5, cutoff=0.6)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"unknown class name {target!r}{hint}")
        try:
            if isinstance(target, bool):
                raise TypeError
            index = operator.index(cast(SupportsIndex, target))  # int, numpy int, 0-d tensor
        except TypeError:
            raise TypeError(
                f"target must be a class index, a class name or None, got {type(target).__name__}"
            ) from None
        if not 0 <= index < self.num_classes:
            raise ValueError(
                f"target {index} is out of range: the model has {self.num_classes} classes "
                f"(0..{self.num_classes - 1})"
            )
        return index

    def _result(
        self,
        batched: bool,
        scores: torch.Tensor,
        classes: tuple[int, ...],
        maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor],
        layer: str,
        counterfactual: bool,
        method: str,
        cached: bool,
        guided: torch.Tensor | None = None,
    ) -> CamResult:
        """Assemble a CamResult on the CPU, squeezing the batch axis for a single image."""
        probabilities = scores.softmax(dim=1)
        rows = range(len(classes))
        score = tuple(float(scores[i, c]) for i, c in zip(rows, classes, strict=True))
        prob = tuple(float(probabilities[i, c]) for i, c in zip(rows, classes, strict=True))
        names = tuple(self.classes[c] for c in classes)

        def host(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            t = t.detach().float().cpu()
            return t if batched else t[0]

        heatmap, coarse, weights, activations = (host(t) for t in maps)
        logits, guided_map = host(scores), host(guided)
        assert heatmap is not None and coarse is not None and activations is not None
        assert logits is not None
        if batched:
            return CamResult(
                heatmap,
                coarse,
                weights,
                activations,
                classes,
                names,
                score,
                prob,
                layer=layer,
                counterfactual=counterfactual,
                method=method,
                cached=cached,
                logits=logits,
                guided=guided_map,
            )
        return CamResult(
            heatmap,
            coarse,
            weights,
            activations,
            classes[0],
            names[0],
            score[0],
            prob[0],
            layer=layer,
            counterfactual=counterfactual,
            method=method,
            cached=cached,
            logits=logits,
            guided=guided_map,
        )


def _placement(
    model: nn.Module, device: str | torch.device | None
) -> tuple[torch.device, torch.dtype]:
    """The device inputs go to and the floating dtype the model computes in."""
    params = [p for p in model.parameters()] + [b for b in model.buffers() if b.is_floating_point()]
    floating = [p for p in params if p.is_floating_point()]
    model_device = floating[0].device if floating else torch.device("cpu")
    dtype = floating[0].dtype if floating else torch.float32
    if device is None:
        return model_device, dtype
    wanted = torch.device(device)
    if floating and wanted.type != model_device.type:
        raise ValueError(
            f"device={str(wanted)!r} but the model's parameters are on {model_device}; move the "
            "model first (the engine never moves it), or leave device=None"
        )
    return wanted, dtype


def _class_names(classes: Sequence[str] | Any | None, count: int) -> list[str]:
    """Class names from a list, from torchvision weights' metadata, or "0".."count-1"."""
    if classes is None:
        return [str(i) for i in range(count)]
    meta = getattr(classes, "meta", None)
    if isinstance(meta, dict) and "categories" in meta:
        classes = meta["categories"]
    if isinstance(classes, str) or not isinstance(classes, Sequence):
        raise TypeError("classes must be a list of names or torchvision weights with categories")
    names = [str(c) for c in classes]
    if len(names) != count:
        raise ValueError(f"got {len(names)} class names but the model outputs {count} scores")
    return names
