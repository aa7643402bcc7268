"""The Ray Data backend: ``map_batches`` over a pool of actors, one engine per actor.

Indexable sources (folders, path lists, torch datasets, zoo scenes) travel as a small
picklable object: the Ray dataset holds only the indices still to do, and each actor loads its
items itself, so pictures never pass through the driver. A Ray Dataset is mapped as it is
(when resuming, the actors drop the rows whose ids are written). Every actor computes rows with
the same :func:`~camwidgets.audit.compute.explain_items` as the local backend; the driver
streams the result tables into the same Parquet store, so resuming works the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .compute import Settings, explain_items
from .sources import (
    DatasetSource,
    IndexedSource,
    LoaderSource,
    RayDatasetSource,
    Source,
    items_from_columns,
)
from .spec import EngineSpec
from .store import AuditStore

if TYPE_CHECKING:
    import pyarrow as pa


__all__ = ["AuditWorker", "require_ray", "run_ray"]


def require_ray() -> Any:
    """Import Ray (with Ray Data), or say which extra brings it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError(
            'the Ray backend needs Ray Data, which is not installed: pip install "camwidgets[ray]"'
        ) from None
    return ray


class AuditWorker:
    """A Ray actor's callable: builds one engine at start, then explains batch after batch.

    Args:
        spec: how to build the engine (the model travels pickled with it).
        settings: what to explain and measure.
        source: an indexable source to load items from by ``index``; None when the batches
            carry the images themselves (a Ray Dataset).
        device: where this actor's engine runs ("cuda" when the actor holds a GPU).
        skip: ids already written (a resumed Ray Dataset): dropped before explaining.
    """

    def __init__(
        self,
        spec: EngineSpec,
        settings: Settings,
        source: IndexedSource | None,
        device: str | None,
        skip: frozenset[str] = frozenset(),
    ) -> None:
        self.engine = spec.build(device, own=True)
        self.settings = settings
        self.source = source
        self.skip = skip

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        if self.source is not None:
            items = [self.source.load(int(i)) for i in batch["index"]]
        else:
            items = [it for it in items_from_columns(batch) if it.id not in self.skip]
        return explain_items(self.engine, items, self.settings)


def _connect(ray: Any, address: str | None) -> bool:
    """Use the running Ray, connect to ``address``, or start a local instance; True if we did."""
    if ray.is_initialized():
        return False
    if address in (None, "", "local"):
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    return True


def _default_concurrency(ray: Any, num_gpus: float, num_cpus: float | None) -> int:
    """One actor per GPU share, else one per CPU share of the cluster (at least one)."""
    resources = ray.cluster_resources()
    if num_gpus:
        return max(1, int(resources.get("GPU", 0) // num_gpus))
    return max(1, int(resources.get("CPU", 1) // (num_cpus or 1)))


def run_ray(
    source: Source,
    spec: EngineSpec,
    settings: Settings,
    store: AuditStore,
    *,
    batch_size: int,
    progress: bool,
    address: str | None,
    concurrency: int | tuple[int, int] | None,
    num_gpus: float,
    num_cpus: float | None,
) -> None:
    """Run the audit on Ray Data and append every result table to ``store``."""
    ray = require_ray()
    from tqdm.auto import tqdm

    if isinstance(source, LoaderSource):
        dataset = getattr(source.loader, "dataset", None)
        if dataset is None or not hasattr(dataset, "__getitem__"):
            raise ValueError(
                "a DataLoader over an iterable dataset cannot be split across Ray actors; "
                "give a map-style Dataset, or use backend='local'"
            )
        source = DatasetSource(dataset)
    started = _connect(ray, address)
    try:
        written = store.written
        worker_source: IndexedSource | None
        if isinstance(source, IndexedSource):
            todo = [i for i in range(len(source)) if source.id_of(i) not in written]
            total = len(todo)
            if not todo:
                return
            data = ray.data.from_items([{"index": i} for i in todo])
            worker_source = source
        elif isinstance(source, RayDatasetSource):
            data = source.dataset  # resumed: the actors drop the written ids
            total = max(len(source) - len(written), 0)
            worker_source = None
        else:
            raise TypeError(f"the Ray backend cannot read a {type(source).__name__}")
        actors = concurrency or _default_concurrency(ray, num_gpus, num_cpus)
        pool = (
            ray.data.ActorPoolStrategy(min_size=actors[0], max_size=actors[1])
            if isinstance(actors, tuple)
            else ray.data.ActorPoolStrategy(size=actors)
        )
        results = data.map_batches(
            AuditWorker,
            fn_constructor_args=(
                spec,
                settings,
                worker_source,
                "cuda" if num_gpus else None,
                written if worker_source is None else frozenset(),
            ),
            batch_size=batch_size,
            batch_format="numpy",
            compute=pool,
            num_gpus=num_gpus or None,
            num_cpus=num_cpus,
        )
        with tqdm(total=total, disable=not progress, unit="img", desc="audit (ray)") as bar:
            seen: set[str] = set()
            for table in results.iter_batches(batch_format="pyarrow", batch_size=None):
                ids = table.column("id").to_pylist()
                if seen.intersection(ids) or len(set(ids)) != len(ids):
                    raise ValueError("two rows have the same id; ids must be unique")
                seen.update(ids)
                store.append(table)
                bar.update(table.num_rows)
    finally:
        if started:
            ray.shutdown()
