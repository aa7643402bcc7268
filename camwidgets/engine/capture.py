"""Per-call forward hooks and train/eval flags: the model is always left exactly as found."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.autograd.graph import GradientEdge, get_gradient_edge


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Put every module in eval mode for the duration, then restore each one's own flag.

    Restoring per module (not ``model.train(previous)``) keeps mixed states intact, such as a
    frozen BatchNorm left in eval inside a training model.
    """
    flags = [(module, module.training) for module in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for module, training in flags:
            module.training = training


@dataclass(eq=False)
class Record:
    """What one module produced during one forward: the output, its gradient edge, its inputs.

    ``edge`` is taken when the output is produced, so gradients asked of it are gradients with
    respect to this very output even if a later in-place op (``out += identity``,
    ``ReLU(inplace=True)``) rewrites the tensor.
    """

    module: nn.Module
    output: torch.Tensor
    version: int
    edge: GradientEdge | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    arg_versions: tuple[int, ...]
    order: int
    cloned: bool = False
    key: str | None = None  # the entry of a dict output this record is (``module:key``)
    _value: torch.Tensor | None = field(default=None, repr=False)

    @property
    def overwritten(self) -> bool:
        """Whether a later in-place op changed the output after the module returned it."""
        return not self.cloned and self.output._version != self.version

    @property
    def recomputable(self) -> bool:
        """Whether the module's own inputs are unchanged, so its output can be recomputed."""
        tensors = [a for a in self.args if isinstance(a, torch.Tensor)]
        return all(t._version == v for t, v in zip(tensors, self.arg_versions, strict=True))

    def release_inputs(self) -> None:
        """After the forward: drop the inputs unless the output was overwritten.

        The inputs are kept only to recompute an overwritten output; holding them otherwise
        would keep every recorded layer's input alive with the cache entry (a forward without
        a graph would then cost as much memory as one with it).
        """
        if not self.overwritten:
            self._value = self.output.detach()
            self.args, self.kwargs, self.arg_versions = (), {}, ()

    def value(self, model: nn.Module) -> torch.Tensor:
        """The output as the module produced it (detached), recomputing it if overwritten."""
        if self._value is None:
            if self.overwritten:
                # Re-running one layer on its intact inputs, in eval mode and without hooks,
                # reproduces what it produced; copying every such output during the forward
                # instead would cost ~20% of a ResNet-50 forward.
                with evaluating(model), torch.no_grad():
                    value = self.module.forward(*self.args, **self.kwargs)
                    self._value = (value if self.key is None else value[self.key]).detach()
            else:
                self._value = self.output.detach()
        return self._value


def _edge(tensor: torch.Tensor) -> GradientEdge | None:
    """The autograd edge of a tensor, or None when nothing upstream requires a gradient."""
    return get_gradient_edge(tensor) if tensor.requires_grad else None


def split_name(name: str) -> tuple[str, str | None]:
    """``"backbone.fpn:0"`` -> ``("backbone.fpn", "0")``: a module and an entry of its dict."""
    module, sep, key = name.partition(":")
    return module, key if sep else None


@contextmanager
def recording(
    modules: Mapping[str, nn.Module], clone: frozenset[str] = frozenset()
) -> Iterator[dict[str, Record]]:
    """Record the tensor output of each named module for one forward; hooks live only inside.

    Modules in ``clone`` hand a copy downstream so their own output survives later in-place
    ops; that is only needed when the inputs were overwritten too, so recomputing is impossible.
    When a module runs several times in one forward, its last call is the one recorded.

    A module returning a dict of tensors (a feature pyramid) is recorded entry by entry:
    ``"name:key"`` asks for one entry; a plain ``"name"`` records every entry as ``name:key``.
    """
    records: dict[str, Record] = {}
    counter = iter(range(1 << 62))
    groups: dict[int, tuple[nn.Module, list[str]]] = {}
    for name, module in modules.items():
        groups.setdefault(id(module), (module, []))[1].append(name)

    def record(name: str, module: nn.Module, value: torch.Tensor, call: tuple[Any, ...]) -> None:
        args, kwargs, key = call
        records[name] = Record(
            module=module,
            output=value,
            version=value._version,
            edge=_edge(value),
            args=args,
            kwargs=kwargs,
            arg_versions=tuple(a._version for a in args if isinstance(a, torch.Tensor)),
            order=next(counter),
            cloned=name in clone,
            key=key,
        )

    def make_hook(names: list[str]) -> Any:
        def hook(
            module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
        ) -> Any:
            if isinstance(output, torch.Tensor):
                plain = [n for n in names if split_name(n)[1] is None]
                for name in plain:
                    record(name, module, output, (args, kwargs, None))
                return output.clone() if any(n in clone for n in plain) else None
            if isinstance(output, Mapping):
                for name in names:
                    base, key = split_name(name)
                    entries = [key] if key is not None else list(output)
                    for k in entries:
                        value = output.get(k)
                        if isinstance(value, torch.Tensor):
                            record(f"{base}:{k}", module, value, (args, kwargs, str(k)))
            return None

        return hook

    handles = []
    try:
        for module, names in groups.values():
            handles.append(module.register_forward_hook(make_hook(names), with_kwargs=True))
        yield records
    finally:
        for handle in handles:
            handle.remove()


def unrecoverable(records: Mapping[str, Record]) -> frozenset[str]:
    """Names whose output was overwritten in place and whose inputs were too."""
    return frozenset(n for n, r in records.items() if r.overwritten and not r.recomputable)
