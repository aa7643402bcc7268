"""Naming channels: network dissection (Bau et al.) and explanations in words.

* :func:`dissect` ``(engine, layer, concepts)`` -> :class:`ChannelNames`: per channel the
  concept it detects (or None), its IoU, the runner-up; ``save``/``load`` as versioned JSON.
* :func:`describe` ``(result, names, k=3)`` -> :class:`Description`: the sentence and its parts.
* :class:`Broden`: the public Broden concept dataset read from its directory.
* Concept data that ships: :func:`camwidgets.zoo.concepts`.

For a front end (the names in a panel), everything needed per channel ``k`` is
``names.name(k)`` (str or None), ``names.iou(k)`` (its best IoU) and ``names[k]`` (the whole
row); ``ChannelEvidence.label`` gives the text "channel 12 (circle, IoU 0.15)" and
``describe(res, names).sentence`` the line under a chart. ``names.layer`` says which layer a
table is for: check it against ``res.layer`` (``describe`` raises on a mismatch).

>>> from camwidgets.naming import ChannelNames, describe, dissect  # doctest: +SKIP
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
