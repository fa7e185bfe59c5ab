"""Follow the log files of one path glob: complete lines only, rotation-safe, offsets kept on disk.

A :class:`Tailer` polls: each :meth:`Tailer.poll` lists the glob, notices rotations,
reads what is new (``pread`` in chunks of up to 1 MiB, split on ``\\n``) and returns the
complete lines, without their ``\\n``. The owner counts them, then calls
:meth:`Tailer.commit`; only committed offsets are saved, so a restart at any moment
loses nothing and re-reads at most the lines returned since the last commit (none
after ``commit(force=True); close()``).

Intended use: one Tailer per log source, driven by one thread at a time. Reads block,
so the exporter calls ``poll`` and ``commit`` from a worker thread (``run_in_executor``),
every 0.25-1 s, and again at once while ``poll`` keeps returning lines; ``max_bytes``
bounds the work of one call. :attr:`Tailer.stats` may be read from any thread.

Files are known by device + inode and by their first bytes (fail2ban's recipe: a file
was rewritten if its size fell below the offset or its first bytes changed). What it
survives:

- rename + create: the renamed file is read to its end through the descriptor already
  open, before the new one, and kept ``rotate_grace`` seconds in case the writer has
  not reopened yet; a renamed file the glob still matches is simply followed on.
- copytruncate: the truncation is noticed and the file is read again from 0. A copy the
  glob matches (``access.log.1``) is recognised by its content: it yields only the lines
  the truncation took away before they were read, never the rest a second time.
- delete + recreate; files that appear later (read from their first byte); several files
  per glob. Compressed files (``.gz``, ``.bz2``, ``.xz``, ``.zst``, ...) are never read.
- ``start: end|beginning`` applies to the files present at the first poll when the
  source has no saved state; after a restart, files that appeared meanwhile are read whole.
- Only regular files are read: a symlink, FIFO or device the glob matches is skipped, and
  one swapped in between the listing and the open is refused by the open itself
  (``O_NOFOLLOW | O_NONBLOCK``, then ``fstat``), so it can neither block nor redirect a read.
  The exception: a symlink that resolves to a regular file under ``link_roots`` (default
  ``/var/log/pods``, where the kubelet's ``/var/log/containers`` links point) is followed as
  that file, by its resolved path.
- A line longer than ``max_line_bytes`` is counted in ``stats.too_long`` and skipped
  without being buffered.

Rotations that follow each other faster than the polls can lose a file the glob does
not match (as in every polling tailer); the state file holds hashes, never log text.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from slaprobe.atomicfile import write_atomically

log = logging.getLogger(__name__)

HEAD_BYTES = 256  # a file is known by its inode and its first bytes, up to this many
TAIL_BYTES = 64  # the bytes before an offset, kept to confirm that a new file is a copy
COPY_CHECK_BYTES = 64 * 1024  # compared byte for byte before a new file counts as a copy
CHUNK_BYTES = 1 << 20
DEFAULT_MAX_LINE_BYTES = 64 * 1024
DEFAULT_POLL_BYTES = 1 << 20  # per poll() call; call again at once while it returns lines
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lz", ".z", ".zip", ".br", ".7z", ".sz")
STATE_VERSION = 1

RotationKind = Literal["rename", "truncate", "delete"]
Start = Literal["end", "beginning"]
Role = Literal["follow", "undecided", "shadow", "copy", "ignored"]
Key = tuple[int, int]  # (st_dev, st_ino)

# The path may have been swapped since it was listed: O_NOFOLLOW refuses a symlink put in its
# place, O_NONBLOCK keeps a FIFO from blocking the open (fstat then rejects it as not regular).
# Symlinks followed, to their resolved path, only into these directories: the kubelet's
# /var/log/containers/*.log links point into /var/log/pods (any other symlink is skipped).
LINK_ROOTS: tuple[str, ...] = ("/var/log/pods",)
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)

# Bounds on what is remembered of files no longer followed (a noisy directory must not grow memory).
_RETIRED_MAX = 32
_RETIRED_TTL = 600.0


@dataclass
class TailerStats:
    """Counters of one tailer, for self-metrics (read from any thread)."""

    bytes_read: int = 0  # bytes consumed: lines, their newlines, and skipped over-long lines
    lines: int = 0  # complete lines returned by poll()
    too_long: int = 0  # lines longer than max_line_bytes, skipped
    rotations: dict[str, int] = field(default_factory=lambda: {"rename": 0, "truncate": 0, "delete": 0})
    lag_bytes: int = 0  # after the last poll: file sizes minus offsets, over the files read
    files: int = 0  # files open after the last poll
    state_errors: int = 0  # failed writes of the state file (logged; reading goes on)


@dataclass(frozen=True)
class FollowedFile:
    """One file as of the last poll (for status pages and tests)."""

    path: str
    offset: int
    size: int
    # copy: of another file, not read; undecided: too short yet to tell; ignored: compressed
    state: Literal["live", "detached", "copy", "undecided", "ignored"]


@dataclass
class _Snapshot:
    """What a rewritten or vanished file looked like, so that a copy of it resumes at its offset."""

    head: bytes | None  # None when loaded from a state file (which keeps only hashes)
    fp: str
    fp_len: int
    offset: int
    tail_hash: str
    tail_len: int
    at: float


_sequence = itertools.count()

# Compressed files are never read, whatever their name (gzip, bzip2, xz, zstd, lz4, zip).
_COMPRESSED_MAGIC = (b"\x1f\x8b\x08", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18", b"PK\x03\x04")


def _hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _key_text(key: Key) -> str:
    return f"{key[0]}:{key[1]}"


def _pread(fd: int, size: int, offset: int) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError:
        return b""


def _read_head(fd: int) -> bytes:
    """A file's first bytes, without trailing NULs (space preallocated, written in place later)."""
    return _pread(fd, HEAD_BYTES, 0).rstrip(b"\x00")


class _File:
    __slots__ = (
        "acked",
        "copy_of",
        "detached",
        "dev",
        "end_if_new",
        "fd",
        "head",
        "idle_since",
        "ino",
        "mtime_ns",
        "nlink",
        "offset",
        "path",
        "recovered",
        "replaced",
        "role",
        "seq",
        "shadow_of",
        "size",
        "skipping",
        "tail",
        "verified",
    )

    def __init__(self, fd: int, st: os.stat_result, path: str, now: float) -> None:
        self.fd = fd
        self.dev, self.ino = st.st_dev, st.st_ino
        self.path = path
        self.size, self.mtime_ns, self.nlink = st.st_size, st.st_mtime_ns, st.st_nlink
        self.offset = 0
        self.tail = b""  # up to TAIL_BYTES before offset
        self.skipping = False  # inside an over-long line
        self.head = _read_head(fd)
        self.detached = False  # no longer matched by the glob (renamed away or deleted)
        self.idle_since = now
        self.role: Role = "follow"
        self.shadow_of: Key | None = None  # role shadow: the live file this is a copy of
        self.verified = 0  # role shadow: bytes compared equal to that file
        self.copy_of: _Snapshot | None = None  # role copy: the rewritten file whose offset it resumes at
        self.end_if_new = False  # role undecided: start at the end if it turns out a new file
        self.acked: tuple[int, bytes, bool] = (0, b"", False)
        self.seq = next(_sequence)  # files found earlier are read first
        self.recovered = False  # a copy that resumed this poll: read before the rest
        self.replaced: Key | None = None  # the file whose path this one took: a rotation, unless this is a copy

    @property
    def key(self) -> Key:
        """(device, inode)."""
        return self.dev, self.ino

    def snapshot(self, now: float) -> _Snapshot:
        """What this file looks like now, for a copy of it to be recognised by."""
        return _Snapshot(
            self.head, _hash(self.head), len(self.head), self.offset, _hash(self.tail), len(self.tail), now
        )


def _compare_head(head: bytes, ref: _Snapshot | _File) -> Literal["copy", "prefix", "other"]:
    """Does ``head`` (a new file's first bytes) start like ``ref``: fully, so far, or not at all?"""
    ref_head = ref.head
    if ref_head is None:  # only a hash: decides once the new file is long enough
        assert isinstance(ref, _Snapshot)
        ok = ref.fp_len and len(head) >= ref.fp_len and _hash(head[: ref.fp_len]) == ref.fp
        return "copy" if ok else "other"
    if not ref_head:
        return "other"
    if len(head) >= len(ref_head):
        return "copy" if head.startswith(ref_head) else "other"
    return "prefix" if ref_head.startswith(head) else "other"


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
        link_roots: Sequence[str] = LINK_ROOTS,
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
        self._link_roots = tuple(os.path.realpath(root) for root in link_roots)
        self._clock = clock
        self._chunk = max(CHUNK_BYTES, max_line_bytes + 1)
        self._files: dict[Key, _File] = {}
        self._path_owner: dict[str, Key] = {}  # the file last seen at each path
        self._unreadable: set[str] = set()  # paths already warned about
        self._fate: dict[Key, RotationKind] = {}  # how files we stopped following ended
        self._retired: list[_Snapshot] = []
        self._first_poll = True
        self._dirty = False
        self._last_save = float("-inf")
        self._lock = threading.Lock()
        self._state_path = Path(state_dir) / f"tailer-{_safe_name(name)}.json" if state_dir is not None else None
        self._saved: dict[str, dict[str, Any]] = {}
        #: The files of the lines the last poll returned: (path, end) per file, in order, so that
        #: ``lines[previous end:end]`` came from ``path`` (container log unwrapping joins per file).
        self.last_spans: list[tuple[str, int]] = []
        self._resumed = False
        self._load_state()

    # ------------------------------------------------------------------ public API

    def poll(self, max_bytes: int = DEFAULT_POLL_BYTES) -> list[bytes]:
        """New complete lines (without ``\\n``) of every file; reads about ``max_bytes`` at most."""
        with self._lock:
            now = self._clock()
            seen = self._scan()
            self._update_followed(seen, now)
            self._open_new(seen, now)
            for f in list(self._files.values()):
                self._settle(f, now)
            lines: list[bytes] = []
            spans: list[tuple[str, int]] = []
            budget = max_bytes
            # Old content first: rotated-away files, the tail a copy recovered, then the files in
            # the order they were found (a renamed file before the one that took its place).
            for f in sorted(self._files.values(), key=lambda f: (not f.detached, not f.recovered, f.seq)):
                if budget <= 0:
                    break
                if f.role == "follow":
                    budget -= self._read(f, lines, budget, now)
                    f.recovered = False
                    if len(lines) > (spans[-1][1] if spans else 0):
                        spans.append((f.path, len(lines)))
            self._close_idle(now)
            self._retired = [s for s in self._retired if now - s.at < _RETIRED_TTL][-_RETIRED_MAX:]
            self.stats.lag_bytes = sum(max(0, f.size - f.offset) for f in self._files.values() if f.role == "follow")
            self.stats.files = len(self._files)
            self.last_spans = spans
            return lines

    def commit(self, *, force: bool = False) -> None:
        """Acknowledge every line returned so far; save offsets (at most every ``save_interval`` unless forced)."""
        with self._lock:
            for f in self._files.values():
                acked = (f.offset, f.tail, f.skipping)
                if acked != f.acked:
                    f.acked = acked
                    self._dirty = True
            if self._dirty and (force or self._clock() - self._last_save >= self.save_interval):
                self._save()

    def close(self) -> None:
        """Save the committed offsets and close every file (uncommitted lines are read again next time).

        A later ``poll`` resumes at the committed offsets, as a new Tailer on the same state would.
        """
        with self._lock:
            if self._dirty:
                self._save()
            saved = self._entries()
            for f in self._files.values():
                os.close(f.fd)
            self._files.clear()
            self._saved, self._resumed, self._first_poll = saved, True, True

    def followed(self) -> list[FollowedFile]:
        """The files open after the last poll."""
        with self._lock:
            return [
                FollowedFile(f.path, f.offset, f.size, _state_of(f))
                for f in sorted(self._files.values(), key=lambda f: f.path)
            ]

    def __enter__(self) -> Tailer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ files that we follow

    def _scan(self) -> dict[Key, tuple[str, os.stat_result]]:
        seen: dict[Key, tuple[str, os.stat_result]] = {}
        paths = sorted(glob.glob(self.pattern))
        if len(self._path_owner) > 2 * len(paths) + 64:  # forget paths long gone
            current = set(paths)
            self._path_owner = {p: k for p, k in self._path_owner.items() if p in current}
            self._unreadable &= current
        for path in paths:
            if path.lower().endswith(COMPRESSED_SUFFIXES):
                continue
            try:
                st = os.lstat(path)  # a symlink is not followed (it may point at a private file)
            except OSError:
                continue
            if _is_regular(st):
                seen.setdefault((st.st_dev, st.st_ino), (path, st))
            elif self._link_roots and stat.S_ISLNK(st.st_mode):
                linked = _linked_file(path, self._link_roots)
                if linked is not None:
                    seen.setdefault((linked[1].st_dev, linked[1].st_ino), linked)
        return seen

    def _update_followed(self, seen: dict[Key, tuple[str, os.stat_result]], now: float) -> None:
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
                f.size, f.mtime_ns = st.st_size, st.st_mtime_ns
                self._check_rewrite(f, now)

    def _check_rewrite(self, f: _File, now: float) -> None:
        """Notice a truncation (size below the offset, or other first bytes); keep the head fresh."""
        old = f.head
        # Common case, a file that grew: one 256-byte read tells it was not rewritten.
        full = len(old) == HEAD_BYTES and f.size >= max(f.offset, HEAD_BYTES) and f.role == "follow"
        if full and _pread(f.fd, HEAD_BYTES, 0) == old:
            return
        head = _read_head(f.fd) if f.size else b""
        if f.size < f.offset or not (head.startswith(old) if len(head) >= len(old) else False):
            if f.role == "undecided":  # it has not been read: decide again on its new bytes
                f.head = head
                return
            self._rewritten(f, now)
        f.head = head

    def _rewritten(self, f: _File, now: float) -> None:
        """``f`` was truncated or rewritten: read it again from 0; a copy of it may resume where it was."""
        self.stats.rotations["truncate"] += 1
        snap = f.snapshot(now)
        if f.head:
            self._retired.append(snap)
        for other in self._files.values():
            if other.role == "shadow" and other.shadow_of == f.key:
                other.role, other.shadow_of, other.copy_of = "copy", None, snap
        f.offset, f.tail, f.skipping = 0, b"", False
        f.head = _read_head(f.fd)
        if f.role in ("shadow", "copy"):  # a copy that was itself rewritten is a file of its own now
            f.role, f.shadow_of, f.copy_of = "follow", None, None
        elif f.role == "ignored":
            f.role = "undecided"

    # ------------------------------------------------------------------ files that are new to us

    def _open_new(self, seen: dict[Key, tuple[str, os.stat_result]], now: float) -> None:
        first = self._first_poll
        self._first_poll = False
        news: list[_File] = []
        for path, _ in sorted(seen.values(), key=lambda ps: (ps[1].st_mtime_ns, ps[0])):
            try:
                fd = os.open(path, _OPEN_FLAGS)
            except OSError as exc:
                if path not in self._unreadable:
                    self._unreadable.add(path)
                    log.warning("tailer %s: cannot read %s: %s", self.name, path, exc.strerror)
                continue
            self._unreadable.discard(path)
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) in self._files or not _is_regular(st):
                os.close(fd)
                continue
            f = _File(fd, st, path, now)
            self._files[f.key] = f
            news.append(f)
            previous = self._path_owner.get(path)
            self._path_owner[path] = f.key
            if previous is not None and previous != f.key and not first:
                f.replaced = previous  # counted once _decide knows it is not a copytruncate copy
        if first and self._saved:
            news = self._resume(news, now)
        at_end = first and not self._resumed and self.start == "end"
        for f in news:
            f.role, f.end_if_new = "undecided", at_end
            self._decide(f, now)
            f.acked = (f.offset, f.tail, f.skipping)
        if news:
            self._dirty = True

    def _count_replacement(self, previous: Key) -> None:
        """A new file took the path of one we followed: count a rotation, by what became of the old one."""
        old = self._files.get(previous)
        if old is not None:
            kind: RotationKind = "delete" if old.detached and old.nlink == 0 else "rename"
        else:
            kind = self._fate.get(previous, "delete")
        self.stats.rotations[kind] += 1

    def _decide(self, f: _File, now: float) -> None:
        """Is a new file a copy of one we follow or followed (copytruncate), a new file, or too short to tell?"""
        prefix = False
        for snap in reversed(self._retired):
            verdict = _compare_head(f.head, snap)
            if verdict == "copy":
                f.role, f.copy_of, f.idle_since, f.replaced = "copy", snap, now, None
                return
            prefix = prefix or verdict == "prefix"
        for other in self._files.values():
            if other is f or other.role != "follow":
                continue
            verdict = _compare_head(f.head, other)
            if verdict == "copy":
                f.role, f.shadow_of, f.verified, f.idle_since = "shadow", other.key, 0, now
                f.replaced = None  # a copytruncate copy: the truncate of its original is the rotation
                return
            prefix = prefix or verdict == "prefix"
        if prefix:
            return  # its bytes so far begin another file's: wait until they say which it is
        if f.replaced is not None:
            self._count_replacement(f.replaced)
            f.replaced = None
        if f.head.startswith(_COMPRESSED_MAGIC):
            f.role = "ignored"
            return
        f.role = "follow"
        if f.end_if_new:
            self._seek_end(f)

    def _settle(self, f: _File, now: float) -> None:
        """Move a file out of the undecided, shadow and copy roles once its bytes allow."""
        if f.role == "undecided":
            if len(f.head) < HEAD_BYTES and f.size > len(f.head):
                f.head = _read_head(f.fd)
            self._decide(f, now)
        elif f.role == "shadow":
            original = self._files.get(f.shadow_of) if f.shadow_of is not None else None
            if original is None:
                f.role, f.shadow_of = "follow", None
                self._seek_end(f)
                return
            limit = min(f.size, original.size, COPY_CHECK_BYTES)
            if limit > f.verified:
                theirs = _pread(original.fd, limit, 0)
                if len(theirs) < limit or not theirs.startswith(original.head):
                    return  # the original is being rewritten right now: the next poll sees it
                if _pread(f.fd, limit, 0) != theirs:
                    f.role, f.shadow_of, f.offset = "follow", None, 0  # not a copy: a file of its own
                    return
                f.verified = limit
        elif f.role == "copy":
            snap = f.copy_of
            assert snap is not None
            if f.size >= snap.offset:
                if _hash(_pread(f.fd, snap.tail_len, snap.offset - snap.tail_len)) == snap.tail_hash:
                    f.offset = snap.offset  # the copy holds what the rewrite took: read it from there
                    f.recovered = True
                    f.tail = _pread(f.fd, TAIL_BYTES, max(0, snap.offset - TAIL_BYTES))[-TAIL_BYTES:]
                else:
                    f.offset, f.tail = 0, b""  # same first bytes, other content: a file of its own
                f.role, f.copy_of = "follow", None
            elif now - f.idle_since >= self.rotate_grace:
                # A copy shorter than what was read of its original holds nothing unread.
                f.role, f.copy_of = "follow", None
                self._seek_end(f)

    # ------------------------------------------------------------------ reading

    def _seek_end(self, f: _File) -> None:
        """Offset after the last complete line (the rest of a partial last line is skipped)."""
        size = f.size
        if not size:
            f.offset, f.tail, f.skipping = 0, b"", False
            return
        back = min(size, self.max_line_bytes + 1)
        data = _pread(f.fd, back, size - back)
        i = data.rfind(b"\n")
        if i >= 0:
            f.offset, f.skipping = size - back + i + 1, False
            f.tail = data[max(0, i + 1 - TAIL_BYTES) : i + 1]
        elif back < size:
            f.offset, f.skipping = size, True  # inside a line longer than the limit: skip its rest
        else:
            f.offset, f.skipping = 0, False  # one partial line: the writer is still on it

    def _read(self, f: _File, out: list[bytes], budget: int, now: float) -> int:
        """Append the complete lines of ``f`` past its offset to ``out``; return the bytes consumed."""
        consumed = 0
        max_line = self.max_line_bytes
        stats = self.stats
        while consumed < budget:
            want = min(self._chunk, budget - consumed)
            data = self._pread_checked(f, want, now)
            if data is not None and len(data) == want <= max_line and b"\n" not in data:
                if consumed:
                    break  # the budget ends inside a line: the rest next time
                want = max_line + 1  # a small budget must still see whether a line is too long
                data = self._pread_checked(f, want, now)
            if not data:
                break
            if f.skipping:
                i = data.find(b"\n")
                if i < 0:
                    f.offset += len(data)
                    consumed += len(data)
                    f.tail = _tail_after(f.tail, data, len(data))
                    continue
                f.skipping = False
                f.offset += i + 1
                consumed += i + 1
                f.tail = _tail_after(f.tail, data, i + 1)
                data = data[i + 1 :]
            if data[:1] == b"\x00":
                # A writer without O_APPEND goes on at its old offset after a copytruncate, and
                # the hole before reads as NULs: skip them, once real bytes follow (a file
                # preallocated with NULs at its end is waited on, not skipped).
                n = len(data) - len(data.lstrip(b"\x00"))
                if n == len(data) < want:
                    break
                f.offset += n
                consumed += n
                f.tail = _tail_after(f.tail, data, n)
                data = data[n:]
                if not data:
                    continue
            j = data.rfind(b"\n")
            if j < 0:
                if len(data) > max_line:
                    stats.too_long += 1
                    f.skipping = True
                    f.offset += len(data)
                    consumed += len(data)
                    f.tail = _tail_after(f.tail, data, len(data))
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
            f.tail = _tail_after(f.tail, data, j + 1)
            if len(data) < want:
                break  # end of file
        if consumed:
            stats.bytes_read += consumed
            f.idle_since = now
            f.size = max(f.size, f.offset)
        return consumed

    def _pread_checked(self, f: _File, size: int, now: float) -> bytes | None:
        """``size`` bytes at the offset, read together with the bytes before it to prove the file
        was not rewritten since (a copytruncate between our stat and our read); None if it was."""
        keep = len(f.tail)
        if not keep:
            return _pread(f.fd, size, f.offset)
        data = _pread(f.fd, keep + size, f.offset - keep)
        if data[:keep] != f.tail:
            self._rewritten(f, now)
            return None
        return data[keep:]

    def _close_idle(self, now: float) -> None:
        for key, f in list(self._files.items()):
            if f.detached and now - f.idle_since >= self.rotate_grace:
                os.close(f.fd)
                del self._files[key]
                self._fate[key] = "delete" if f.nlink == 0 else "rename"
                self._dirty = True
                for other in self._files.values():
                    if other.role == "shadow" and other.shadow_of == key:
                        other.role, other.shadow_of, other.copy_of = "copy", None, f.snapshot(now)
        if len(self._fate) > 4 * _RETIRED_MAX:
            for key in list(self._fate)[: len(self._fate) - 2 * _RETIRED_MAX]:
                del self._fate[key]

    # ------------------------------------------------------------------ state

    def _resume(self, news: list[_File], now: float) -> list[_File]:
        """Continue the files of the last run at their saved offsets; return the files that are new."""
        resumed: dict[str, _File] = {}
        for f in news:
            entry = self._saved.get(_key_text(f.key))
            if entry is None:
                continue
            n = entry["fingerprint_bytes"]
            if len(f.head) < n or _hash(f.head[:n]) != entry["fingerprint"] or f.size < entry["offset"]:
                self.stats.rotations["truncate"] += 1  # rewritten while we were stopped; a copy may resume it
                continue
            resumed[_key_text(f.key)] = f
            f.offset, f.skipping = entry["offset"], entry["skipping"]
            f.tail = _pread(f.fd, TAIL_BYTES, max(0, f.offset - TAIL_BYTES))[: f.offset]
            f.acked = (f.offset, f.tail, f.skipping)
        gone = {key: _entry_snapshot(e, now) for key, e in self._saved.items() if key not in resumed}
        self._retired += [snap for snap in gone.values() if snap.fp_len]
        for key, f in resumed.items():
            entry = self._saved[key]
            role = entry.get("role", "follow")
            if role == "shadow":
                target = entry.get("shadow_of")
                if target in resumed:
                    f.role, f.shadow_of = "shadow", resumed[target].key
                elif target in gone:
                    f.role, f.copy_of = "copy", gone[target]
            elif role == "copy":
                f.role, f.copy_of = "copy", _entry_snapshot(entry["copy_of"], now)
            elif role == "undecided":
                f.role = "undecided"
        self._saved.clear()
        keep = {id(f) for f in resumed.values()}
        return [f for f in news if id(f) not in keep]

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
                files[str(key)] = {
                    "path": str(entry["path"]),
                    "offset": int(entry["offset"]),
                    "fingerprint": str(entry["fingerprint"]),
                    "fingerprint_bytes": int(entry["fingerprint_bytes"]),
                    "tail_hash": str(entry["tail_hash"]),
                    "tail_bytes": int(entry["tail_bytes"]),
                    "skipping": bool(entry["skipping"]),
                    "role": str(entry.get("role", "follow")),
                    "shadow_of": entry.get("shadow_of"),
                    "copy_of": entry.get("copy_of"),
                }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("tailer %s: ignoring malformed state %s: %s", self.name, self._state_path, exc)
            return
        self._saved = files
        # Files that appeared while we were stopped are read whole, unless the glob changed.
        self._resumed = raw.get("pattern") == self.pattern

    def _save(self) -> None:
        self._dirty = False
        self._last_save = self._clock()
        if self._state_path is None:
            return
        try:
            self._write_state()
        except OSError as exc:
            self.stats.state_errors += 1
            self._dirty = True
            log.warning("tailer %s: cannot save offsets to %s: %s", self.name, self._state_path, exc)

    def _write_state(self) -> None:
        assert self._state_path is not None
        doc = {"version": STATE_VERSION, "source": self.name, "pattern": self.pattern, "files": self._entries()}
        # A new temporary file (O_EXCL | O_NOFOLLOW), so a symlink planted at its name is never followed.
        write_atomically(self._state_path, json.dumps(doc, indent=1, sort_keys=True).encode())

    def _entries(self) -> dict[str, dict[str, Any]]:
        """The committed state of every file, keyed by ``dev:ino`` (hashes only, no log text)."""
        files: dict[str, dict[str, Any]] = {}
        for f in self._files.values():
            offset, tail, skipping = f.acked
            entry: dict[str, Any] = {
                "path": f.path,
                "offset": offset,
                "fingerprint": _hash(f.head),
                "fingerprint_bytes": len(f.head),
                "tail_hash": _hash(tail),  # of the bytes before the offset: a copy is matched on it
                "tail_bytes": len(tail),
                "skipping": skipping,
                "role": f.role,
            }
            if f.role == "shadow" and f.shadow_of is not None:
                entry["shadow_of"] = _key_text(f.shadow_of)
            if f.role == "copy" and f.copy_of is not None:
                c = f.copy_of
                entry["copy_of"] = {"offset": c.offset, "tail_hash": c.tail_hash, "tail_bytes": c.tail_len}
            files[_key_text(f.key)] = entry
        return files


def _entry_snapshot(entry: dict[str, Any], now: float) -> _Snapshot:
    return _Snapshot(
        None,
        entry.get("fingerprint", ""),
        int(entry.get("fingerprint_bytes", 0)),
        int(entry["offset"]),
        entry.get("tail_hash", _hash(b"")),
        int(entry.get("tail_bytes", 0)),
        now,
    )


def _state_of(f: _File) -> Literal["live", "detached", "copy", "undecided", "ignored"]:
    if f.role in ("shadow", "copy"):
        return "copy"
    if f.role in ("undecided", "ignored"):
        return f.role
    return "detached" if f.detached else "live"


def _tail_after(tail: bytes, data: bytes, end: int) -> bytes:
    """The last TAIL_BYTES before an offset moved ``end`` bytes into ``data`` past ``tail``."""
    if end >= TAIL_BYTES:
        return data[end - TAIL_BYTES : end]
    return (tail + data[:end])[-TAIL_BYTES:]


def _linked_file(path: str, roots: tuple[str, ...]) -> tuple[str, os.stat_result] | None:
    """The regular file a symlink resolves to, by its resolved path, when that lies under one of ``roots``."""
    try:
        target = os.path.realpath(path, strict=True)  # raises when the link or its target went away
        if not any(os.path.commonpath((target, root)) == root for root in roots):
            return None
        st = os.lstat(target)
    except (OSError, ValueError):
        return None
    return (target, st) if _is_regular(st) else None


def _is_regular(st: os.stat_result) -> bool:
    return (st.st_mode & 0o170000) == 0o100000


def _safe_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    if safe != name or not safe:
        safe += "-" + hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return safe
