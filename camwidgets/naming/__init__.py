"""Naming channels: network dissection (Bau et al.) and explanations in words.

>>> from camwidgets.naming import dissect, describe, ChannelNames  # doctest: +SKIP
"""

from __future__ import annotations

from .broden import Broden
from .describe import ChannelEvidence, Description, contributions, describe
from .dissect import dissect
from .names import ChannelName, ChannelNames

__all__ = [
    "Broden",
    "ChannelEvidence",
    "ChannelName",
    "ChannelNames",
    "Description",
    "contributions",
    "describe",
    "dissect",
]
