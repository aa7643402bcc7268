"""Writing output files safely: never an input, never an existing file unasked, never a link.

The checks run before any work (so a long model run does not end in a refusal), and the write
itself opens the path with ``O_NOFOLLOW`` so a symbolic link planted in between is refused too.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from camwidgets.cli.errors import UsageError

#: Extension -> Pillow format name of the pictures camwidgets writes.
FORMATS: dict[str, str] = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def output_format(path: str | Path) -> str:
    """The Pillow format for ``path``'s extension, or a UsageError listing the accepted ones."""
    from PIL import Image

    Image.init()
    usable = {ext: fmt for ext, fmt in FORMATS.items() if fmt in Image.SAVE}
    suffix = Path(path).suffix.lower()
    if suffix not in usable:
        accepted = ", ".join(usable)
        said = f"extension {suffix!r}" if suffix else "no extension"
        raise UsageError(
            f"cannot tell which picture format to write for {str(path)!r} ({said}); "
            f"use one of {accepted}"
        )
    return usable[suffix]


def check_output(path: str | Path, force: bool, inputs: Sequence[str | Path]) -> None:
    """Refuse, before any work, an output path that would replace something it should not.

    Args:
        path: where the output will go.
        force: whether an existing regular file may be replaced.
        inputs: files read by this run (image, model); never replaced, even with ``force``.

    Raises:
        UsageError: the path is a symbolic link, a directory or another non-regular file, one
            of the inputs, an existing file without ``force``, or in a missing directory.
    """
    where = str(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is None:
        parent = Path(path).parent
        if not parent.is_dir():
            raise UsageError(f"cannot write {where!r}: directory {str(parent)!r} does not exist")
        return
    if stat.S_ISLNK(info.st_mode):
        raise UsageError(
            f"{where!r} is a symbolic link; camwidgets never writes through one "
            "(remove it or choose another name)"
        )
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{where!r} is a directory; give a file name such as overlay.png")
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(f"{where!r} is not a regular file; choose another name")
    _refuse_inputs(info, where, inputs)
    if not force:
        raise UsageError(f"{where!r} exists; pass --force to replace it")


def write_picture(
    path: str | Path, rgb: np.ndarray, force: bool, inputs: Sequence[str | Path]
) -> None:
    """Encode ``rgb`` in the format of ``path``'s extension and write it without following links.

    Args:
        path: destination; its extension picks the format (see :data:`FORMATS`).
        rgb: (H, W, 3) uint8 picture.
        force: replace an existing regular file.
        inputs: files that must never be replaced.
    """
    from PIL import Image

    fmt = output_format(path)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    write_bytes(path, buffer.getvalue(), force, inputs)


def write_bytes(path: str | Path, data: bytes, force: bool, inputs: Sequence[str | Path]) -> None:
    """Write ``data`` to a new file, or over an existing regular one when ``force``.

    ``O_NOFOLLOW`` refuses a symbolic link in the last path component and ``O_EXCL`` an existing
    file; with ``force`` the file is opened without truncation, checked (a regular file, not an
    input) and only then truncated.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    flags |= 0 if force else os.O_EXCL
    where = str(path)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        # O_EXCL answers EEXIST for a link too: name the link, which is what the user must fix.
        if err.errno == errno.ELOOP or os.path.islink(path):
            message = f"{where!r} is a symbolic link; camwidgets never writes through one"
        elif err.errno == errno.EEXIST:
            message = f"{where!r} exists; pass --force to replace it"
        else:
            raise
        raise UsageError(message) from err
    with os.fdopen(fd, "wb") as out:
        info = os.fstat(out.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UsageError(f"{where!r} is not a regular file; choose another name")
        _refuse_inputs(info, where, inputs)
        out.truncate(0)
        out.write(data)


def _refuse_inputs(info: os.stat_result, where: str, inputs: Sequence[str | Path]) -> None:
    """UsageError if the file described by ``info`` is one of ``inputs`` (same inode)."""
    for source in inputs:
        try:
            if os.path.samestat(info, os.stat(source)):
                raise UsageError(
                    f"{where!r} is the input {str(source)!r} itself; camwidgets never replaces "
                    "an input, even with --force: choose another name"
                )
        except FileNotFoundError:
            continue
