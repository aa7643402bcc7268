"""Measure what widgets send to the front end: messages and bytes, JSON and binary buffers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import ipywidgets


@dataclass
class Traffic:
    """Comm messages sent by widgets while a ``traffic()`` block ran.

    Attributes:
        messages: (widget class name, JSON bytes, binary buffer bytes) per message.
    """

    messages: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Total bytes: JSON text plus binary buffers (the Jupyter message header excluded)."""
        return sum(text + binary for _, text, binary in self.messages)

    @property
    def binary(self) -> int:
        """Bytes sent as binary buffers."""
        return sum(binary for _, _, binary in self.messages)

    def by_widget(self) -> dict[str, int]:
        """Total bytes per widget class."""
        totals: dict[str, int] = {}
        for name, text, binary in self.messages:
            totals[name] = totals.get(name, 0) + text + binary
        return totals


@contextmanager
def traffic() -> Iterator[Traffic]:
    """Record every widget comm message sent inside the block (with or without a kernel).

    All ipywidgets (anywidget's FigureWidget included) send through ``Widget._send`` with the
    state already split into JSON and buffers, so that is where sizes are read.
    """
    record = Traffic()
    original = ipywidgets.Widget._send

    def counting(self: ipywidgets.Widget, msg: dict[str, Any], buffers: Any = None) -> None:
        text = len(json.dumps(msg, separators=(",", ":"), default=str).encode())
        binary = sum(memoryview(b).nbytes for b in buffers or ())
        record.messages.append((type(self).__name__, text, binary))
        original(self, msg, buffers)

    ipywidgets.Widget._send = counting
    try:
        yield record
    finally:
        ipywidgets.Widget._send = original
