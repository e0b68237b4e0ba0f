"""Writing files so that readers never see half of one, and nothing else is destroyed.

A regular file is replaced atomically: the new content goes to a temporary file beside it, which
is then renamed over it (keeping the old file's permissions). What is not a regular file is never
replaced: a symbolic link is written through to the file it points at (the link stays a link), a
FIFO or a device is written to directly, and a directory is an error.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from mixopt.errors import MixoptError


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically (see the module docstring)."""
    payload = data.encode() if isinstance(data, str) else data

    def write(tmp: Path) -> None:
        tmp.write_bytes(payload)

    replace_with(path, write, through=payload)


def replace_with(
    path: str | Path, write: Callable[[Path], None], *, through: bytes | None = None
) -> None:
    """Call ``write(tmp)`` to produce the new file, then rename it over ``path``.

    ``through``: the bytes to write directly when ``path`` is a FIFO or a device (without them,
    such a path is refused).
    """
    path = Path(path)
    try:
        info = path.stat()  # follows a symlink to what it points at
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise MixoptError(f"{path}: cannot write: {error.strerror or error}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise MixoptError(f"{path}: is a directory, not a file")
    if info is not None and not stat.S_ISREG(info.st_mode):
        if through is None:
            raise MixoptError(f"{path}: not a regular file; mixopt does not replace it")
        with path.open("wb") as out:  # a FIFO or a device: write to it, never replace it
            out.write(through)
        return
    target = path.resolve() if path.is_symlink() else path
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{time.time_ns()}.tmp")
    try:
        write(tmp)
        if info is not None:
            os.chmod(tmp, stat.S_IMODE(info.st_mode))
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
