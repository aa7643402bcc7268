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
from .methods import METHODS, ClassScore, cam_weights, gradcam_weights
from .result import CacheInfo, CamResult, Prediction

Target = int | str | None | Sequence[int | str]


@dataclass(eq=False)
class _ImageEntry:
    """Cached state of one distinct input batch: scores with their graph, layer records, alphas."""

    scores: torch.Tensor
    records: dict[str, Record]
    activation_bytes: int
    # classes -> (index of the deepest layer covered, alpha (N, K) per layer from there on)
    alphas: dict[tuple[int, ...], tuple[int, dict[str, torch.Tensor]]] = field(default_factory=dict)

    def nbytes(self) -> int:
        """Estimated bytes held: activations, about as much again in the retained graph, alphas."""
        alpha_bytes = sum(
            a.numel() * a.element_size() for _, per in self.alphas.values() for a in per.values()
        )
        return 2 * self.activation_bytes + alpha_bytes


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

    def explain(
        self,
        image: ImageLike | Sequence[ImageLike] | Prepared,
        layer: str | nn.Module | None = None,
        target: Target = None,
        counterfactual: bool = False,
        method: str = "gradcam",
    ) -> CamResult:
        """Explain ``target`` for ``image`` at ``layer``.

        Args:
            image: see ``prepare``; a list or an (N, C, H, W) tensor is a batch.
            layer: a candidate layer name or module; default the last spatial layer.
            target: class index or name, None for the top-1, or one per image for a batch.
            counterfactual: negate alpha: regions whose removal would raise the score.
            method: "gradcam", or "cam" at a layer read by a global-average-pool + linear head.

        Returns:
            A frozen CamResult; tensors are detached float32 on the CPU.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; available: {', '.join(METHODS)}")
        if not isinstance(counterfactual, bool):
            raise TypeError(f"counterfactual must be a bool, got {type(counterfactual).__name__}")
        name = self._layer(layer)
        if method == "cam" and name not in self.cam_layers:
            where = ", ".join(self.cam_layers) or "no layer: the model has no GAP + linear head"
            raise ValueError(f"CAM is defined only at the pooled layer(s): {where}; got {name!r}")
        prepared = self.prepare(image)
        passes = self._forwards + self._backwards
        entry = self._entry(prepared)
        classes = self._targets(target, entry.scores, prepared.batched)
        target_score = ClassScore(classes, sign=-1.0 if counterfactual else 1.0)
        if method == "cam":
            assert self._found.cam is not None
            raw = cam_weights(self._found.cam.weight, classes)
        else:
            raw = self._gradcam_alphas(entry, classes, self.layers.index(name))[name]
        alpha = target_score.sign * raw.to(self.device, torch.float32)
        activations = entry.records[name].value(self.model).float()
        coarse = torch.einsum("nk,nkhw->nhw", alpha, activations)
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
            (heatmap, coarse, alpha, activations),
            layer=name,
            counterfactual=counterfactual,
            method=method,
            cached=passes == self._forwards + self._backwards,
        )

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

    def _forward(self, batch: torch.Tensor) -> _ImageEntry:
        """One forward that records every candidate layer's output and gradient edge."""
        modules = dict(self.model.named_modules())
        targets = {name: modules[name] for name in self.layers}
        while True:
            with (
                evaluating(self.model),
                torch.inference_mode(False),
                torch.enable_grad(),
                recording(targets, clone=self._clone) as records,
            ):
                # The input requires grad so the graph exists even with frozen parameters;
                # gradients still go only where autograd.grad asks (never into .grad).
                scores = scores_of(self.model(batch.clone().requires_grad_(True)), self.score_fn)
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

    def _gradcam_alphas(
        self, entry: _ImageEntry, classes: tuple[int, ...], index: int
    ) -> dict[str, torch.Tensor]:
        """Alpha of every layer from ``index`` on for these classes: cached, or one backward."""
        known = entry.alphas.get(classes)
        if known is not None and known[0] <= index:
            return known[1]
        # Go as deep as any layer asked for before, so one backward per class serves them all.
        self._depth = depth = min(index, self._depth)
        names = self.layers[depth:]
        edges: dict[tuple[int, int], GradientEdge] = {}
        for name in names:
            edge = entry.records[name].edge
            if edge is not None:
                edges.setdefault((id(edge.node), edge.output_nr), edge)
        with torch.inference_mode(False), torch.enable_grad():
            grads = torch.autograd.grad(
                ClassScore(classes)(entry.scores),
                list(edges.values()),
                retain_graph=True,
                allow_unused=True,
            )
        self._backwards += 1
        by_edge = dict(zip(edges, grads, strict=True))
        alphas: dict[str, torch.Tensor] = {}
        for name in names:
            edge = entry.records[name].edge
            grad = by_edge.get((id(edge.node), edge.output_nr)) if edge is not None else None
            channels = self.layer_shapes[name][0]
            alphas[name] = (
                gradcam_weights(grad.float())
                if grad is not None
                else torch.zeros(len(classes), channels, device=self.device)
            )
        entry.alphas[classes] = (depth, alphas)
        self._cache.shrink()
        return alphas

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
        maps: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        layer: str,
        counterfactual: bool,
        method: str,
        cached: bool,
    ) -> CamResult:
        """Assemble a CamResult on the CPU, squeezing the batch axis for a single image."""
        probabilities = scores.softmax(dim=1)
        rows = range(len(classes))
        score = tuple(float(scores[i, c]) for i, c in zip(rows, classes, strict=True))
        prob = tuple(float(probabilities[i, c]) for i, c in zip(rows, classes, strict=True))
        names = tuple(self.classes[c] for c in classes)
        heatmap, coarse, weights, activations = (
            t.detach().float().cpu() if batched else t.detach().float().cpu()[0] for t in maps
        )
        common = {"layer": layer, "counterfactual": counterfactual, "method": method}
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
                cached=cached,
                **common,  # type: ignore[arg-type]
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
            cached=cached,
            **common,  # type: ignore[arg-type]
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
