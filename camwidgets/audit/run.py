"""``audit(data, model, out)``: Grad-CAM over a whole dataset, into Parquet, locally or on Ray."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from camwidgets.engine import GradCAM
from camwidgets.engine.inputs import Transform

from .compute import Prepared, Settings, explain_items, prepare_item, resolve_target
from .results import Audit
from .sources import IndexedSource, Item, Source, as_source
from .spec import EngineSpec, engine_spec
from .stats import regions_from
from .store import FORMAT_VERSION, AuditStore, require_pyarrow

__all__ = ["EngineSpec", "audit", "engine_spec"]

Backend = Literal["local", "ray"]


def fingerprint(model: nn.Module) -> str:
    """A content hash of the model's parameters and buffers, to refuse resuming with another."""
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        data = tensor.detach().cpu().contiguous().reshape(-1)  # 1-D: 0-d tensors cannot .view
        digest.update(f"{name}|{tuple(tensor.shape)}|{data.dtype}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return f"{type(model).__name__}:{digest.hexdigest()}"


def audit(
    data: Any,
    model: nn.Module | GradCAM | str,
    out: str | Path,
    *,
    classes: Sequence[str] | None = None,
    transform: Transform | None = None,
    layer: str | None = None,
    method: str = "gradcam",
    target: str | int = "pred",
    counterfactual: bool = False,
    top_k: int = 5,
    regions: int | tuple[int, int] | Mapping[str, Sequence[float]] = 4,
    tolerance: float = 0.0,
    batch_size: int = 64,
    backend: Backend = "local",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    device: str | torch.device | None = None,
    address: str | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_gpus: float = 0.0,
    num_cpus: float | None = None,
    seconds_per_part: float = 30.0,
    workers: int = 0,
) -> Audit:
    """Explain every image of ``data`` and write one row per image to the Parquet folder ``out``.

    Each row holds the id, the label (when known), the top-``k`` predictions, the explained class
    and its score, the coarse map (float16) and statistics of the map resized to the input:
    peak position, share of the mass on each region, and -- when the data gives object masks
    or boxes -- the share inside them and the pointing-game hit. With ``M`` the ReLU'd map and
    ``R`` a region (or mask):

        share(R) = sum_{(i,j) in R} M_ij / sum_ij M_ij
        hit(R)   = argmax M lies in R (within ``tolerance`` pixels)

    Rows are written as they are produced (a part file at least every ``seconds_per_part``), so
    a stopped run resumes with ``resume=True`` without explaining what is written.

    Args:
        data: a folder of images (class sub-folders give labels), an image file, a .txt list of
            paths, ``"zoo:scenes:N[:seed=S][:mark=none|correct|swapped][:objects=1|2]"``, a list
            of paths, a torch ``Dataset`` or ``DataLoader``, or a Ray ``Dataset`` (columns
            ``image`` or ``path``, and ``id``, ``label``, ``mask``, ``boxes`` when known).
        model: a ``torch.nn.Module``, a ``GradCAM`` engine, or ``"zoo:shapes"``/``"zoo:shortcut"``.
        out: the output folder (``audit.parquet``).
        classes, transform: as for ``GradCAM`` (not with an engine).
        layer: layer to explain (default: the engine's last spatial layer).
        method: an engine method ("gradcam", "cam", ...).
        target: "pred" (top-1), "label", or a class index or name.
        counterfactual: explain the counterfactual map.
        top_k: predictions stored per image.
        regions: ``n`` for an n x n grid, ``(rows, cols)``, or ``{name: (top, left, bottom,
            right)}`` in fractions of the image.
        tolerance: pointing-game tolerance in model-input pixels.
        batch_size: images per engine call (per Ray batch).
        backend: "local" (in-process, on the model's device) or "ray" (Ray Data).
        resume: continue an audit of the same settings at ``out``, skipping written ids.
        overwrite: replace whatever audit (or file) is at ``out``.
        progress: show a progress bar (stderr).
        device: local backend: where the engine runs (default: the model's device).
        address: Ray: the cluster to connect to (None: the running one, or start a local one).
        concurrency: Ray: number of actors, or (min, max) for autoscaling (default: 1 per
            ``num_cpus`` or GPU available, at least 1).
        num_gpus: Ray: GPUs per actor (each actor holds one engine on its GPU).
        num_cpus: Ray: CPUs per actor.
        seconds_per_part: longest time buffered rows wait before being written.
        workers: local backend: threads that load and preprocess images ahead of the model
            (0: in the calling thread). Worth it when decoding or the transform, not the
            model, is the bottleneck (a GPU, JPEG folders); the transform must be thread-safe.

    Returns:
        The finished :class:`Audit` (read back from ``out``).

    Raises:
        ValueError, TypeError: bad data, model, layer, method, target or regions -- before any
            model pass; FileExistsError: ``out`` exists without ``resume``/``overwrite``.
        ImportError: pyarrow (``camwidgets[audit]``) or Ray (``camwidgets[ray]``) missing.

    Example:
        >>> from camwidgets.audit import audit
        >>> result = audit("zoo:scenes:64:mark=correct", "zoo:shortcut", "/tmp/a.parquet",
        ...                overwrite=True, progress=False)  # doctest: +SKIP
        >>> result.frame()[["id", "target_name", "peak_y", "peak_x"]].head()  # doctest: +SKIP
    """
    require_pyarrow()
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    for value, what in ((batch_size, "batch_size"), (top_k, "top_k")):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{what} must be a positive int, got {value!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"workers must be a non-negative int, got {workers!r}")
    if workers and backend == "ray":
        raise ValueError("workers is for the local backend; on Ray each actor loads its own")
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number of pixels, got {tolerance!r}")
    if concurrency is not None and not (
        (isinstance(concurrency, int) and not isinstance(concurrency, bool) and concurrency >= 1)
        or (
            isinstance(concurrency, tuple)
            and len(concurrency) == 2
            and all(isinstance(v, int) and v >= 1 for v in concurrency)
            and concurrency[0] <= concurrency[1]
        )
    ):
        raise ValueError(f"concurrency must be a positive int or (min, max), got {concurrency!r}")
    if resume and overwrite:
        raise ValueError("resume=True and overwrite=True contradict each other; pick one")
    if backend == "local" and (address is not None or concurrency is not None or num_gpus):
        raise ValueError("address, concurrency and num_gpus are Ray options: use backend='ray'")

    if isinstance(model, GradCAM) and device is not None:
        raise TypeError("with a GradCAM engine as the model, give no device: the engine has one")
    spec = engine_spec(model, classes, transform)
    engine = model if isinstance(model, GradCAM) else spec.build(device)
    name = engine.default_layer if layer is None else layer
    if name not in engine.layers:
        raise ValueError(
            f"unknown layer {layer!r}; the engine's layers: {', '.join(engine.layers)}"
        )
    usable = engine.methods(name)
    if method not in usable:
        raise ValueError(
            f"method {method!r} is not usable at {name!r}; usable: {', '.join(usable)}"
        )
    if counterfactual and method == "cam":
        raise ValueError("method 'cam' has no counterfactual")
    settings = Settings(
        layer=name,
        method=method,
        target=resolve_target(target, engine.classes),
        counterfactual=bool(counterfactual),
        top_k=top_k,
        regions=regions_from(regions),
        tolerance=float(tolerance),
    )
    source = as_source(data)
    config: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": fingerprint(engine.model),
        "model_name": spec.model if isinstance(spec.model, str) else type(spec.model).__name__,
        "classes": list(engine.classes),
        "layer": settings.layer,
        "layer_shape": list(engine.layer_shapes[settings.layer]),
        "method": settings.method,
        "target": settings.target,
        "counterfactual": settings.counterfactual,
        "top_k": settings.top_k,
        "regions": [[n, list(b)] for n, b in settings.regions],
        "tolerance": settings.tolerance,
        "source": source.describe(),
        "backend": backend,
    }
    store = AuditStore(
        out, config, resume=resume, overwrite=overwrite, seconds_per_part=seconds_per_part
    )
    try:
        if backend == "ray":
            from .ray_backend import run_ray

            run_ray(
                source,
                spec,
                settings,
                store,
                batch_size=batch_size,
                progress=progress,
                address=address,
                concurrency=concurrency,
                num_gpus=num_gpus,
                num_cpus=num_cpus,
            )
        else:
            run_local(
                engine,
                source,
                settings,
                store,
                batch_size=batch_size,
                progress=progress,
                workers=workers,
            )
    finally:
        store.close()
    return Audit(out, source=source)


def run_local(
    engine: GradCAM,
    source: Source,
    settings: Settings,
    store: AuditStore,
    *,
    batch_size: int,
    progress: bool,
    workers: int = 0,
) -> None:
    """In-process: load items, explain them in batches, append the rows as they come."""
    from tqdm.auto import tqdm

    total = max(len(source) - len(store.written), 0)
    seen: set[str] = set()
    with tqdm(total=total, disable=not progress, unit="img", desc="audit") as bar:
        batch: list[tuple[Item, Prepared]] = []
        for item, tensor in _prepared(engine, source, store.written, workers, batch_size):
            if item.id in seen:
                raise ValueError(f"two items have the id {item.id!r}; ids must be unique")
            seen.add(item.id)
            batch.append((item, tensor))
            if len(batch) == batch_size:
                items, tensors = _split(batch)
                store.append(explain_items(engine, items, settings, tensors))
                bar.update(len(batch))
                batch = []
        if batch:
            items, tensors = _split(batch)
            store.append(explain_items(engine, items, settings, tensors))
            bar.update(len(batch))


def _split(batch: list[tuple[Item, Prepared]]) -> tuple[list[Item], list[Prepared]]:
    """Items and their tensors as two lists."""
    return [item for item, _ in batch], [tensor for _, tensor in batch]


def _prepared(
    engine: GradCAM, source: Source, skip: frozenset[str], workers: int, batch_size: int
) -> Iterator[tuple[Item, Prepared]]:
    """Items with their tensors, in order; with ``workers`` threads loading ahead."""
    if workers == 0:
        for item in source.items(skip=skip):
            yield item, prepare_item(engine, item)
        return
    tasks: Iterator[Callable[[], tuple[Item, Prepared]]]
    if isinstance(source, IndexedSource):
        # The threads load too (a dataset's __getitem__, a scene's drawing), not only decode.
        todo = (i for i in range(len(source)) if source.id_of(i) not in skip)
        tasks = (partial(_load_and_prepare, engine, source, i) for i in todo)
    else:
        tasks = (partial(_prepare_loaded, engine, item) for item in source.items(skip=skip))
    window: deque[Future[tuple[Item, Prepared]]] = deque()
    lookahead = max(2 * batch_size, 4 * workers)  # bounds the memory held by finished items
    pool = ThreadPoolExecutor(workers, thread_name_prefix="camwidgets-audit")
    try:
        for task in tasks:
            window.append(pool.submit(task))
            if len(window) >= lookahead:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _load_and_prepare(engine: GradCAM, source: IndexedSource, index: int) -> tuple[Item, Prepared]:
    """Load item ``index`` and preprocess it (runs in a loader thread)."""
    item = source.load(index)
    return item, prepare_item(engine, item)


def _prepare_loaded(engine: GradCAM, item: Item) -> tuple[Item, Prepared]:
    """Preprocess a loaded item (runs in a loader thread)."""
    return item, prepare_item(engine, item)
