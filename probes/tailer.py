"""Follow the log files of one path glob: complete lines only, rotation-safe, offsets kept on disk.

A :class:`Tailer` polls: each :meth:`Tailer.poll` lists the glob, notices rotations,
reads what is new (1 MiB ``pread`` chunks split on ``\\n``) and returns the complete
lines (without their ``\\n``). The owner counts them, then calls :meth:`Tailer.commit`;
only committed offsets are saved, so a restart at any moment loses nothing, and
re-reads at most the lines of one uncommitted poll (none after a clean
``commit(); close()``).

Intended use: one Tailer per log source, driven by one thread (reads block, so the
exporter calls ``poll`` from an executor thread, e.g. ``await asyncio.to_thread(...)``,
every 0.25-1 s; ``max_bytes`` bounds the work of one call). :attr:`Tailer.stats` may be
read from any thread.

What it survives (fail2ban's recipe: a file is identified by device + inode and a hash
of its first bytes; it was rewritten if its size fell below the offset or that hash
changed):

- rename + create: the old file is read to its end through the descriptor already
  open, before the new one, and kept for ``rotate_grace`` seconds in case the writer
  has not reopened yet; a renamed file still matched by the glob is simply followed.
- copytruncate: the truncation is noticed and the file is read again from 0; a copy
  that the glob matches (``access.log.1``) is recognised by its content and yields only
  the lines the truncation took away before they were read, never the rest twice.
- delete + recreate, files that appear later (read from their first byte), several
  files per glob. Compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``, ...) are skipped.
- ``start: end|beginning`` applies to files present at the first poll when the source
  has no saved state; after a restart, files that appeared while stopped are read whole.
- A line longer than ``max_line_bytes`` is counted in ``stats.too_long`` and skipped
  without being buffered.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

FINGERPRINT_BYTES = 256  # a file is known by its inode and a hash of up to this many first bytes
TAIL_BYTES = 64  # the bytes before an offset, kept to confirm that a new file is a copy
COPY_CHECK_BYTES = 64 * 1024  # prefix compared byte for byte before a file is taken as a copy
CHUNK_BYTES = 1 << 20
DEFAULT_MAX_LINE_BYTES = 64 * 1024
DEFAULT_POLL_BYTES = 16 << 20
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lz", ".z", ".zip", ".br", ".7z", ".sz")
STATE_VERSION = 1

RotationKind = Literal["rename", "truncate", "delete"]
Start = Literal["end", "beginning"]

# A glob and an uncapped retired list would let one noisy directory grow memory without bound.
_RETIRED_MAX = 32
_RETIRED_TTL = 600.0


@dataclass
class TailerStats:
    """Counters of one tailer, for self-metrics (read from any thread)."""

    bytes_read: int = 0  # bytes consumed: lines, their newlines, and skipped over-long lines
    lines: int = 0  # complete lines returned by poll()
    too_long: int = 0  # lines longer than max_line_bytes, skipped
    rotations: dict[str, int] = field(default_factory=lambda: {"rename": 0, "truncate": 0, "delete": 0})
    lag_bytes: int = 0  # at the last poll: file sizes minus offsets, summed over followed files
    files: int = 0  # files followed (open) at the last poll


@dataclass(frozen=True)
class FollowedFile:
    """One followed file as of the last poll (for status pages and tests)."""

    path: str
    offset: int
    size: int
    state: Literal["live", "detached", "copy"]  # copy: a copy of another file, not read


@dataclass
class _Snapshot:
    """What a rewritten or vanished file looked like: lets a copy of it resume at the offset."""

    fp: str
    fp_len: int
    offset: int
    tail: bytes
    at: float


class _File:
    __slots__ = (
        "acked",
        "copy_of",
        "detached",
        "dev",
        "fd",
        "fp",
        "fp_len",
        "idle_since",
        "ino",
        "mtime_ns",
        "nlink",
        "offset",
        "path",
        "shadow_of",
        "size",
        "skipping",
        "tail",
        "verified",
    )

    def __init__(self, fd: int, st: os.stat_result, path: str) -> None:
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.path = path
        self.size, self.mtime_ns, self.nlink = st.st_size, st.st_mtime_ns, st.st_nlink
        self.offset = 0
        self.tail = b""
        self.skipping = False
        self.fp, self.fp_len = _hash(b""), 0
        self.detached = False
        self.idle_since = 0.0
        self.shadow_of: tuple[int, int] | None = None  # key of the live file this is a copy of
        self.verified = 0  # bytes of this shadow copy compared equal to its original
        self.copy_of: _Snapshot | None = None  # rewritten original whose offset this copy resumes at
        self.acked: tuple[int, bytes, bool] = (0, b"", False)

    @property
    def key(self) -> tuple[int, int]:
        return self.dev, self.ino


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _key_text(key: tuple[int, int]) -> str:
    return f"{key[0]}:{key[1]}"


def _pread(fd: int, size: int, offset: int) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError:
        return b""


class Tailer:
    """Follows the files of one path glob and returns their new complete lines."""

    def __init__(
        self,
        name: str,
        pattern: str,
        *,
        start: Start = "end",
        state_dir: str | os.PathLike[str] | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        rotate_grace: float = 5.0,
        save_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if start not in ("end", "beginning"):
            raise ValueError(f"start must be 'end' or 'beginning', not {start!r}")
        self.name = name
        self.pattern = pattern
        self.start = start
        self.max_line_bytes = max_line_bytes
        self.rotate_grace = rotate_grace
        self.save_interval = save_interval
        self.stats = TailerStats()
        self._clock = clock
        self._chunk = max(CHUNK_BYTES, max_line_bytes + 1)
        self._files: dict[tuple[int, int], _File] = {}
        self._path_owner: dict[str, tuple[int, int]] = {}
        self._fate: dict[tuple[int, int], RotationKind] = {}  # how a file we stopped following ended
        self._retired: list[_Snapshot] = []
        self._first_poll = True
        self._dirty = False
        self._last_save = float("-inf")
        self._lock = threading.Lock()
        self._state_path = Path(state_dir) / f"tailer-{_safe_name(name)}.json" if state_dir is not None else None
        self._saved: dict[str, dict[str, Any]] = {}
        self._resumed = False
        self._load_state()

    # ------------------------------------------------------------------ public API

    def poll(self, max_bytes: int = DEFAULT_POLL_BYTES) -> list[bytes]:
        """New complete lines (without ``\\n``) from every file; at most about ``max_bytes`` read."""
        with self._lock:
            now = self._clock()
            lines: list[bytes] = []
            seen = self._scan()
            self._update_followed(seen, now)
            self._open_new(seen, now)
            budget = max_bytes
            # Old content first: detached (rotated) files, then live files in path order.
            order = sorted(self._files.values(), key=lambda f: (not f.detached, f.path))
            for f in order:
                if budget <= 0:
                    break
                if f.shadow_of is None and f.copy_of is None:
                    budget -= self._read(f, lines, budget, now)
            self._close_idle(now)
            self._retired = [s for s in self._retired if now - s.at < _RETIRED_TTL][-_RETIRED_MAX:]
            self.stats.lag_bytes = sum(
                max(0, f.size - f.offset) for f in self._files.values() if f.shadow_of is None and f.copy_of is None
            )
            self.stats.files = len(self._files)
            return lines

    def commit(self, *, force: bool = False) -> None:
        """Acknowledge every line returned so far; save offsets (at most every ``save_interval``)."""
        with self._lock:
            for f in self._files.values():
                f.acked = (f.offset, f.tail, f.skipping)
            self._dirty = True
            if force or self._clock() - self._last_save >= self.save_interval:
                self._save()

    def close(self) -> None:
        """Save the committed offsets and close every file (uncommitted lines are read again next time)."""
        with self._lock:
            if self._dirty:
                self._save()
            for f in self._files.values():
                os.close(f.fd)
            self._files.clear()

    def followed(self) -> list[FollowedFile]:
        """The files followed at the last poll."""
        with self._lock:
            return [
                FollowedFile(
                    f.path,
                    f.offset,
                    f.size,
                    "copy" if f.shadow_of or f.copy_of else "detached" if f.detached else "live",
                )
                for f in sorted(self._files.values(), key=lambda f: f.path)
            ]

    def __enter__(self) -> Tailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ scanning

    def _scan(self) -> dict[tuple[int, int], tuple[str, os.stat_result]]:
        seen: dict[tuple[int, int], tuple[str, os.stat_result]] = {}
        for path in sorted(glob.glob(self.pattern)):
            if path.lower().endswith(COMPRESSED_SUFFIXES):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not _is_regular(st):
                continue
            seen.setdefault((st.st_dev, st.st_ino), (path, st))
        return seen

    def _update_followed(self, seen: dict[tuple[int, int], tuple[str, os.stat_result]], now: float) -> None:
        for key, f in list(self._files.items()):
            hit = seen.pop(key, None)
            if hit is not None:
                path, st = hit
                f.detached = False
                if path != f.path:
                    f.path = path
                    self._path_owner[path] = key
            else:
                try:
                    st = os.fstat(f.fd)
                except OSError:
                    continue
                if not f.detached:
                    f.detached = True
                    f.idle_since = now
                f.nlink = st.st_nlink
            if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
                f.idle_since = now
                self._check_rewrite(f, st, now)
            f.size, f.mtime_ns = st.st_size, st.st_mtime_ns
        for f in list(self._files.values()):
            if f.shadow_of is not None:
                self._check_shadow(f, now)
            elif f.copy_of is not None:
                self._check_copy(f, now)

    def _check_rewrite(self, f: _File, st: os.stat_result, now: float) -> None:
        """Notice a truncation (size below offset, or first bytes changed); keep the fingerprint fresh."""
        head = _pread(f.fd, FINGERPRINT_BYTES, 0) if st.st_size else b""
        rewritten = st.st_size < f.offset or len(head) < f.fp_len or _hash(head[: f.fp_len]) != f.fp
        if rewritten:
            self.stats.rotations["truncate"] += 1
            snap = _Snapshot(f.fp, f.fp_len, f.offset, f.tail, now)
            if f.fp_len:
                self._retired.append(snap)
            self._release_shadows(f.key, snap)
            f.offset, f.tail, f.skipping = 0, b"", False
            f.shadow_of, f.copy_of = None, None
            f.idle_since = now
        if rewritten or len(head) > f.fp_len:
            f.fp, f.fp_len = _hash(head), len(head)

    def _open_new(self, seen: dict[tuple[int, int], tuple[str, os.stat_result]], now: float) -> None:
        first = self._first_poll
        self._first_poll = False
        news: list[tuple[_File, bytes]] = []
        for path, _ in sorted(seen.values(), key=lambda ps: (ps[1].st_mtime_ns, ps[0])):
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in self._files or not _is_regular(st):
                os.close(fd)
                continue
            f = _File(fd, st, path)
            head = _pread(fd, FINGERPRINT_BYTES, 0)
            f.fp, f.fp_len = _hash(head), len(head)
            self._files[f.key] = f
            news.append((f, head))
            previous = self._path_owner.get(path)
            self._path_owner[path] = f.key
            if previous is not None and previous != f.key and not first:
                self._count_replacement(previous)
        if first and self._saved:
            resumed = {f.key for f, head in news if self._resume_saved(f, head, now)}
            news = [(f, head) for f, head in news if f.key not in resumed]
            gone = {  # files of the last run that are gone or were rewritten while we were stopped
                key: _Snapshot(e["fingerprint"], e["fingerprint_bytes"], e["offset"], e["tail"], now)
                for key, e in self._saved.items()
            }
            self._retired += [snap for snap in gone.values() if snap.fp_len]
            for f in self._files.values():
                if f.shadow_of is not None and f.shadow_of not in resumed:
                    snap = gone.get(_key_text(f.shadow_of))
                    f.shadow_of = None
                    if snap is not None:
                        f.copy_of = snap
                    else:
                        self._seek_end(f)
            self._saved.clear()
        for f, head in news:
            if self._match_copy(f, head, now):
                continue
            if first and not self._resumed and self.start == "end":
                self._seek_end(f)
            f.idle_since = now
        for f, _ in news:
            f.acked = (f.offset, f.tail, f.skipping)
        if news:
            self._dirty = True

    def _count_replacement(self, previous: tuple[int, int]) -> None:
        """A new file took the path of one we followed: count the rotation by what became of the old one."""
        old = self._files.get(previous)
        if old is not None:
            kind: RotationKind = "delete" if old.detached and old.nlink == 0 else "rename"
        else:
            kind = self._fate.get(previous, "delete")
        self.stats.rotations[kind] += 1

    def _resume_saved(self, f: _File, head: bytes, now: float) -> bool:
        """Continue a file of the last run at its saved offset; False if it is not that file (any more)."""
        entry = self._saved.get(_key_text(f.key))
        if entry is None:
            return False
        n = entry["fingerprint_bytes"]
        if len(head) < n or _hash(head[:n]) != entry["fingerprint"] or f.size < entry["offset"]:
            self.stats.rotations["truncate"] += 1  # rewritten while we were stopped; a copy may resume it
            return False
        del self._saved[_key_text(f.key)]
        f.offset, f.tail, f.skipping = entry["offset"], entry["tail"], entry["skipping"]
        f.idle_since = now
        shadow = entry.get("shadow_of")
        if shadow:
            dev, ino = (int(x) for x in shadow.split(":"))
            f.shadow_of = (dev, ino)
        copy = entry.get("copy_of")
        if copy:
            f.copy_of = _Snapshot("", 0, copy["offset"], bytes.fromhex(copy["tail"]), now)
        return True

    # ------------------------------------------------------------------ copies (copytruncate)

    def _match_copy(self, f: _File, head: bytes, now: float) -> bool:
        """Is the new file a copy of a followed or rewritten file? Then it is not read from 0."""
        if not head:
            return False
        for snap in reversed(self._retired):
            if snap.fp_len and len(head) >= snap.fp_len and _hash(head[: snap.fp_len]) == snap.fp:
                f.copy_of = snap
                f.idle_since = now
                self._check_copy(f, now)
                return True
        for other in self._files.values():
            if other is f or other.shadow_of is not None or other.copy_of is not None or not other.fp_len:
                continue
            if len(head) >= other.fp_len and _hash(head[: other.fp_len]) == other.fp:
                f.shadow_of = other.key
                f.idle_since = now
                self._check_shadow(f, now)
                if f.shadow_of is not None:
                    return True
                f.offset, f.copy_of = 0, None
                return False
        return False

    def _check_shadow(self, f: _File, now: float) -> None:
        """A copy of a live file is never read; it stops being one if its bytes differ."""
        assert f.shadow_of is not None
        original = self._files.get(f.shadow_of)
        if original is None:
            f.shadow_of = None
            f.offset = f.size
            return
        limit = min(f.size, original.size, COPY_CHECK_BYTES)
        if limit > f.verified:
            mine, theirs = _pread(f.fd, limit, 0), _pread(original.fd, limit, 0)
            if mine != theirs:
                f.shadow_of = None  # not a copy after all: a file of its own, read from 0
                f.offset, f.idle_since = 0, now
                return
            f.verified = limit

    def _release_shadows(self, key: tuple[int, int], snap: _Snapshot) -> None:
        for other in self._files.values():
            if other.shadow_of == key:
                other.shadow_of = None
                other.copy_of = snap
                self._check_copy(other, snap.at)

    def _check_copy(self, f: _File, now: float) -> None:
        """A copy of a rewritten file resumes where the original was, once its bytes confirm it."""
        snap = f.copy_of
        assert snap is not None
        if f.size >= snap.offset:
            start = snap.offset - len(snap.tail)
            if _pread(f.fd, len(snap.tail), start) == snap.tail:
                f.offset, f.tail = snap.offset, snap.tail
            else:
                f.offset, f.tail = 0, b""
            f.copy_of = None
            f.idle_since = now
        elif now - f.idle_since >= self.rotate_grace:
            # A copy that stopped short of what was read of its original holds nothing unread.
            self._seek_end(f)
            f.copy_of = None

    # ------------------------------------------------------------------ reading

    def _seek_end(self, f: _File) -> None:
        """Offset after the last complete line (the rest of a partial last line is skipped)."""
        size = f.size
        if not size:
            return
        back = min(size, self.max_line_bytes + 1)
        data = _pread(f.fd, back, size - back)
        i = data.rfind(b"\n")
        if i >= 0:
            f.offset, f.skipping = size - back + i + 1, False
            f.tail = data[max(0, i + 1 - TAIL_BYTES) : i + 1]
        else:
            f.offset, f.skipping = size, True  # inside a line longer than we look back: skip its rest

    def _read(self, f: _File, out: list[bytes], budget: int, now: float) -> int:
        """Append the complete lines of ``f`` past its offset to ``out``; return the bytes consumed."""
        consumed = 0
        max_line = self.max_line_bytes
        stats = self.stats
        while consumed < budget:
            data = _pread(f.fd, self._chunk, f.offset)
            if not data:
                break
            if f.skipping:
                i = data.find(b"\n")
                if i < 0:
                    f.offset += len(data)
                    consumed += len(data)
                    continue
                f.skipping = False
                f.offset += i + 1
                consumed += i + 1
                data = data[i + 1 :]
            j = data.rfind(b"\n")
            if j < 0:
                if len(data) > max_line:
                    stats.too_long += 1
                    f.skipping = True
                    f.offset += len(data)
                    consumed += len(data)
                    continue
                break
            block = data[:j]
            lines = block.split(b"\n")
            if len(block) > max_line and max(map(len, lines)) > max_line:
                kept = [line for line in lines if len(line) <= max_line]
                stats.too_long += len(lines) - len(kept)
                lines = kept
            out += lines
            stats.lines += len(lines)
            f.offset += j + 1
            consumed += j + 1
            f.tail = (f.tail + data[: j + 1])[-TAIL_BYTES:] if j + 1 < TAIL_BYTES else data[j + 1 - TAIL_BYTES : j + 1]
            if len(data) < self._chunk:
                break
        if consumed:
            stats.bytes_read += consumed
            f.idle_since = now
            f.size = max(f.size, f.offset)
        return consumed

    def _close_idle(self, now: float) -> None:
        for key, f in list(self._files.items()):
            if f.detached and now - f.idle_since >= self.rotate_grace:
                os.close(f.fd)
                del self._files[key]
                self._fate[key] = "delete" if f.nlink == 0 else "rename"
                self._release_shadows(key, _Snapshot(f.fp, f.fp_len, f.offset, f.tail, now))
                self._dirty = True
        if len(self._fate) > 4 * _RETIRED_MAX:
            for key in list(self._fate)[: len(self._fate) - 2 * _RETIRED_MAX]:
                del self._fate[key]

    # ------------------------------------------------------------------ state

    def _load_state(self) -> None:
        if self._state_path is None:
            return
        try:
            raw = json.loads(self._state_path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("tailer %s: ignoring unreadable state %s: %s", self.name, self._state_path, exc)
            return
        try:
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"version {raw.get('version')!r}")
            files = {}
            for key, entry in raw["files"].items():
                files[key] = {
                    "path": str(entry["path"]),
                    "offset": int(entry["offset"]),
                    "fingerprint": str(entry["fingerprint"]),
                    "fingerprint_bytes": int(entry["fingerprint_bytes"]),
                    "tail": bytes.fromhex(entry["tail"]),
                    "skipping": bool(entry["skipping"]),
                    "shadow_of": entry.get("shadow_of"),
                    "copy_of": entry.get("copy_of"),
                }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("tailer %s: ignoring malformed state %s: %s", self.name, self._state_path, exc)
            return
        self._saved = files
        # Files that appear while we were stopped are read whole, unless the glob changed.
        self._resumed = raw.get("pattern") == self.pattern

    def _save(self) -> None:
        self._dirty = False
        self._last_save = self._clock()
        if self._state_path is None:
            return
        files: dict[str, dict[str, Any]] = {}
        for f in self._files.values():
            offset, tail, skipping = f.acked
            entry: dict[str, Any] = {
                "path": f.path,
                "offset": offset,
                "fingerprint": f.fp,
                "fingerprint_bytes": f.fp_len,
                "tail": tail.hex(),
                "skipping": skipping,
            }
            if f.shadow_of is not None:
                entry["shadow_of"] = _key_text(f.shadow_of)
            if f.copy_of is not None:
                entry["copy_of"] = {"offset": f.copy_of.offset, "tail": f.copy_of.tail.hex()}
            files[_key_text(f.key)] = entry
        doc = {"version": STATE_VERSION, "source": self.name, "pattern": self.pattern, "files": files}
        self._state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._state_path.with_name(self._state_path.name + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._state_path)


def _is_regular(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o100000


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe != name or not safe:
        safe += "-" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return safe
