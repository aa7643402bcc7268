"""Which modules give spatial maps (N, C, h, w), in forward order, with their shapes."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .capture import Record, evaluating, recording, unrecoverable

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


def discover(model: nn.Module, example: torch.Tensor, score_fn: ScoreFn | None) -> Discovery:
    """Run one forward on ``example`` and find spatial layers, classes and a CAM head."""
    modules = {name: module for name, module in model.named_modules() if name}
    with (
        evaluating(model),
        torch.inference_mode(False),
        torch.enable_grad(),
        recording(modules) as records,
    ):
        scores = scores_of(model(example.detach().clone().requires_grad_(True)), score_fn)
        ordered = sorted(records.items(), key=lambda item: item[1].order)
        candidates = tuple(
            (name, _chw(record.output))
            for name, record in ordered
            if is_spatial(record.output) and record.edge is not None
        )
        outputs = {name: describe(record.output) for name, record in ordered}
        cam = _find_cam_head(records, dict(candidates), scores)
        clone = unrecoverable(records)
    return Discovery(candidates, outputs, int(scores.shape[1]), cam, clone)


def _chw(tensor: torch.Tensor) -> tuple[int, int, int]:
    """(C, h, w) of an (N, C, h, w) tensor."""
    return int(tensor.shape[1]), int(tensor.shape[2]), int(tensor.shape[3])


def _find_cam_head(
    records: dict[str, Record], candidates: dict[str, tuple[int, int, int]], scores: torch.Tensor
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
            for name in candidates
            if records[name].output.shape[1] == pooled.shape[1]
            and not records[name].overwritten
            and torch.allclose(
                records[name].output.float().mean(dim=(2, 3)),
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
        raise ValueError(
            f"layer {layer!r} is not a spatial layer: its output is {outputs[layer]}; "
            f"Grad-CAM needs an (N, C, h, w) map with h*w > 1. Candidates: {_some(candidates)}"
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
