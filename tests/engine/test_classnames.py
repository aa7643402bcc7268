"""Finding a class by what a person types."""

from __future__ import annotations

import numpy as np
import pytest

from camwidgets.engine.classnames import resolve_class, suggestions

NAMES = ["tench", "goldfish", "tabby cat", "tiger cat", "Persian cat", "great_white_shark"]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        (2, 2),
        (np.int64(3), 3),
        ("4", 4),
        (" 2 ", 2),
        ("2: tabby cat", 2),
        ("Tabby Cat", 2),
        ("TABBY   cat", 2),
        ("great white shark", 5),
        ("persian", 4),  # the only class containing it
        ("gold", 1),
    ],
)
def test_accepted_forms(query: object, index: int) -> None:
    assert resolve_class(query, NAMES) == index


def test_unknown_names_get_suggestions() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'tabby cat' \(2\)"):
        resolve_class("taby cat", NAMES)
    with pytest.raises(ValueError, match=r"matches several classes: 'tabby cat' .*'tiger cat'"):
        resolve_class("cat", NAMES)
    with pytest.raises(ValueError, match="unknown class 'zebra'"):
        resolve_class("zebra", NAMES)
    assert suggestions("cat", NAMES)[:3] == [2, 3, 4]
    assert suggestions("", NAMES) == []


def test_bad_kinds_and_ranges() -> None:
    for bad in (True, 2.0, None, [2]):
        with pytest.raises(TypeError, match=r"index .* or a name"):
            resolve_class(bad, NAMES)
    for out in (6, -1, "17", "9: tench"):
        with pytest.raises(ValueError, match="out of range"):
            resolve_class(out, NAMES)
    with pytest.raises(ValueError, match="empty"):
        resolve_class("  ", NAMES)
