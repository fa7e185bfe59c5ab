"""``--watch-config``: reload when the config or module file changes (blackbox 0.28's automatic reload).

Each file is polled for its (mtime, size, inode) every ``interval`` seconds: a change, an
editor's rename over the file, or a file appearing again starts a reload through the same
gate as SIGHUP and ``POST /-/reload``, so its rule holds: a bad file is refused and the
running config keeps going (a module file's broken modules keep their running versions).
Polling, not inotify: it works on every filesystem, ConfigMap symlink swaps included.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

log = logging.getLogger("slaprobe.exporter")

WATCH_INTERVAL = 1.0
"""Seconds between looks at the files (a stat each: negligible)."""

Signature = tuple[int, int, int] | None


def file_signature(path: str) -> Signature:
    """What changes when the file does: mtime, size and inode (None while it is missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


async def watch_files(
    paths: Sequence[str],
    reload: Callable[[], Awaitable[object]],
    *,
    interval: float = WATCH_INTERVAL,
    stop: asyncio.Event | None = None,
) -> None:
    """Call ``reload`` each time one of ``paths`` changes, until ``stop`` is set."""
    stop = stop or asyncio.Event()
    seen = {path: file_signature(path) for path in paths}
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        now = {path: file_signature(path) for path in paths}
        changed = [path for path in paths if now[path] != seen[path] and now[path] is not None]
        seen = now
        if changed:
            log.info("config file changed, reloading: %s", ", ".join(changed))
            try:
                await reload()
            except Exception:  # a bug in a reload must not end the watch
                log.exception("reload after a file change failed")
