"""Audit results on disk: a Parquet dataset written as it is produced, resumable by id.

The output is a folder (``audit.parquet/``) of ``part-NNNNNN.parquet`` files plus
``_audit.json`` with the run's settings. Each part is written to a hidden temporary file and
renamed when complete, so a run stopped at any moment leaves only whole parts; resuming reads
the ids already written and explains only the rest. ``pandas.read_parquet(path)`` and
``pyarrow.parquet.read_table(path)`` read the folder as one table (they skip names starting
with ``_`` or ``.``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "MATCHING_KEYS",
    "AuditStore",
    "is_audit",
    "read_config",
    "require_pyarrow",
    "schema",
]

CONFIG_NAME = "_audit.json"
FORMAT_VERSION = 2
PART_PREFIX = "part-"

MATCHING_KEYS = (
    "format",
    "model",
    "classes",
    "layer",
    "method",
    "target",
    "counterfactual",
    "top_k",
    "regions",
    "tolerance",
)
"""Settings that must equal the stored ones for a run to resume (the rest may differ)."""


def require_pyarrow() -> Any:
    """Import pyarrow, or say which extra brings it."""
    try:
        import pyarrow
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the audit writes Parquet with pyarrow, which is not installed: "
            'pip install "camwidgets[audit]"'
        ) from None
    return pyarrow


def schema() -> pa.Schema:
    """The columns of every audit table (one row per image).

    ``coarse`` is the signed map before ReLU, float16, row-major ``coarse_h x coarse_w``;
    statistics are taken on the ReLU'd map resized to the model input (``input_h x input_w``).
    Null means unknown (no label, no mask) or undefined (an all-zero map has no peak).
    ``pred_place`` and ``label_place`` are set for mistakes (a label the top-1 differs from) on
    items with ``places``: where the maps of the predicted and of the true class peak (a
    place's name, ``"background"``, or ``"nowhere"`` for an all-zero map).
    """
    pa = require_pyarrow()
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("index", pa.int64()),
            pa.field("label", pa.int32()),
            pa.field("label_name", pa.string()),
            pa.field("target", pa.int32(), nullable=False),
            pa.field("target_name", pa.string(), nullable=False),
            pa.field("score", pa.float32(), nullable=False),
            pa.field("probability", pa.float32(), nullable=False),
            pa.field("correct", pa.bool_()),
            pa.field("top_classes", pa.list_(pa.int32()), nullable=False),
            pa.field("top_probabilities", pa.list_(pa.float32()), nullable=False),
            pa.field("input_h", pa.int32(), nullable=False),
            pa.field("input_w", pa.int32(), nullable=False),
            pa.field("coarse_h", pa.int32(), nullable=False),
            pa.field("coarse_w", pa.int32(), nullable=False),
            pa.field("coarse", pa.list_(pa.float16()), nullable=False),
            pa.field("mass", pa.float32(), nullable=False),
            pa.field("peak_row", pa.int32()),
            pa.field("peak_col", pa.int32()),
            pa.field("peak_y", pa.float32()),
            pa.field("peak_x", pa.float32()),
            pa.field("regions", pa.list_(pa.float32())),
            pa.field("in_mask", pa.float32()),
            pa.field("hit_mask", pa.bool_()),
            pa.field("in_boxes", pa.float32()),
            pa.field("hit_boxes", pa.bool_()),
            pa.field("pred_place", pa.string()),
            pa.field("label_place", pa.string()),
        ]
    )


def is_audit(path: str | Path) -> bool:
    """Whether ``path`` is an audit folder written by this module."""
    return (Path(path) / CONFIG_NAME).is_file()


def read_config(path: str | Path) -> dict[str, Any]:
    """The settings stored with an audit."""
    path = Path(path)
    if not is_audit(path):
        raise ValueError(f"{str(path)!r} is not an audit (no {CONFIG_NAME} inside)")
    config: dict[str, Any] = json.loads((path / CONFIG_NAME).read_text())
    return config


def _parts(path: Path) -> list[Path]:
    """The complete part files, in write order."""
    return sorted(p for p in path.glob(f"{PART_PREFIX}*.parquet") if p.is_file())


class AuditStore:
    """Appends result tables to an audit folder, flushing whole part files.

    Args:
        path: the audit folder (created if missing).
        config: the run's settings (JSON-able); stored, and compared on resume.
        resume: continue an existing audit of the same settings instead of refusing.
        overwrite: delete an existing audit (or a file) at ``path`` first.
        rows_per_part: flush once this many rows are buffered.
        seconds_per_part: flush buffered rows at least this often, bounding what a stop loses.

    Raises:
        FileExistsError: ``path`` exists and neither ``resume`` nor ``overwrite`` was asked.
        ValueError: resuming an audit made with different settings; ``path`` is a folder that
            is not an audit (never deleted).
    """

    def __init__(
        self,
        path: str | Path,
        config: Mapping[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        rows_per_part: int = 4096,
        seconds_per_part: float = 30.0,
    ) -> None:
        require_pyarrow()
        self.path = Path(path)
        self.config = dict(config)
        self.rows_per_part = rows_per_part
        self.seconds_per_part = seconds_per_part
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        self._last_flush = time.monotonic()
        self.written: frozenset[str] = frozenset()
        self.rows_written = 0
        self._prepare(resume=resume, overwrite=overwrite)

    def _prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Create, clear or reopen the folder as asked."""
        path = self.path
        if path.exists() or path.is_symlink():
            if overwrite:
                self._remove()
            elif not (resume and is_audit(path)):
                hint = "resume it or overwrite it" if is_audit(path) else "choose another path"
                raise FileExistsError(f"{str(path)!r} already exists; {hint}")
        if path.exists():
            stored = read_config(path)
            differ = [k for k in MATCHING_KEYS if stored.get(k) != self.config.get(k)]
            if differ:
                raise ValueError(
                    f"cannot resume {str(path)!r}: it was written with different "
                    f"{', '.join(differ)} (stored {[stored.get(k) for k in differ]!r}, asked "
                    f"{[self.config.get(k) for k in differ]!r}); overwrite it or pick another path"
                )
            for stray in path.glob(".*.tmp"):
                stray.unlink()
            self.written = self.read_ids()
            self.rows_written = len(self.written)
            return
        path.mkdir(parents=True)
        self._write_json(path / CONFIG_NAME, self.config)

    def _remove(self) -> None:
        """Delete what is at ``path``: a file, or an audit folder; never a foreign folder."""
        path = self.path
        if path.is_dir() and not path.is_symlink():
            if not is_audit(path) and any(path.iterdir()):
                raise ValueError(
                    f"{str(path)!r} is a folder that is not an audit; refusing to delete it"
                )
            shutil.rmtree(path)
        else:
            path.unlink()

    def read_ids(self) -> frozenset[str]:
        """Ids in the complete parts."""
        import pyarrow.parquet as pq

        ids: set[str] = set()
        for part in _parts(self.path):
            ids.update(pq.read_table(part, columns=["id"]).column("id").to_pylist())
        return frozenset(ids)

    def append(self, table: pa.Table) -> None:
        """Buffer ``table``; write a part when enough rows or time has gone by."""
        if table.num_rows == 0:
            return
        self._buffer.append(table.cast(schema()))
        self._buffered += table.num_rows
        waited = time.monotonic() - self._last_flush
        if self._buffered >= self.rows_per_part or waited >= self.seconds_per_part:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one complete part file."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables(self._buffer)
        existing = _parts(self.path)
        number = int(existing[-1].stem[len(PART_PREFIX) :]) + 1 if existing else 0
        final = self.path / f"{PART_PREFIX}{number:06d}.parquet"
        temporary = self.path / f".{final.name}.tmp"
        meta = {b"camwidgets.audit": json.dumps(self.config).encode()}
        pq.write_table(table.replace_schema_metadata(meta), temporary, compression="zstd")
        os.replace(temporary, final)  # atomic: readers and resumes see whole parts only
        self.rows_written += table.num_rows
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> None:
        """Flush what is left."""
        self.flush()

    @staticmethod
    def _write_json(path: Path, data: Mapping[str, Any]) -> None:
        """Write JSON atomically."""
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temporary, path)
