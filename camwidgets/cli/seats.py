"""Seats for a class: how many demo kernels a machine holds, and a polite "full" when it is.

``camwidgets demo`` gives Voila, and so every kernel it starts, two variables: a folder for the
seats (``CAMWIDGETS_DEMO_SEATS``) and the number of seats (``CAMWIDGETS_DEMO_MAX``). The app's
first cell calls :func:`take_seat` before importing torch: the kernel writes a file named by its
process id, counts the files of kernels still alive, and if there are more than the seats it
gives its seat back and the page says the machine is full instead of loading (and swapping, and
leaving every student waiting). Pre-started kernels count too: each holds the same memory.

Example:
    >>> import os
    >>> take_seat({}) is None  # outside `camwidgets demo`: no limit
    True
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MAX_VARIABLE",
    "MB_PER_STUDENT",
    "SEATS_VARIABLE",
    "full_message",
    "seats_for_memory",
    "take_seat",
]

SEATS_VARIABLE = "CAMWIDGETS_DEMO_SEATS"
MAX_VARIABLE = "CAMWIDGETS_DEMO_MAX"

#: Memory one more student costs: a demo kernel's own memory once its panel is drawn (torch,
#: the shapes model, the Explorer and its eight scenes). Measured with a real ipykernel by
#: ``python benchmarks/bench_class.py --memory``: 700 MB resident, of which 379 MB its own
#: (USS); the rest are libraries (torch's) that every kernel shares. Rounded up.
MB_PER_STUDENT = 400

#: Memory kept free for the server, the browser and the system when sizing a class.
RESERVE_MB = 2048


def seats_for_memory(total_mb: float, per_student_mb: float = MB_PER_STUDENT) -> int:
    """How many students fit in ``total_mb`` of memory, after the reserve (at least 1)."""
    return max(1, int((total_mb - RESERVE_MB) // per_student_mb))


def full_message(seats: int) -> str:
    """What a student sees when every seat is taken."""
    return (
        f"This machine is full: it serves {seats} students at once (about {MB_PER_STUDENT} MB "
        "each), and they are all here. Reload this page in a minute: a seat frees when a "
        "student closes their tab. Teachers: `camwidgets demo --students N` sets the number."
    )


def take_seat(environ: Mapping[str, str] | None = None) -> str | None:
    """Take a seat for this kernel; None when seated, else the message to show instead."""
    env = os.environ if environ is None else environ
    folder, limit = env.get(SEATS_VARIABLE), env.get(MAX_VARIABLE)
    if not folder or not limit:
        return None
    seats = int(limit)
    here = Path(folder)
    mine = here / str(os.getpid())
    mine.write_text(str(time.time_ns()), encoding="utf-8")  # when; file times are too coarse
    # Seats go in the order they were taken (the time each file holds; the pid breaks ties):
    # the earliest kernels keep theirs, a late one that finds no room gives its own back.
    taken = sorted(
        (_taken_at(p), int(p.name))
        for p in here.iterdir()
        if p.name.isdigit() and _alive(int(p.name))
    )
    if os.getpid() in [pid for _, pid in taken[seats:]]:
        mine.unlink(missing_ok=True)
        return full_message(seats)
    return None


def _taken_at(seat: Path) -> int:
    """When a seat was taken (ns), 0 if its file says nothing readable (counted as earliest)."""
    try:
        return int(seat.read_text(encoding="utf-8") or 0)
    except (OSError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    """Whether a process with this id is running (its seat file is not stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
