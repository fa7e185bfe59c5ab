"""The tailer against real files: rotation of every kind while a writer appends, restarts, limits.

Lines are numbered; a test passes when the tailer returned every number exactly once.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from slaprobe.probes.tailer import Tailer

WIDTH = 48  # bytes per line, so a file's fingerprint soon covers its first 256 bytes


def line(n: int, tag: str = "") -> bytes:
    """Line number ``n``: digits first, padded to WIDTH with its newline."""
    return f"{n:08d} {tag} ".ljust(WIDTH - 1, "x").encode() + b"\n"


def numbers(lines: list[bytes]) -> list[int]:
    return [int(x[:8]) for x in lines]


class Polls:
    """How many polls the test has made; a writer waits on it so rotations are a poll apart."""

    def __init__(self) -> None:
        self.count = 0
        self.changed = threading.Condition()

    def tick(self) -> None:
        with self.changed:
            self.count += 1
            self.changed.notify_all()

    def wait_for(self, polls: int, limit: float = 1.0) -> None:
        with self.changed:
            target = self.count + polls
            self.changed.wait_for(lambda: self.count >= target, limit)


def follow(
    tailer: Tailer,
    want: int,
    *,
    busy: Callable[[], bool] = lambda: False,
    limit: float = 1.5,
    polls: Polls | None = None,
) -> list[int]:
    """Poll (and commit) until ``want`` numbers came and the writer is done, or the deadline passes."""
    got: list[int] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got += numbers(tailer.poll())
        tailer.commit()
        if polls is not None:
            polls.tick()
        if len(got) >= want and not busy():
            got += numbers(tailer.poll())  # anything counted twice would show up here
            break
    return got


def exactly_once(got: list[int], total: int) -> None:
    missing = sorted(set(range(total)) - set(got))
    twice = sorted(n for n in set(got) if got.count(n) > 1) if len(got) != len(set(got)) else []
    assert not missing and not twice and len(got) == total, (
        f"{len(got)} lines, missing {missing[:10]}..., twice {twice[:10]}..."
    )


class Writer(threading.Thread):
    """Appends numbered lines to ``path`` one write each, rotating as told before line N."""

    def __init__(self, path: Path, total: int, rotations: dict[int, str], polls: Polls | None = None) -> None:
        super().__init__(daemon=True)
        self.path, self.total, self.rotations, self.polls = path, total, rotations, polls
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # surfaced by join_writer
            self.error = exc

    def _write(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        late: list[int] = []  # lines still written to the old file after a rotation
        for n in range(self.total):
            kind = self.rotations.get(n)
            if kind is not None:
                if self.polls is not None:  # real rotations are far apart; polling needs one between them
                    self.polls.wait_for(2)
                fd = self._rotate(kind, fd, late)
            if late:
                late.pop()
                if not late:
                    os.close(self._old)
            os.write(self._old if late else fd, line(n))
        os.close(fd)

    def _rotate(self, kind: str, fd: int, late: list[int]) -> int:
        p = self.path
        if kind == "copytruncate":  # logrotate's copytruncate: copy, then truncate in place
            shift(p)
            shutil.copyfile(p, f"{p}.1")
            os.truncate(p, 0)
            return fd
        if kind == "rename":  # logrotate's default: rename, create; the app reopens a little later
            shift(p)
            os.rename(p, f"{p}.1")
        elif kind == "delete":  # delete and recreate; the app still writes to the deleted file a moment
            os.unlink(p)
        else:
            raise ValueError(kind)
        new = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        self._old = fd
        late[:] = [0, 0, 0]
        return new


def shift(p: Path) -> None:
    """access.log.1 -> access.log.2 (kept uncompressed, as with delaycompress)."""
    if os.path.exists(f"{p}.1"):
        os.replace(f"{p}.1", f"{p}.2")


def run_writer(tailer: Tailer, path: Path, total: int, rotations: dict[int, str]) -> list[int]:
    polls = Polls()
    writer = Writer(path, total, rotations, polls)
    writer.start()
    got = follow(tailer, total, busy=writer.is_alive, polls=polls)
    writer.join(2)
    assert writer.error is None, writer.error
    return got


# ---------------------------------------------------------------------------- rotation while a writer appends


@pytest.mark.parametrize("glob_suffix", ["", "*"])
def test_rename_and_create_while_writing_loses_and_repeats_nothing(tmp_path: Path, glob_suffix: str) -> None:
    log = tmp_path / "app.log"
    log.touch()
    tailer = Tailer("app", f"{log}{glob_suffix}", start="beginning")
    total = 6000
    got = run_writer(tailer, log, total, {1500: "rename", 4000: "rename"})
    exactly_once(got, total)
    assert tailer.stats.rotations["rename"] == 2
    assert tailer.stats.lines == total


def test_copytruncate_while_writing_reads_the_unread_rest_from_the_copy(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    tailer = Tailer("app", f"{log}*", start="beginning")
    total = 6000
    got = run_writer(tailer, log, total, {1500: "copytruncate", 4000: "copytruncate"})
    exactly_once(got, total)
    # The second copy takes the path app.log.1 from the first (shifted to .2): still one rotation.
    assert tailer.stats.rotations == {"rename": 0, "truncate": 2, "delete": 0}


def test_delete_and_recreate_while_writing_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.touch()
    tailer = Tailer("app", str(log), start="beginning")
    total = 6000
    got = run_writer(tailer, log, total, {1500: "delete", 4000: "delete"})
    exactly_once(got, total)
    assert tailer.stats.rotations["delete"] == 2


def test_a_glob_follows_several_files_and_one_that_appears_later(tmp_path: Path) -> None:
    tailer = Tailer("web", str(tmp_path / "*.log"), start="end")
    assert tailer.poll() == []  # nothing there yet: later files are read from their first line
    writers = [Writer(tmp_path / f"site{i}.log", 0, {}) for i in range(3)]
    total = 3000

    def write_all() -> None:
        fds = [os.open(w.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT) for w in writers]
        for n in range(total):
            os.write(fds[n % 3], line(n, f"site{n % 3}"))
        for fd in fds:
            os.close(fd)

    thread = threading.Thread(target=write_all)
    thread.start()
    got = follow(tailer, total, busy=thread.is_alive)
    thread.join()
    exactly_once(got, total)
    assert tailer.stats.files == 3


def test_copytruncate_without_the_copy_in_the_glob_starts_the_file_again(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(line(n) for n in range(100)))
    tailer = Tailer("app", str(log), start="beginning")
    assert numbers(tailer.poll()) == list(range(100))
    shutil.copyfile(log, f"{log}.1")
    with open(log, "r+b") as fh:
        fh.truncate(0)
    with open(log, "ab") as fh:
        fh.write(b"".join(line(n) for n in range(100, 110)))
    assert numbers(tailer.poll()) == list(range(100, 110))
    assert tailer.stats.rotations == {"rename": 0, "truncate": 1, "delete": 0}


def test_truncated_and_refilled_past_the_offset_between_polls_is_noticed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(line(n) for n in range(10)))
    tailer = Tailer("app", str(log), start="beginning")
    assert numbers(tailer.poll()) == list(range(10))
    log.write_bytes(b"".join(line(n) for n in range(100, 120)))  # same inode, longer than before
    assert numbers(tailer.poll()) == list(range(100, 120))
    assert tailer.stats.rotations["truncate"] == 1


def test_a_copy_of_a_live_file_is_not_read_twice(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(line(n) for n in range(50)))
    tailer = Tailer("app", f"{log}*", start="beginning")
    assert numbers(tailer.poll()) == list(range(50))
    shutil.copyfile(log, f"{log}.bak")
    with open(log, "ab") as fh:
        fh.write(line(50))
    assert numbers(tailer.poll()) == [50]
    assert [f.state for f in tailer.followed()] == ["live", "copy"]


def test_a_new_file_that_only_starts_like_another_is_read_whole(tmp_path: Path) -> None:
    header = b"# fields: time status path duration" + b" " * 300 + b"\n"  # the same first 256+ bytes
    first = tmp_path / "a.log"
    first.write_bytes(header + b"".join(line(n) for n in range(5)))
    tailer = Tailer("app", str(tmp_path / "*.log"), start="beginning")
    assert len(tailer.poll()) == 6
    (tmp_path / "b.log").write_bytes(header + b"".join(line(n) for n in range(100, 105)))
    got = tailer.poll()
    assert got[0] == header[:-1]
    assert numbers(got[1:]) == list(range(100, 105))


def test_a_renamed_file_is_closed_after_the_grace_period(tmp_path: Path) -> None:
    now = [0.0]
    log = tmp_path / "app.log"
    log.write_bytes(line(0))
    tailer = Tailer("app", str(log), start="beginning", rotate_grace=5.0, clock=lambda: now[0])
    assert numbers(tailer.poll()) == [0]
    os.rename(log, tmp_path / "app.log.1")
    log.write_bytes(line(1))
    with open(tmp_path / "app.log.1", "ab") as fh:
        fh.write(line(2))  # the writer has not reopened yet
    assert sorted(numbers(tailer.poll())) == [1, 2]
    assert [f.state for f in tailer.followed()] == ["detached", "live"]
    now[0] = 6.0
    tailer.poll()
    assert [(Path(f.path).name, f.state) for f in tailer.followed()] == [("app.log", "live")]
    assert tailer.stats.files == 1


# ---------------------------------------------------------------------------- restarts and state


def test_a_restart_in_the_middle_of_a_file_resumes_at_the_committed_line(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(b"".join(line(n) for n in range(5000)))
    first = Tailer("app", str(log), start="beginning", state_dir=state)
    counted = numbers(first.poll(max_bytes=WIDTH * 1000))
    assert 1000 <= len(counted) < 5000
    first.commit()
    uncounted = numbers(first.poll(max_bytes=WIDTH * 1000))  # read, never committed: a crash here
    first.close()
    assert uncounted
    second = Tailer("app", str(log), start="end", state_dir=state)
    rest = follow(second, 5000 - len(counted))
    assert rest[: len(uncounted)] == uncounted  # read again, since they were never counted
    exactly_once(counted + rest, 5000)


def test_restart_at_any_moment_while_writing_loses_and_repeats_nothing(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.touch()
    total = 6000
    writer = Writer(log, total, {2000: "rename", 4000: "copytruncate"})
    writer.start()
    got: list[int] = []
    deadline = time.monotonic() + 1.8
    while time.monotonic() < deadline and (writer.is_alive() or len(got) < total):
        tailer = Tailer("app", f"{log}*", start="beginning", state_dir=state)
        for _ in range(3):  # a few polls per life, then a hard stop (nothing saved but commits)
            got += numbers(tailer.poll(max_bytes=WIDTH * 300))
            tailer.commit(force=True)
        tailer.close()
    writer.join(2)
    assert writer.error is None
    exactly_once(got, total)


def test_truncation_while_stopped_reads_the_new_content_from_the_start(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(b"".join(line(n) for n in range(20)))
    with Tailer("app", str(log), start="beginning", state_dir=state) as first:
        assert len(first.poll()) == 20
        first.commit()
    log.write_bytes(b"".join(line(n) for n in range(100, 103)))
    second = Tailer("app", str(log), start="beginning", state_dir=state)
    assert numbers(second.poll()) == [100, 101, 102]
    assert second.stats.rotations["truncate"] == 1


def test_rotation_while_stopped_reads_the_rest_of_the_old_file_and_all_of_the_new(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(b"".join(line(n) for n in range(10)))
    with Tailer("app", f"{log}*", start="end", state_dir=state) as first:
        assert first.poll() == []  # start: end
        with open(log, "ab") as fh:
            fh.write(b"".join(line(n) for n in range(10, 15)))
        assert numbers(first.poll()) == list(range(10, 15))
        first.commit()
    with open(log, "ab") as fh:
        fh.write(b"".join(line(n) for n in range(15, 20)))
    os.rename(log, f"{log}.1")
    log.write_bytes(b"".join(line(n) for n in range(20, 25)))
    second = Tailer("app", f"{log}*", start="end", state_dir=state)
    assert sorted(numbers(second.poll())) == list(range(15, 25))


def test_copytruncate_while_stopped_resumes_from_the_copy(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(b"".join(line(n) for n in range(10)))
    with Tailer("app", f"{log}*", start="beginning", state_dir=state) as first:
        assert len(first.poll()) == 10
        first.commit()
    with open(log, "ab") as fh:
        fh.write(b"".join(line(n) for n in range(10, 15)))
    shutil.copyfile(log, f"{log}.1")
    log.write_bytes(b"".join(line(n) for n in range(15, 18)))
    second = Tailer("app", f"{log}*", start="beginning", state_dir=state)
    assert sorted(numbers(second.poll())) == list(range(10, 18))


def test_the_state_file_is_json_keyed_by_file_identity_and_written_atomically(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(line(0) + line(1))
    tailer = Tailer("checkout access", str(log), start="beginning", state_dir=state)
    tailer.poll()
    tailer.commit()
    files = list(state.iterdir())
    assert len(files) == 1 and files[0].name.startswith("tailer-checkout_access-")
    doc = json.loads(files[0].read_text())
    st = log.stat()
    entry = doc["files"][f"{st.st_dev}:{st.st_ino}"]
    assert (doc["source"], entry["offset"], entry["path"]) == ("checkout access", 2 * WIDTH, str(log))
    assert entry["fingerprint_bytes"] == 2 * WIDTH


def test_a_corrupt_state_file_is_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(line(0))
    state.mkdir()
    (state / "tailer-app.json").write_text("{not json")
    tailer = Tailer("app", str(log), start="beginning", state_dir=state)
    assert numbers(tailer.poll()) == [0]
    assert "unreadable state" in caplog.text


def test_commits_are_saved_at_most_every_save_interval_unless_forced(tmp_path: Path) -> None:
    now = [0.0]
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(line(0))
    tailer = Tailer("app", str(log), start="beginning", state_dir=state, save_interval=1.0, clock=lambda: now[0])
    saved = state / "tailer-app.json"

    def offset() -> int:
        return int(json.loads(saved.read_text())["files"].popitem()[1]["offset"])

    tailer.poll()
    tailer.commit()
    assert offset() == WIDTH
    with open(log, "ab") as fh:
        fh.write(line(1))
    tailer.poll()
    tailer.commit()
    assert offset() == WIDTH  # saved less than a second ago
    tailer.commit(force=True)
    assert offset() == 2 * WIDTH


# ---------------------------------------------------------------------------- lines and limits


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"one\ntw")
    tailer = Tailer("app", str(log), start="beginning")
    assert tailer.poll() == [b"one"]
    assert tailer.stats.lag_bytes == 2
    with open(log, "ab") as fh:
        fh.write(b"o")
    assert tailer.poll() == []
    with open(log, "ab") as fh:
        fh.write(b"\nthree\n")
    assert tailer.poll() == [b"two", b"three"]
    assert (tailer.stats.lag_bytes, tailer.stats.lines, tailer.stats.bytes_read) == (0, 3, 14)


def test_an_over_long_line_is_counted_and_skipped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"short\n" + b"y" * 300 + b"\nafter\n")
    tailer = Tailer("app", str(log), start="beginning", max_line_bytes=100)
    assert tailer.poll() == [b"short", b"after"]
    assert tailer.stats.too_long == 1
    assert tailer.stats.bytes_read == log.stat().st_size


def test_an_over_long_line_still_being_written_is_never_buffered(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"z" * 150)  # no newline yet, already over the limit
    tailer = Tailer("app", str(log), start="beginning", max_line_bytes=100)
    assert tailer.poll() == []
    assert tailer.stats.too_long == 1
    with open(log, "ab") as fh:
        fh.write(b"z" * 5000 + b"\nnext\n")
    assert tailer.poll() == [b"next"]
    assert tailer.stats.too_long == 1


def test_an_over_long_line_across_read_chunks(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    big = b"q" * (3 << 20)
    log.write_bytes(b"a\n" + big + b"\nb\n")
    tailer = Tailer("app", str(log), start="beginning")
    assert tailer.poll(max_bytes=8 << 20) == [b"a", b"b"]
    assert tailer.stats.too_long == 1


def test_compressed_rotated_files_are_not_read(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(1))
    with gzip.open(tmp_path / "app.log.2.gz", "wb") as gz:
        gz.write(line(99))
    (tmp_path / "app.log.3.xz").write_bytes(b"\xfd7zXZ\x00junk\n")
    tailer = Tailer("app", f"{log}*", start="beginning")
    assert numbers(tailer.poll()) == [1]
    assert tailer.stats.files == 1


def test_start_end_skips_what_is_there_and_beginning_reads_it(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(0) + line(1) + b"partial")
    at_end = Tailer("a", str(log), start="end")
    at_start = Tailer("b", str(log), start="beginning")
    assert at_end.poll() == []
    assert numbers(at_start.poll()) == [0, 1]
    with open(log, "ab") as fh:
        fh.write(b" line\n" + line(2))
    assert at_end.poll() == [b"partial line", line(2)[:-1]]
    assert at_start.poll() == [b"partial line", line(2)[:-1]]


def test_start_applies_only_without_saved_state(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(line(0))
    with Tailer("app", str(tmp_path / "*.log"), start="end", state_dir=state) as first:
        assert first.poll() == []
        first.commit()
    (tmp_path / "new.log").write_bytes(line(1))  # appeared while stopped: read whole
    second = Tailer("app", str(tmp_path / "*.log"), start="end", state_dir=state)
    assert numbers(second.poll()) == [1]


def test_poll_reads_at_most_about_max_bytes(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(line(n) for n in range(50_000)))
    tailer = Tailer("app", str(log), start="beginning")
    first = tailer.poll(max_bytes=1 << 20)
    assert len(first) * WIDTH <= (1 << 20) + WIDTH
    assert tailer.stats.lag_bytes == log.stat().st_size - len(first) * WIDTH
    rest: list[bytes] = []
    while batch := tailer.poll(max_bytes=1 << 20):
        rest += batch
    exactly_once(numbers(first + rest), 50_000)


def test_a_missing_directory_or_file_is_not_an_error(tmp_path: Path) -> None:
    tailer = Tailer("app", str(tmp_path / "nope" / "*.log"), start="end")
    assert tailer.poll() == []
    assert tailer.stats.files == 0
    tailer.close()


def test_start_must_be_end_or_beginning() -> None:
    with pytest.raises(ValueError, match="start"):
        Tailer("app", "/x", start="middle")  # type: ignore[arg-type]


def test_copytruncate_under_a_writer_without_append_skips_the_nul_hole(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT)  # no O_APPEND: writes go on at the old offset
    os.write(fd, b"".join(line(n) for n in range(10)))
    tailer = Tailer("app", f"{log}*", start="beginning")
    assert numbers(tailer.poll()) == list(range(10))
    shutil.copyfile(log, f"{log}.1")
    os.truncate(log, 0)
    assert tailer.poll() == []
    os.write(fd, line(10) + line(11))  # lands after a 480-byte hole of NULs
    os.close(fd)
    assert numbers(tailer.poll()) == [10, 11]
    assert tailer.stats.too_long == 0


def test_nul_bytes_at_the_end_of_a_preallocated_file_are_waited_on(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(0) + b"\x00" * 100)
    tailer = Tailer("app", str(log), start="beginning")
    assert numbers(tailer.poll()) == [0]
    with open(log, "r+b") as fh:
        fh.seek(WIDTH)
        fh.write(line(1))
    assert numbers(tailer.poll()) == [1]


def test_an_unwritable_state_dir_is_counted_and_reading_goes_on(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(0))
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state dir should be")
    tailer = Tailer("app", str(log), start="beginning", state_dir=blocker)
    assert numbers(tailer.poll()) == [0]
    tailer.commit(force=True)
    assert tailer.stats.state_errors == 1
    with open(log, "ab") as fh:
        fh.write(line(1))
    assert numbers(tailer.poll()) == [1]


def test_an_idle_source_does_not_rewrite_its_state(tmp_path: Path) -> None:
    log, state = tmp_path / "app.log", tmp_path / "state"
    log.write_bytes(line(0))
    tailer = Tailer("app", str(log), start="beginning", state_dir=state, save_interval=0)
    tailer.poll()
    tailer.commit()
    saved = state / "tailer-app.json"
    first = saved.stat().st_mtime_ns
    os.utime(saved, ns=(first - 10**9, first - 10**9))
    tailer.poll()
    tailer.commit()
    assert saved.stat().st_mtime_ns == first - 10**9


def test_a_compressed_file_without_a_compressed_name_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(line(1))
    (tmp_path / "app.log.2").write_bytes(gzip.compress(line(99) * 50))
    tailer = Tailer("app", str(tmp_path / "app.log*"), start="beginning")
    assert numbers(tailer.poll()) == [1]
    assert [(Path(f.path).name, f.state) for f in tailer.followed()] == [("app.log", "live"), ("app.log.2", "ignored")]


def test_the_rest_of_a_renamed_file_comes_before_the_new_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(0))
    tailer = Tailer("app", f"{log}*", start="beginning")
    assert numbers(tailer.poll()) == [0]
    with open(log, "ab") as fh:
        fh.write(line(1) + line(2))
    os.rename(log, f"{log}.1")
    log.write_bytes(line(3))
    assert numbers(tailer.poll()) == [1, 2, 3]


def test_the_tail_a_copy_recovers_comes_before_the_new_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(line(n) for n in range(10)))
    tailer = Tailer("app", f"{log}*", start="beginning")
    assert numbers(tailer.poll()) == list(range(10))
    with open(log, "ab") as fh:
        fh.write(line(10) + line(11))
    shutil.copyfile(log, tmp_path / "app.log.1")
    log.write_bytes(line(12))
    assert numbers(tailer.poll()) == [10, 11, 12]


def test_poll_after_close_resumes_at_the_committed_offsets(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(0) + line(1))
    tailer = Tailer("app", str(log), start="beginning")  # no state dir: kept in memory
    assert numbers(tailer.poll()) == [0, 1]
    tailer.commit()
    with open(log, "ab") as fh:
        fh.write(line(2))
    assert numbers(tailer.poll()) == [2]  # not committed
    tailer.close()
    with open(log, "ab") as fh:
        fh.write(line(3))
    assert numbers(tailer.poll()) == [2, 3]


# ---------------------------------------------------------------------------- hostile paths


def test_a_symlink_the_glob_matches_is_not_followed(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.write_bytes(line(1, "secret"))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").symlink_to(private)
    (logs / "real.log").write_bytes(line(2))
    with Tailer("app", str(logs / "*.log"), start="beginning") as tailer:
        assert numbers(tailer.poll()) == [2]
        assert [f.path for f in tailer.followed()] == [str(logs / "real.log")]


def test_a_fifo_the_glob_matches_is_skipped_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "app.log")
    (tmp_path / "real.log").write_bytes(line(1))
    tailer = Tailer("app", str(tmp_path / "*.log"), start="beginning")
    assert numbers(poll_in_thread(tailer)) == [1]
    tailer.close()


def poll_in_thread(tailer: Tailer, hang_after: float = 10.0) -> list[bytes]:
    """One ``poll`` in a thread; a poll still running after ``hang_after`` seconds is a hang (a
    FIFO opened without O_NONBLOCK blocks until a writer comes, which here is never)."""
    got: list[list[bytes]] = []
    worker = threading.Thread(target=lambda: got.append(tailer.poll()), daemon=True)
    worker.start()
    worker.join(hang_after)
    assert not worker.is_alive(), "poll blocked"
    return got[0]


def test_a_path_swapped_between_file_fifo_and_symlink_never_blocks_a_poll_nor_leaks_the_target(
    tmp_path: Path,
) -> None:
    """The stat-then-open race: the path is a regular file when listed, and a FIFO or a symlink
    to a private file by the time it is opened; loops for 2 s of swaps."""
    private = tmp_path / "private"
    private.write_bytes(line(99_999_999, "secret") * 4)
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "app.log"
    stop = threading.Event()
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        staged = logs / "staged"
        while not stop.is_set():
            for kind in ("file", "fifo", "file", "symlink"):
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
                if kind == "file":
                    staged.write_bytes(line(swaps))
                elif kind == "fifo":
                    os.mkfifo(staged)
                else:
                    staged.symlink_to(private)
                os.replace(staged, path)
                swaps += 1

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    got: list[int] = []
    polls = 0
    tailer = Tailer("app", str(logs / "*.log"), start="beginning")
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            got += numbers(poll_in_thread(tailer))
            polls += 1
    finally:
        stop.set()
        swapper.join(10)
    tailer.close()  # not after a hang: the blocked poll holds the tailer's lock
    assert polls > 10 and swaps > 10
    assert 99_999_999 not in got


def test_a_symlink_planted_at_the_temporary_name_of_an_offsets_save_is_not_followed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(line(0))
    state = tmp_path / "state"
    state.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    tailer = Tailer("app", str(log), start="beginning", state_dir=state)
    assert tailer._state_path is not None
    path = tailer._state_path
    for tmp in (f".{path.name}.{os.getpid()}.tmp", f"{path.name}.tmp"):  # today's and the former name
        (state / tmp).symlink_to(victim)
    assert numbers(tailer.poll()) == [0]
    tailer.commit(force=True)
    assert victim.read_text() == "untouched"
    assert json.loads(path.read_bytes())["files"]
    assert tailer.stats.state_errors == 0
