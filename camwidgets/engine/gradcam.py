"""GradCAM: one forward per image, gradients per (image, class), maps on demand."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.autograd.graph import GradientEdge

from .analytic import PooledHead, find_linear, prove
from .cache import ByteLRU, ModelStamp
from .capture import Record, evaluating, recording, unrecoverable
from .checks import (
    as_bool,
    as_cache_bytes,
    as_index,
    as_positive_int,
    check_layers_argument,
    check_map,
    check_scores,
    check_scores_finite,
    class_names,
    describe_value,
    resolve_placement,
)
from .classnames import check_index, resolve_class
from .guided import guided_gradients
from .inputs import ImageLike, Prepared, Transform, default_transform, prepare
from .layers import Discovery, ScoreFn, default_layer, discover, resolve_layer, scores_of, stages
from .layouts import Layout, parse_overrides
from .locks import model_lock, serialized
from .methods import METHODS as METHOD_REGISTRY
from .methods import ClassScore, Method, MethodInputs, MethodOutput, get_method
from .result import CacheInfo, CamResult, Prediction, assemble_result

Target = int | str | None | Sequence[int | str]


@dataclass(eq=False)
class _ClassGradients:
    """The gradients of one class set: alpha for every layer a backward reached, and the full
    gradient tensors of the layers that a gradient-reading method asked for so far."""

    alphas: dict[str, torch.Tensor] = field(default_factory=dict)
    full: dict[str, torch.Tensor] = field(default_factory=dict)

    def has(self, layer: str, full: bool) -> bool:
        """Whether alpha (and, if ``full``, the full gradient) at ``layer`` is known."""
        return layer in self.alphas and (not full or layer in self.full)

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
    size: tuple[int, int]  # the input's (H, W): token layouts need it for their grid
    # classes -> alpha per layer (and full gradients where asked) of that class set
    gradients: dict[tuple[int, ...], _ClassGradients] = field(default_factory=dict)
    # (classes, sign) -> guided-backpropagation input gradient (N, C, H, W)
    guided: dict[tuple[tuple[int, ...], float], torch.Tensor] = field(default_factory=dict)
    # (method, classes, sign, layer) -> output of a method that asks to be kept (Score-CAM)
    outputs: dict[tuple[str, tuple[int, ...], float, str], MethodOutput] = field(
        default_factory=dict
    )
    # Whether ``scores`` carries the autograd graph down to the recorded layers. A forward whose
    # recorded layers all sit on a proven pooled linear head needs none (alpha is analytic).
    graph: bool = True

    def nbytes(self) -> int:
        """Estimated bytes held: activations, about as much again in a retained graph, grads."""
        kept = [*self.guided.values()]
        for out in self.outputs.values():
            kept += [t for t in (out.weights, out.coarse, out.pixels) if t is not None]
        extra = sum(t.numel() * t.element_size() for t in kept)
        held = (2 if self.graph else 1) * self.activation_bytes
        return held + sum(g.nbytes() for g in self.gradients.values()) + extra


class GradCAM:
    """Exact, cached Grad-CAM (Selvaraju et al.) for CNNs and vision transformers, leaving the
    model as found. Maps may be (N, C, h, w), channels last or patch tokens (see ``layouts``).

    For the chosen layer's output A (K channels of h x w) and the raw score Y_c of class c:

        alpha_k = (1 / hw) * sum_ij dY_c / dA^k_ij        (counterfactual: -alpha_k)
        coarse  = sum_k alpha_k A^k                        (signed, h x w)
        heatmap = bilinear_resize(ReLU(coarse), H x W)     (align_corners=False, not normalised)

    CAM (Zhou et al.) replaces alpha by the linear head's row for c, for models that end in
    global average pooling + a linear layer. Each distinct image (by content) costs one forward
    that records every candidate layer; each (image, class) costs one ``torch.autograd.grad``
    that yields alpha for every candidate layer from the deepest one asked for so far onward, so
    switching layer or toggling the counterfactual afterwards runs no model pass. Grad-CAM++,
    XGrad-CAM, HiResCAM, LayerCAM, Eigen-CAM, Score-CAM and Guided Grad-CAM are further
    ``method=`` names (``camwidgets.engine.methods``), read from the same cache;
    ``guided_backprop`` gives the guided-backpropagation input gradient on its own.

    Every argument is checked before any model pass (``ValueError``/``TypeError``, nothing
    changed); scores and maps that are not finite raise. Cached passes are dropped when the
    model's parameters or buffers change (version counters, see ``cache.ModelStamp``). Calls
    from several threads are serialised per model (``locks.model_lock``).

    Args:
        model: the network; its output must be (N, classes) raw scores, or see ``score_fn``.
        classes: class names, or torchvision weights (their ``meta["categories"]``).
        transform: PIL image -> normalised CHW tensor; defaults to ImageNet preprocessing at 224.
        layers: restrict the candidate layers (names or modules); default: every spatial layer.
        device: where inputs go; defaults to the model's own device.
        score_fn: turns a model output that is not a tensor (dict, tuple) into (N, classes).
        cache_bytes: byte budget of the cache of forwards and gradients (default 1 GiB).
        layouts: state a layer's layout where detection cannot (exotic models):
            ``{"name": "nchw" | "nhwc" | "tokens" | Layout | callable}``; a callable maps the
            output (and, identically, its gradient) to (N, C, h, w) by slicing, reshaping and
            permuting only. By default layouts are detected (see ``camwidgets.engine.layouts``).
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
        layouts: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable, got {type(transform).__name__}")
        if score_fn is not None and not callable(score_fn):
            raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
        layers = check_layers_argument(layers)
        cache_bytes = as_cache_bytes(cache_bytes)
        overrides = parse_overrides(model, layouts)
        self.model = model
        self.transform: Transform = transform if transform is not None else default_transform()
        self.score_fn = score_fn
        self._device_argument = device
        self.device, self.dtype = resolve_placement(model, device)
        self._lock = model_lock(model)
        example = self.transform(Image.new("RGB", (256, 256), (124, 116, 104)))
        if not isinstance(example, torch.Tensor) or example.dim() != 3:
            raise TypeError("transform must turn a PIL image into a (C, H, W) torch.Tensor")
        self.channels = int(example.shape[0])
        generator = torch.Generator().manual_seed(0)  # never touch the user's global RNG
        noise = torch.randn((2, *example.shape), generator=generator)
        with self._lock:
            example_input = noise[:1].to(self.device, self.dtype)
            found = discover(model, example_input, _checked(score_fn), overrides)
        self._found: Discovery = found
        shapes = dict(found.candidates)
        self._spatial = frozenset(shapes)
        if not shapes:
            raise ValueError(
                "the model has no spatial layer: no module outputs a map over the image grid "
                "((N, C, h, w), (N, h, w, C) or patch tokens, h*w > 1) that depends on the "
                "input, so there is nothing for Grad-CAM to explain; see layouts="
            )
        names = [name for name, _ in found.candidates]
        if layers is not None:
            chosen = {
                resolve_layer(x, model, names, found.outputs, names[-1], found.internal)
                for x in layers
            }
            names = [n for n in names if n in chosen]  # keep forward order
        self.layers: list[str] = names
        self.layer_shapes: dict[str, tuple[int, int, int]] = {n: shapes[n] for n in names}
        # The last map before the head (never a pool); a ViT's last-block input norm: see there.
        self.default_layer: str = default_layer(names, found)
        # The model's stages or blocks (plus the default): the readable list for a dropdown.
        self.stages: list[str] = stages(model, names, self.layer_shapes, self.default_layer)
        self.num_classes: int = found.num_classes
        self.classes: list[str] = class_names(classes, found.num_classes)
        self._clone = frozenset(found.clone) & frozenset(names)
        # How each layer's output lies over the image grid; methods always see (N, C, h, w).
        self._layouts: dict[str, Layout] = {n: found.layouts[n] for n in names}
        # Layers a gradient-reading method (Grad-CAM++, ...) was asked at: their full gradients
        # are kept by each later backward, so switching between such methods costs no pass.
        self._full_layers: set[str] = set()
        self._cache: ByteLRU[str, _ImageEntry] = ByteLRU(
            cache_bytes, _ImageEntry.nbytes, stamp=ModelStamp(model)
        )
        self._head = _head_name(model, found)
        self._depth = len(names)  # index of the deepest layer gradients were asked for so far
        self._forwards = 0
        self._backwards = 0
        # What a cached forward records: the layers watched (the panel's list) and those
        # explained so far. The rest of the model runs unhooked.
        self._watched: set[str] = set()
        self._asked: set[str] = set()
        # Several class sets in one vectorised backward (is_grads_batched) where that is faster:
        # on CUDA (ResNet-50, five classes: 1.55x). On the CPU convolution backward has no vmap
        # rule, so the batched call would run a slower loop; there it is one backward per class.
        self._batched_backward = self.device.type == "cuda"
        # Layers whose alpha is W_c / (h w) exactly: proven once, here, never assumed.
        self._proof_size = (int(example.shape[-2]), int(example.shape[-1]))
        with self._lock:
            self._pooled = self._prove_head(noise.to(self.device, self.dtype))

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
    def analytic_layers(self) -> list[str]:
        """Layers where alpha = W_c / (h w) is proven (GAP + linear head): no backward needed.

        Proven at construction from the autograd graph (only linear operations between the
        layer and the scores) and checked against ``torch.autograd.grad``; see ``analytic.py``.
        """
        head = self._pooled
        return [n for n in self.layers if head is not None and n in head.grids]

    @property
    def watched(self) -> list[str]:
        """The layers every new forward records besides those explained so far, forward order."""
        return [n for n in self.layers if n in self._watched]

    @serialized
    def watch(self, layers: Sequence[str | nn.Module]) -> None:
        """Record these layers in every later forward, so switching among them costs no pass.

        A forward records only the layers that can be asked: the watched ones, those explained
        so far and the layer of the call; asking a layer a cached image did not record runs its
        forward again. The first backward of each class reaches the deepest watched layer, so
        one backward per class serves them all. ``watch([])`` stops watching.
        """
        if isinstance(layers, (str, nn.Module)):
            layers = [layers]
        names = {self._layer(layer) for layer in layers}
        self._watched = names
        if names:
            self._depth = min(self._depth, min(self.layers.index(n) for n in names))

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
        index = self.layers.index(self._layer(layer))
        self._depth = min(self._depth, index)
        # Every layer from there on must be recorded for those switches to be free.
        self._watched |= set(self.layers[self._depth :])

    def prepare(self, image: ImageLike | Sequence[ImageLike] | Prepared) -> Prepared:
        """Preprocess an image (or a list, or an NCHW tensor) into a model-ready batch."""
        return prepare(image, self.transform, self.channels, self.device, self.dtype)

    def methods(self, layer: str | nn.Module | None = None) -> list[str]:
        """The names of the methods usable at ``layer`` (default layer if None)."""
        name = self._layer(layer)
        return [n for n, m in METHOD_REGISTRY.items() if m.unavailable(self, name) is None]

    @serialized
    def explain(
        self,
        image: ImageLike | Sequence[ImageLike] | Prepared,
        layer: str | nn.Module | None = None,
        target: Target = None,
        counterfactual: bool = False,
        method: str | Method = "gradcam",
        cache: bool = True,
    ) -> CamResult:
        """Explain ``target`` for ``image`` at ``layer``.

        Args:
            image: see ``prepare``; a list or an (N, C, H, W) tensor is a batch.
            layer: a candidate layer name or module; default the last spatial layer.
            target: class index or name, None for the top-1, or one per image for a batch.
            counterfactual: explain -Y_c: regions whose removal would raise the score.
            method: a registered method name (``engine.methods(layer)`` lists the usable ones),
                or a Method instance (e.g. ``ScoreCAM(batch_size=16)`` for its options).
            cache: False for the batch path: nothing is cached, only ``layer`` is recorded and
                no graph is kept beyond the call (same numbers).

        Returns:
            A frozen CamResult; tensors are detached float32 on the CPU.
        """
        chosen = get_method(method)
        counterfactual = as_bool(counterfactual, "counterfactual")
        cache = as_bool(cache, "cache")
        if counterfactual and not chosen.supports_counterfactual:
            raise ValueError(
                f"method {chosen.name!r} has no counterfactual: {chosen.no_counterfactual}"
            )
        name = self._layer(layer)
        reason = chosen.unavailable(self, name)
        if reason is not None:
            raise ValueError(reason)
        self._follow_model()
        prepared = self.prepare(image)
        wanted = self._wanted(target, prepared.tensor.shape[0])
        passes = self._forwards + self._backwards
        graph = self._needs_graph(chosen, name, prepared.size)
        if cache:
            self._asked.add(name)
            entry = self._entry(prepared, name, graph)
        else:
            entry = self._forward(prepared.tensor, [name], gradients=graph)
        classes = self._targets(wanted, entry.scores)
        sign = -1.0 if counterfactual else 1.0
        inputs = self._method_inputs(chosen, entry, prepared, classes, name, sign, cache)
        key = (chosen.name, classes, sign, name)
        output = entry.outputs.get(key) if chosen.memoize else None
        if output is None:
            output = chosen(inputs)
            if chosen.memoize:
                entry.outputs[key] = output
                self._cache.shrink()
        coarse = output.coarse.float()
        check_map(coarse, output.weights, inputs.activations, name, chosen.name)
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
            method=chosen.name,
            cached=passes == self._forwards + self._backwards,
            guided=None if pixels is None else pixels.float() * heatmap.unsqueeze(1),
        )

    @serialized
    def explain_classes(
        self,
        image: ImageLike | Sequence[ImageLike] | Prepared,
        targets: Sequence[Target],
        layer: str | nn.Module | None = None,
        counterfactual: bool = False,
        method: str | Method = "gradcam",
    ) -> list[CamResult]:
        """Explain several targets of one image (or batch) at once: ``explain`` per target.

        The gradients of all targets not cached yet come from as few backwards as the device
        makes fastest: one vectorised backward (``is_grads_batched``) on CUDA, one per target on
        the CPU (no vmap rule for convolution backward there); the numbers are the same either
        way. With the layers watched (``watch``), every later layer switch, counterfactual
        toggle or class among these is a cache hit, e.g. the panel's top-k.

        Args:
            image: as for ``explain``.
            targets: one ``explain`` target per map (an index, a name, None, or a list per
                image for a batch).
            layer, counterfactual, method: as for ``explain``.

        Returns:
            One CamResult per target, in order; ``cached`` is False on each when this call ran a
            model pass.

        Example:
            >>> import torch, torchvision
            >>> from camwidgets import GradCAM
            >>> engine = GradCAM(torchvision.models.resnet18(num_classes=4).eval())
            >>> engine.watch(["layer3", "layer4"])
            >>> x = torch.randn(1, 3, 64, 64)
            >>> [r.target for r in engine.explain_classes(x, [0, 1, 3], layer="layer3")]
            [0, 1, 3]
            >>> engine.explain(x, layer="layer4", target=1, counterfactual=True).cached
            True
        """
        if isinstance(targets, (str, int)) or not isinstance(targets, Sequence):
            raise TypeError(
                f"targets must be a list of explain targets, got {type(targets).__name__}"
            )
        chosen = get_method(method)
        counterfactual = as_bool(counterfactual, "counterfactual")
        name = self._layer(layer)
        self._follow_model()
        prepared = self.prepare(image)
        count = prepared.tensor.shape[0]
        wanted = [self._wanted(t, count) for t in targets]  # checked before any pass
        passes = self._forwards + self._backwards
        gradient_reading = chosen.needs_alpha or chosen.needs_gradients
        if wanted and gradient_reading and chosen.unavailable(self, name) is None:
            graph = self._needs_graph(chosen, name, prepared.size)
            self._asked.add(name)
            entry = self._entry(prepared, name, graph)
            sets = [self._targets(w, entry.scores) for w in wanted]
            if graph:
                full = chosen.needs_gradients
                if full:
                    self._full_layers.add(name)
                missing = [
                    c
                    for c in dict.fromkeys(sets)
                    if c not in entry.gradients or not entry.gradients[c].has(name, full)
                ]
                if missing:
                    self._backward(entry, missing, name, full, cache=True)
        results = [
            self.explain(prepared, name, t, counterfactual=counterfactual, method=chosen)
            for t in targets
        ]
        if passes != self._forwards + self._backwards:
            results = [dataclasses.replace(r, cached=False) for r in results]
        return results

    @serialized
    def guided_backprop(
        self,
        image: ImageLike | Sequence[ImageLike] | Prepared,
        target: Target = None,
        counterfactual: bool = False,
    ) -> torch.Tensor:
        """Guided backpropagation (Springenberg et al.) of ``Y_c`` (or ``-Y_c``) to the input.

        The gradient of the class score with respect to the preprocessed input, with every
        ``nn.ReLU`` module passing back only positive gradients at positive inputs (``F.relu``
        calls are not guided; see ``camwidgets.engine.guided``). One forward and one backward
        per (image, class, sign), cached with the image.

        Returns:
            (C, H, W), or (N, C, H, W) for a batch; float32 on the CPU.
        """
        counterfactual = as_bool(counterfactual, "counterfactual")
        self._follow_model()
        prepared = self.prepare(image)
        wanted = self._wanted(target, prepared.tensor.shape[0])
        entry = self._entry(prepared)
        classes = self._targets(wanted, entry.scores)
        guided = self._guided(entry, prepared, classes, -1.0 if counterfactual else 1.0).cpu()
        return guided if prepared.batched else guided[0]

    @serialized
    def activations(
        self, image: ImageLike | Sequence[ImageLike] | Prepared, layer: str | nn.Module | None
    ) -> torch.Tensor:
        """The layer's output for a batch, (N, K, h, w) float32 on the model's device.

        One forward without gradients, recording only ``layer``; nothing is cached.
        """
        name = self._layer(layer)
        self._follow_model()
        prepared = self.prepare(image)
        entry = self._forward(prepared.tensor, [name], gradients=False)
        record = entry.records[name]
        values = self._layouts[name].to_nchw(record.value(self.model), entry.size).float()
        check_map(values, None, values, name, "activations")
        return values

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

    @serialized
    def predict(
        self, image: ImageLike | Sequence[ImageLike] | Prepared, k: int = 5
    ) -> list[Prediction] | list[list[Prediction]]:
        """Top-``k`` classes (index, name, probability, logit); a list per image for a batch."""
        k = as_positive_int(k, "k")
        self._follow_model()
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
        """Drop every cached forward, graph and gradient.

        Changes to the model's parameters and buffers are detected on their own (version
        counters); call this after writes that bypass them (``param.data.add_()``, numpy views).
        """
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
            layer,
            self.model,
            self.layers,
            self._found.outputs,
            self.default_layer,
            self._found.internal,
        )

    def _needs_graph(self, method: Method, layer: str, size: tuple[int, int]) -> bool:
        """Whether explaining ``layer`` with ``method`` needs the autograd graph at all."""
        if not (method.needs_alpha or method.needs_gradients):
            return False
        return not self._analytic(layer, size)

    def _analytic(self, layer: str, size: tuple[int, int]) -> bool:
        """Whether alpha at ``layer`` is proven analytic for inputs of this (H, W) size."""
        head = self._pooled
        if head is None or layer not in head.grids:
            return False
        # A proof pinned to a grid holds for the input size it was made at.
        return head.grids[layer] is None or size == self._proof_size

    def _recorded(self, layer: str | None) -> list[str]:
        """The layers a cached forward records: watched, explained so far, and ``layer``."""
        wanted = self._watched | self._asked | {layer or self.default_layer}
        return [n for n in self.layers if n in wanted]

    def _entry(
        self, prepared: Prepared, layer: str | None = None, graph: bool = False
    ) -> _ImageEntry:
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
        return _ImageEntry(
            scores=scores, records=records, activation_bytes=nbytes, size=size, graph=gradients
        )

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

    def _guided(
        self, entry: _ImageEntry, prepared: Prepared, classes: tuple[int, ...], sign: float
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
        self, entry: _ImageEntry, classes: tuple[int, ...], name: str, full: bool, cache: bool
    ) -> _ClassGradients:
        """Alpha (and, if ``full``, the gradient) at ``name`` for these classes: cached, or one
        backward that serves every recorded layer from the deepest asked for so far onward."""
        known = entry.gradients.get(classes)
        if known is not None and known.has(name, full):
            return known
        return self._backward(entry, [classes], name, full, cache)[0]

    def _backward(
        self,
        entry: _ImageEntry,
        class_sets: Sequence[tuple[int, ...]],
        name: str,
        full: bool,
        cache: bool,
    ) -> list[_ClassGradients]:
        """The gradients of several class sets: one vectorised backward where that is faster
        (``_batched_backward``), else one per class set. Without the cache, ``name`` only."""
        index = self.layers.index(name)
        if cache:
            # Go as deep as any layer asked for before, so one backward per class serves them all;
            # layers with a proven analytic alpha need no gradient.
            self._depth = depth = min(index, self._depth)
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
            result = known if known is not None else _ClassGradients()
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

    def _exact(self, layer: str, entry: _ImageEntry) -> bool:
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

    def _prove_head(self, example: torch.Tensor) -> PooledHead | None:
        """Which layers feed the scores through global average pooling + the linear head only.

        One forward of two example images recording the candidate pooled layers; ``prove``
        walks the graph and checks its Jacobian against ``torch.autograd.grad``.
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
        modules = dict(self.model.named_modules())
        with (
            evaluating(self.model),
            torch.inference_mode(False),
            torch.enable_grad(),
            recording({n: modules[n] for n in layers}, clone=self._clone) as records,
        ):
            try:
                output = self.model(example.clone().requires_grad_(True))
                raw = self.score_fn(output) if self.score_fn is not None else output
                scores = check_scores(raw, int(example.shape[0]), self.score_fn)
            except (RuntimeError, ValueError, TypeError):
                # A model that cannot take two images at once gets no proof, only autograd.
                return None
            grids = prove(records, layers, scores, linear)
        return PooledHead(linear, grids) if grids else None

    def _wanted(self, target: Target, count: int) -> tuple[int | None, ...]:
        """Check targets before any pass: one index (None = top-1) per image of the batch."""
        if isinstance(target, (np.ndarray, torch.Tensor)) and target.ndim == 1:
            target = target.tolist()
        if isinstance(target, (list, tuple)):
            if len(target) != count:
                raise ValueError(f"got {len(target)} targets for a batch of {count} images")
            return tuple(self._class_index(t) for t in target)
        return (self._class_index(target),) * count

    def _targets(self, wanted: tuple[int | None, ...], scores: torch.Tensor) -> tuple[int, ...]:
        """The checked targets with each None replaced by that image's top-1 class."""
        if all(c is not None for c in wanted):
            return tuple(c for c in wanted if c is not None)
        # One argmax for the batch: one device sync, not one per image.
        top = scores.argmax(dim=1).tolist()
        return tuple(int(top[i]) if c is None else c for i, c in enumerate(wanted))

    def _class_index(self, target: object) -> int | None:
        """Validate one target: an int-like index, a class name, or None for the top-1."""
        if target is None:
            return None
        if isinstance(target, str):  # the resolver the panel and the CLI use too
            return resolve_class(target, self.classes)
        try:
            index = as_index(target, "target")
        except TypeError:
            raise TypeError(
                "target must be a class index (int, numpy integer, 0-d integer tensor), a class "
                f"name, None for the top-1 class, or a list of these, got {describe_value(target)}"
            ) from None
        return check_index(index, self.num_classes)

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


def _checked(score_fn: ScoreFn | None) -> ScoreFn:
    """The scoring step with the construction-time checks (see ``check_scores``)."""

    def score(output: object) -> torch.Tensor:
        scores = score_fn(output) if score_fn is not None else output
        return check_scores(scores, 1, score_fn)

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
