"""Finding a class by what a person types: an index, a name in any case, or ``"3: cat"``."""

from __future__ import annotations

import difflib
import numbers
import re
from collections.abc import Sequence
from typing import Any

_ENTRY = re.compile(r"^\s*(\d+)\s*:")


def _norm(text: str) -> str:
    """Lower case, single spaces, underscores as spaces: how names are compared."""
    return " ".join(text.replace("_", " ").lower().split())


def suggestions(query: str, names: Sequence[str], count: int = 5) -> list[int]:
    """Classes someone typing ``query`` may mean: names containing it, then near spellings."""
    wanted = _norm(query)
    if not wanted:
        return []
    normed = [_norm(n) for n in names]
    found = [i for i, n in enumerate(normed) if wanted in n]
    found.sort(key=lambda i: (not normed[i].startswith(wanted), len(normed[i]), i))
    close = difflib.get_close_matches(wanted, normed, n=count, cutoff=0.6)
    for name in close:
        index = normed.index(name)
        if index not in found:
            found.append(index)
    return found[:count]


def resolve_class(query: Any, names: Sequence[str]) -> int:
    """The class index ``query`` stands for.

    Accepted: an int (or numpy integer) index; a string holding an index (``"281"``); a class
    name in any case and spacing (``"Tabby Cat"``, ``"tabby_cat"``); the class list's own form
    ``"281: tabby cat"``; a part of a name that only one class contains (``"tabby"``).

    Raises:
        TypeError: for a bool or a value that is neither a number nor a string.
        ValueError: for an index out of range or an unknown or ambiguous name, with suggestions.
    """
    count = len(names)
    if isinstance(query, bool) or not isinstance(query, (numbers.Integral, str)):
        raise TypeError(
            f"a class is an index (int) or a name (str), got {type(query).__name__}: {query!r}"
        )
    if isinstance(query, numbers.Integral):
        return _index(int(query), count)
    text = query.strip()
    if text.lstrip("-").isdigit():
        return _index(int(text), count)
    entry = _ENTRY.match(text)
    if entry:
        return _index(int(entry.group(1)), count)
    wanted = _norm(text)
    if not wanted:
        raise ValueError("got an empty class name; type a class name or index")
    normed = [_norm(n) for n in names]
    exact = [i for i, n in enumerate(normed) if n == wanted]
    if len(exact) == 1:
        return exact[0]
    partial = [i for i, n in enumerate(normed) if wanted in n]
    if len(exact) == 0 and len(partial) == 1:
        return partial[0]
    hints = exact or suggestions(text, names)
    listed = ", ".join(f"{names[i]!r} ({i})" for i in hints[:5])
    if len(exact) > 1 or len(partial) > 1:
        raise ValueError(f"{query!r} matches several classes: {listed}; pick one by index")
    more = f"; did you mean {listed}?" if listed else ""
    raise ValueError(f"no class is named {query!r} (the model has {count} classes){more}")


def _index(index: int, count: int) -> int:
    if not 0 <= index < count:
        raise ValueError(f"class index {index} is out of range: the classes are 0..{count - 1}")
    return index
