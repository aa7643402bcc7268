"""GradCAM: one forward per image, gradients per (image, class), maps on demand."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn

from .cache import ByteLRU, ModelStamp
from .capture import Record
from .catalog import LayerCatalog
from .checks import (
    as_bool,
    as_cache_bytes,
    as_positive_int,
    check_layers_argument,
    check_map,
    class_names,
    resolve_placement,
)
from .entry import ImageEntry
from .follow import _checked, _head_name
from .gather import MethodGatherer
from .inputs import ImageLike, Prepared, Transform, default_transform
from .layers import Discovery, ScoreFn, default_layer, discover, resolve_layer, stages
from .layouts import Layout, parse_overrides
from .locks import model_lock, serialized
from .methods import Method, get_method
from .result import CacheInfo, CamResult, Prediction
from .wanted import Target, TargetChecks


class GradCAM(LayerCatalog, TargetChecks, MethodGatherer):
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
            found, evidence = _discover(
                model, noise.to(self.device, self.dtype), score_fn, overrides
            )
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
        self._cache: ByteLRU[str, ImageEntry] = ByteLRU(
            cache_bytes, ImageEntry.nbytes, stamp=ModelStamp(model)
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
        # Layers whose alpha is W_c / (h w) exactly: proven once, here, never assumed, from the
        # discovery forward itself (two images, with a graph).
        self._proof_size = (int(example.shape[-2]), int(example.shape[-1]))
        with self._lock:
            self._pooled = self._prove_head(*evidence) if evidence is not None else None
        del evidence  # the discovery graph goes now

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
            A frozen CamResult; tensors are detached float32 on the device the model ran on
            (``result.cpu()`` copies them to the host in one transfer; on a CPU model they
            already are). Scores and probabilities are Python floats.
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
        cached = passes == self._forwards + self._backwards
        return self._result(output, inputs, prepared, entry, chosen.name, counterfactual, cached)

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
            (C, H, W), or (N, C, H, W) for a batch; float32 on the model's device.
        """
        counterfactual = as_bool(counterfactual, "counterfactual")
        self._follow_model()
        prepared = self.prepare(image)
        wanted = self._wanted(target, prepared.tensor.shape[0])
        entry = self._entry(prepared)
        classes = self._targets(wanted, entry.scores)
        guided = self._guided(entry, prepared, classes, -1.0 if counterfactual else 1.0)
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


Evidence = tuple[Mapping[str, Record], torch.Tensor]


def _discover(
    model: nn.Module, noise: torch.Tensor, score_fn: ScoreFn | None, overrides: dict[str, Any]
) -> tuple[Discovery, Evidence | None]:
    """The construction's one real forward: discovery on two example images, whose records and
    scores (with their graph) then serve the pooled-head proof. A model that cannot take two
    images at once is discovered on one and gets no proof (alpha by autograd there)."""
    kept: dict[str, Any] = {}
    try:
        found = discover(model, noise, _checked(score_fn, 2), overrides, keep=kept)
        return found, (kept["records"], kept["scores"])
    except (RuntimeError, ValueError, TypeError):
        pass
    single = noise[:1]
    try:
        return discover(model, single, _checked(score_fn, 1), overrides), None
    except RuntimeError as error:
        raise TypeError(
            f"the model does not take images: a ({', '.join(map(str, single.shape))}) batch of "
            f"{single.dtype} images (N, C, H, W) failed inside its forward with "
            f"{type(error).__name__}: {error}. GradCAM explains image models whose forward "
            "takes an (N, C, H, W) tensor (give a transform= that makes the (C, H, W) tensors "
            "the model expects)"
        ) from error
