"""Files replaced in one step: a crash leaves the old content or the new, never a mix.

Shared by every part that keeps state on disk (incident state, feedback tickets, tailer
offsets, heartbeats); core, so it imports no other part.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: write a temporary file, fsync, rename.

    The temporary file is created new (``O_EXCL | O_NOFOLLOW``): a symlink planted at its
    name is removed, never followed, so the write cannot land in another file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except FileExistsError:  # left by a crash of a process with our pid, or planted: unlink, not follow
        os.unlink(tmp)
        fd = os.open(tmp, flags, 0o600)
    with open(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
