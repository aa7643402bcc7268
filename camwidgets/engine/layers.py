"""Which modules give maps over the image grid, in which layout, in forward order; the default
layer and the readable stages."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.graph import GradientEdge

from .capture import Record, evaluating, recording, unrecoverable
from .layouts import Layout, Size, attention_internal, detect

ScoreFn = Callable[[object], torch.Tensor]


@dataclass(frozen=True)
class CamHead:
    """A global-average-pool + linear head: the linear weights and the layers it pools."""

    weight: torch.Tensor
    layers: frozenset[str]


@dataclass(frozen=True)
class Discovery:
    """What one forward pass on an example input reveals about a model."""

    candidates: tuple[tuple[str, tuple[int, int, int]], ...]
    outputs: dict[str, str]
    num_classes: int
    cam: CamHead | None
    clone: frozenset[str]
    layouts: dict[str, Layout]
    size: Size
    informative: frozenset[str]
    rearranged: frozenset[str]
    internal: frozenset[str]


def is_spatial(tensor: object) -> bool:
    """A float (N, C, h, w) tensor with more than one spatial cell (so not a global pool)."""
    return (
        isinstance(tensor, torch.Tensor)
        and tensor.dim() == 4
        and torch.is_floating_point(tensor)
        and tensor.shape[-1] * tensor.shape[-2] > 1
    )


def describe(output: object) -> str:
    """A short description of a module output for error messages."""
    if isinstance(output, torch.Tensor):
        return f"{tuple(output.shape)} {output.dtype}".replace("torch.", "")
    return type(output).__name__


def scores_of(output: object, score_fn: ScoreFn | None) -> torch.Tensor:
    """The (N, classes) score matrix of a model output, checked."""
    scores = score_fn(output) if score_fn is not None else output
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        got = describe(scores)
        hint = (
            "score_fn must return an (N, classes) tensor"
            if score_fn is not None
            else "pass score_fn= to turn the model's output (e.g. a dict or tuple) into one"
        )
        raise ValueError(f"model output is {got}, expected raw class scores (N, classes); {hint}")
    return scores


def discover(
    model: nn.Module,
    example: torch.Tensor,
    score_fn: ScoreFn | None,
    overrides: Mapping[str, Layout | str] | None = None,
    keep: dict[str, object] | None = None,
) -> Discovery:
    """Run ``example`` (one or two images) through the model; find the maps over the image grid
    and their layouts (see ``layouts.detect``), the classes, a CAM head, and which maps the
    score reads.

    ``informative`` holds the last maps whose gradient (of a random mix of all class scores) is
    non-zero at more than one grid cell. It tells a ViT's last block input norm (whose patch
    tokens feed the class token through attention) from every later token map, whose patch
    tokens no longer reach the head (the head reads the class token only): a map of those is
    zero by construction.

    ``keep``, when given, receives the forward's ``records`` and ``scores`` (with their graph),
    so the caller can prove the pooled head without a forward of its own.
    """
    overrides = dict(overrides or {})
    modules = {name: module for name, module in model.named_modules() if name}
    internal = attention_internal(model) - frozenset(overrides)
    size: Size = (int(example.shape[-2]), int(example.shape[-1]))
    with (
        evaluating(model),
        torch.inference_mode(False),
        torch.enable_grad(),
        recording(modules) as records,
    ):
        scores = scores_of(model(example.detach().clone().requires_grad_(True)), score_fn)
    # The recording hooks are gone here: detection's own forwards must not overwrite records.
    ordered = sorted(records.items(), key=lambda item: item[1].order)
    with torch.inference_mode(False), torch.enable_grad():
        pool = {
            name: record.output[:1]  # detection reads one image's shapes
            for name, record in ordered
            if record.edge is not None
            and torch.is_floating_point(record.output)
            and record.output.dim() in (3, 4)
            and record.output.shape[0] == example.shape[0]
            and name not in internal
            and name not in overrides
        }
        layouts = detect(model, example[:1], pool) if pool else {}
        layouts.update(_overridden(overrides, records, layouts, size))
        maps = {
            name: layouts[name].to_nchw(record.output, size)
            for name, record in ordered
            if name in layouts and record.edge is not None
        }
        candidates = tuple(
            (name, _chw(m)) for name, m in maps.items() if m.shape[-1] * m.shape[-2] > 1
        )
        # Described for one image, as errors about a layer's output show it.
        outputs = {name: describe(_one(record.output, example)) for name, record in ordered}
        cam = _find_cam_head(records, {n: maps[n] for n, _ in candidates}, scores)
        clone = unrecoverable(records)
        names = [n for n, _ in candidates]
        rearranged = _rearranged(records, names)
        # When the scores are a linear layer of some features, differentiate the features: the
        # same maps reach them, and a head initialised to zero (torchvision's ViT with
        # weights=None) would make every score, and so every gradient, constant.
        target = _head_input(records, scores)
        informative = _informative(target, records, layouts, names, size, rearranged)
    kept = {n: layouts[n] for n, _ in candidates}
    if keep is not None:
        keep.update(records=records, scores=scores)
    return Discovery(
        candidates,
        outputs,
        int(scores.shape[1]),
        cam,
        clone,
        kept,
        size,
        informative,
        rearranged,
        internal,
    )


def _overridden(
    overrides: Mapping[str, Layout | str],
    records: Mapping[str, Record],
    detected: Mapping[str, Layout],
    size: Size,
) -> dict[str, Layout]:
    """The layouts the user stated, "tokens" completed with a detected or square grid."""
    layouts: dict[str, Layout] = {}
    for name, spec in overrides.items():
        record = records.get(name)
        if record is None:
            raise ValueError(
                f"layouts names {name!r}, but that module gave no tensor output in the forward"
            )
        if isinstance(spec, str):  # "tokens": the grid of a map found at this size, or square
            count = int(record.output.shape[1]) if record.output.dim() == 3 else 0
            grids = sorted(
                (count - h * w, (h, w))
                for h, w in {
                    _chw(lay.to_nchw(records[n].output, size))[1:]
                    for n, lay in detected.items()
                    if lay.kind != "tokens"
                }
                if count - h * w >= 0
            )
            if grids:
                prefix, grid = grids[0]
            else:
                side = math.isqrt(max(count, 1))
                prefix, grid = count - side * side, (side, side)
            spec = Layout("tokens", prefix, ((size, grid),))
        try:
            spec.to_nchw(record.output, size)
        except Exception as error:  # the user's callable may fail in any way: say where
            raise ValueError(
                f"layouts[{name!r}]: {record.output.shape} output cannot be read as "
                f"{spec.kind}: {error}"
            ) from None
        layouts[name] = spec
    return layouts


def _informative(
    target: torch.Tensor,
    records: Mapping[str, Record],
    layouts: Mapping[str, Layout],
    names: Sequence[str],
    size: Size,
    skip: frozenset[str] = frozenset(),
) -> frozenset[str]:
    """Maps whose gradient of a random mix of ``target``'s columns is non-zero at >1 grid cell.

    Searched from the last map backwards, in growing chunks, until one not in ``skip`` is found:
    the default needs no more, and each backward then stops near the head (a ViT's last block).
    """
    generator = torch.Generator().manual_seed(3)
    mix = torch.randn(target.shape[1], generator=generator).to(target)
    objective = (target * mix).sum()
    informative: set[str] = set()
    remaining = list(names)
    step = 8
    while remaining and not (informative - skip):
        # Growing chunks: a short backward when the default is near the head, and never more
        # than about two full backwards when nothing is informative.
        chunk, remaining, step = remaining[-step:], remaining[:-step], 2 * step
        edges: dict[tuple[int, int], GradientEdge] = {}
        for name in chunk:
            edge = records[name].edge
            if edge is not None:
                edges.setdefault((id(edge.node), edge.output_nr), edge)
        if not edges:
            continue
        grads = torch.autograd.grad(
            objective, list(edges.values()), retain_graph=True, allow_unused=True
        )
        by_edge = dict(zip(edges, grads, strict=True))
        for name in chunk:
            edge = records[name].edge
            grad = by_edge.get((id(edge.node), edge.output_nr)) if edge is not None else None
            if grad is not None:
                cells = layouts[name].to_nchw(grad, size).abs().sum(dim=(0, 1))
                if int((cells > 0).sum()) > 1:
                    informative.add(name)
    return frozenset(informative)


def _head_input(records: Mapping[str, Record], scores: torch.Tensor) -> torch.Tensor:
    """The (N, features) input of the linear layer that gives the scores, else the scores."""
    linears = [r for r in records.values() if isinstance(r.module, nn.Linear) and r.args]
    if not linears:
        return scores
    head = max(linears, key=lambda r: r.order)
    features = head.args[0]
    if (
        isinstance(features, torch.Tensor)
        and features.dim() == 2
        and features.requires_grad
        and head.output.shape == scores.shape
        and torch.equal(head.output, scores)
    ):
        return features
    return scores


def _rearranged(records: Mapping[str, Record], names: Sequence[str]) -> frozenset[str]:
    """Maps that only pass an earlier map on: a view in another layout (Swin's final
    ``permute``) or an ``nn.Identity`` (timm ConvNeXt's ``norm_pre``)."""
    first: dict[int, torch.Tensor] = {}
    views = set()
    for name in names:
        out = records[name].output
        key = out.untyped_storage().data_ptr()
        earlier = first.setdefault(key, out)
        relaid = earlier.shape != out.shape or earlier.stride() != out.stride()
        passed = isinstance(records[name].module, nn.Identity)
        if (earlier is not out and relaid) or (earlier is out and passed):
            views.add(name)
    return frozenset(views)


def default_layer(names: Sequence[str], found: Discovery) -> str:
    """The last map the score reads at more than one cell, not a mere re-layout; else the last.

    That is the last map before the head: ResNet ``layer4``, VGG/AlexNet/DenseNet ``features``
    (adaptive pools are no maps: their grid does not follow the input), ConvNeXt's last stage,
    Swin's final ``norm`` (not the ``permute`` after it), and a ViT's last-block input norm.
    """
    for name in reversed(names):
        if name in found.informative and name not in found.rearranged:
            return name
    return names[-1]


def stages(
    model: nn.Module, names: Sequence[str], shapes: Mapping[str, tuple[int, int, int]], default: str
) -> list[str]:
    """The readable subset of ``names``: the model's stages or blocks, plus the default layer.

    Among modules with at least two children that are containers and maps, the one whose
    children span the most grid sizes (ResNet's ``layer1..4``, Swin/ConvNeXt stages), then the
    most children (a ViT's blocks), then the shallowest. A plain Sequential (VGG, AlexNet) gives
    the last map at each grid size instead: the ends of its stages.
    """
    chosen = set(names)
    best: tuple[tuple[int, int, int], list[str]] | None = None
    for parent, module in model.named_modules():
        kids = [
            f"{parent}.{child}" if parent else child
            for child, sub in module.named_children()
            if next(sub.children(), None) is not None
        ]
        kids = [k for k in kids if k in chosen]
        if len(kids) < 2:
            continue
        key = (len({shapes[k][1:] for k in kids}), len(kids), -parent.count("."))
        if best is None or key > best[0]:
            best = (key, kids)
    if best is not None:
        picked = set(best[1])
    else:
        picked = {
            name
            for name, after in zip(names, [*names[1:], None], strict=True)
            if after is None or shapes[after][1:] != shapes[name][1:]
        }
    picked.add(default)
    return [n for n in names if n in picked]


def _one(output: torch.Tensor, example: torch.Tensor) -> torch.Tensor:
    """One image's part of an output that has the example batch's leading axis."""
    batched = output.dim() > 0 and output.shape[0] == example.shape[0]
    return output[:1] if batched else output


def _chw(tensor: torch.Tensor) -> tuple[int, int, int]:
    """(C, h, w) of an (N, C, h, w) tensor."""
    return int(tensor.shape[1]), int(tensor.shape[2]), int(tensor.shape[3])


def _find_cam_head(
    records: dict[str, Record], maps: dict[str, torch.Tensor], scores: torch.Tensor
) -> CamHead | None:
    """Detect scores = Linear(mean_hw(A)) for some candidate A: CAM is defined exactly there."""
    linears = [r for r in records.values() if isinstance(r.module, nn.Linear) and r.args]
    if not linears:
        return None
    head = max(linears, key=lambda r: r.order)
    pooled = head.args[0]
    same_scores = head.output.shape == scores.shape and torch.allclose(head.output, scores)
    if not same_scores or not isinstance(pooled, torch.Tensor) or pooled.dim() != 2:
        return None
    with torch.no_grad():
        layers = frozenset(
            name
            for name, m in maps.items()
            if m.shape[1] == pooled.shape[1]
            and not records[name].overwritten
            and torch.allclose(
                m.float().mean(dim=(2, 3)),
                pooled.float(),
                # The model pooled in its own precision (bfloat16/float16: ~1e-2 relative).
                rtol=max(1e-5, 4 * torch.finfo(pooled.dtype).eps),
                atol=1e-5,
            )
        )
    if not layers:
        return None
    assert isinstance(head.module, nn.Linear)
    return CamHead(weight=head.module.weight.detach(), layers=layers)


def resolve_layer(
    layer: str | nn.Module | None,
    model: nn.Module,
    candidates: Sequence[str],
    outputs: dict[str, str],
    default: str,
    internal: frozenset[str] = frozenset(),
) -> str:
    """Map a name, a module or None to a candidate layer name, or raise a precise error."""
    if layer is None:
        return default
    if isinstance(layer, nn.Module):
        names = [name for name, module in model.named_modules() if module is layer]
        if not names:
            raise ValueError(
                f"the {type(layer).__name__} module given as layer is not in the model"
            )
        usable = [n for n in names if n in candidates]
        if usable:
            return str(usable[0])
        layer = names[0]
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a name, a module or None, got {type(layer).__name__}")
    if layer in candidates:
        return layer
    if layer in outputs:
        why = (
            "it is computed inside an attention module (q, k, v, attention weights: not a map "
            "of the image)"
            if layer in internal
            else "no reading of it as (N, C, h, w), (N, h, w, C) or tokens (N, T, C) follows "
            "the input's grid"
        )
        raise ValueError(
            f"layer {layer!r} is not a spatial layer: its output is {outputs[layer]} and "
            f"{why}; pass layouts={{{layer!r}: ...}} to GradCAM to state "
            f"its layout. Candidates: {_some(candidates)}"
        )
    if layer == "" or layer in dict(model.named_modules()):
        raise ValueError(
            f"layer {layer!r} gives no tensor output to explain. Candidates: {_some(candidates)}"
        )
    close = difflib.get_close_matches(layer, list(candidates), n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    raise ValueError(f"unknown layer {layer!r}; {hint}candidates: {_some(candidates)}")


def _some(names: Sequence[str], limit: int = 12) -> str:
    """A readable, bounded list of names (the last ones are the usual choices)."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[: limit // 2])}, … ({len(names) - limit} more), " + ", ".join(
        names[-limit // 2 :]
    )
