"""A progress bar that appears only when a run takes more than a moment."""

from __future__ import annotations

from typing import Any

DELAY_S = 1.0
"""Seconds a run may take before its bar is drawn (when ``progress=None``)."""


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "it") -> Any:
    """A ``tqdm.auto`` bar: always shown (True), never (False), or after ``DELAY_S`` (None).

    ``tqdm.auto`` draws a notebook widget in Jupyter and text elsewhere; it is imported here,
    at call time, so importing the engine never pulls in widget code.
    """
    if progress is not None and not isinstance(progress, bool):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        leave=False,
        disable=progress is False,
        delay=0.0 if progress else DELAY_S,
    )
