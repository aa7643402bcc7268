"""Finding a class by what a person types: an index, a name in any case, or ``"3: cat"``.

One resolver and one set of messages for the engine (``GradCAM(...).explain(target=...)``), the
Explorer's class box and ``camwidgets explain --target``: the same input is accepted, or refused
with the same words and the same suggestions, wherever it is typed.

Example:
    >>> names = ["tench", "tabby", "tiger cat", "Persian cat"]
    >>> resolve_class("Persian Cat", names), resolve_class("1: tabby", names)
    (3, 1)
    >>> try:
    ...     resolve_class("Tabby Cat", names)
    ... except ValueError as err:
    ...     print(err)  # doctest: +NORMALIZE_WHITESPACE
    unknown class 'Tabby Cat' (the model has 4 classes); did you mean 'tabby' (1),
    'tiger cat' (2)?
"""

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
    """Classes someone typing ``query`` may mean: names containing it, then near spellings.

    Near means a similarity of at least 0.6, the larger of the whole names' (difflib's ratio)
    and the words' (each typed word against its closest word of the name, averaged), so a
    right word beside a wrong one still counts: 'Tabby Cat' finds 'tabby' and 'tiger cat'.
    """
    wanted = _norm(query)
    if not wanted:
        return []
    normed = [_norm(n) for n in names]
    found = [i for i, n in enumerate(normed) if wanted in n]
    found.sort(key=lambda i: (not normed[i].startswith(wanted), len(normed[i]), i))
    near = [(-_similarity(wanted, n), i) for i, n in enumerate(normed) if i not in found]
    found += [i for score, i in sorted(near) if -score >= _NEAR]
    return found[:count]


_NEAR = 0.6


def _similarity(wanted: str, name: str) -> float:
    """How alike two normalised names are, 0..1 (see :func:`suggestions`)."""
    whole = difflib.SequenceMatcher(None, wanted, name).ratio()
    theirs = name.split() or [name]
    words = wanted.split()
    by_word = sum(
        max(difflib.SequenceMatcher(None, word, other).ratio() for other in theirs)
        for word in words
    ) / len(words)
    return max(whole, by_word)


def resolve_class(query: Any, names: Sequence[str]) -> int:
    """The class index ``query`` stands for.

    Accepted, in this order: a class name exactly as the model names it; an int (or numpy
    integer) index; a string holding an index (``"281"``); the class list's own form
    ``"281: tabby cat"``; a class name in any case and spacing, underscores as spaces
    (``"Tabby Cat"``, ``"tabby_cat"``); a part of a name that only one class contains
    (``"persian"``).

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
        return check_index(int(query), count)
    as_named = [i for i, n in enumerate(names) if n == query]
    if len(as_named) == 1:  # a model may name its classes "0", "1", ... or "3: x"
        return as_named[0]
    text = query.strip()
    if text.lstrip("-").isdigit():
        return check_index(int(text), count)
    entry = _ENTRY.match(text)
    if entry:
        return check_index(int(entry.group(1)), count)
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
    raise ValueError(f"unknown class {query!r} (the model has {count} classes){more}")


def check_index(index: int, count: int) -> int:
    """``index`` if it names one of ``count`` classes, else the ValueError everyone raises."""
    if not 0 <= index < count:
        raise ValueError(
            f"class index {index} is out of range: the model has {count} classes (0..{count - 1})"
        )
    return index
