"""The sections every panel gets, under the chart in this order.

A new view is a ``Section`` subclass in its own module; list it here (or pass
``Panel(sections=[...])``) and the panel lays it out, shows it after every draw, lets it
forget on new images and wires its controls.
"""

from __future__ import annotations

from .attack import AttackSection
from .base import Section
from .faithfulness import FaithfulnessSection
from .sanity import SanitySection
from .steps import StepsSection
from .words import WordsSection

SECTIONS: tuple[type[Section], ...] = (
    WordsSection,
    FaithfulnessSection,
    SanitySection,
    StepsSection,
    AttackSection,
)


def default_sections() -> list[Section]:
    """A fresh instance of every section in ``SECTIONS``."""
    return [kind() for kind in SECTIONS]
