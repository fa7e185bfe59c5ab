"""Log rotation under load, end to end: a writer, its logrotate, and ``slaprobe serve`` restarted.

One scenario, two sizes: ``tests/reliability/test_log_rotation.py`` (seconds) and
``bench/log_rotation.py`` (100 rotations, 10,000 lines/s, 5 restarts).

:class:`LogWriter` is the application and its logrotate in one thread: it appends numbered
nginx access lines (``seq`` 0, 1, 2, ... as ``body_bytes_sent``, ``seq // block_lines`` as
``remote_user``) to ``access.log`` at a set rate, in complete lines, one ``write`` per batch
every few ms, with ``O_APPEND``. Rotations cycle through :data:`KINDS`:

- ``rename``: logrotate's default (``create``): ``.1`` becomes ``.2``, ``access.log`` becomes
  ``access.log.1``, a new empty ``access.log`` is created, and the application reopens
  ``reopen_delay`` later (nginx on USR1), writing to the renamed file meanwhile.
- ``copytruncate``: ``access.log`` is copied to ``access.log.1`` and truncated in place while
  the writer's lock is held (an application that pauses its writes for it). Without that
  lock, lines appended between the copy and the truncation are in neither file: every
  tailer loses them, so that window is excluded here by construction.
- ``dateext``: as ``rename``, to ``access.log-YYYYMMDD-HHMMSS-N``; only the newest
  :data:`KEEP_DATEEXT` of those are kept, older ones are deleted (``rotate N`` / ``maxage``).
- ``delete``: ``access.log`` is unlinked; the application recreates it on its reopen.

Old numbered generations go the ``delaycompress`` way: at the next shift ``access.log.2`` is
gzipped to ``access.log.3.gz`` (never read: compressed) and deleted. Every file the glob
``access.log*`` matches is therefore read while it exists.

:class:`ExporterLives` runs ``slaprobe serve --state-dir`` as a child process and restarts it
with SIGTERM. Each life's final counts are exact: graceful shutdown logs one line per log
source (``log source 'access' closed: N lines counted ...``), written after the last line was
counted and its offset committed. The per-block series (lines and the sum of ``seq`` per
block of ``block_lines``) come from the life's last scrape, taken between two polls right
before the SIGTERM; a life is *exact* when that scrape's line count equals the shutdown
line's, so the scrape holds everything the life counted (it nearly always is; when not,
only the per-block check of the run is given up, never the totals).

Excluded, because every tailer loses lines there (see ``probes/tailer.py``):

- rotating by ``delete`` while the exporter is down: the unread rest of the deleted file is
  gone before anyone could read it. Rotations while down are ``rename``, ``copytruncate``
  or ``dateext``; a restart comes at least two polls after the rotation before it, so no
  deleted or compressed file still holds unread lines when the exporter stops;
- ``copytruncate`` without the writer's lock (see above).

Restarts land between polls (SIGTERM right after a poll counted its batch); a SIGTERM in the
middle of a poll is covered by ``tests/exporter/test_logs.py``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("rename", "copytruncate", "dateext", "delete")
DOWN_KINDS = ("rename", "copytruncate", "dateext")  # never delete while down (see the module docstring)
KEEP_DATEEXT = 2
SOURCE = "access"
SERVICE = "shop"
LINES_METRIC = "rotation_lines_total"  # lines per block of seq numbers
SEQ_METRIC = "rotation_seq_total"  # sum of the seq numbers per block
POLL_SECONDS = 0.5  # exporter/logs.POLL_INTERVAL: what "a poll" means below

_SUMMARY = re.compile(
    r"log source '(?P<source>[^']*)' closed: (?P<lines>\d+) lines counted since the source started "
    r"\((?P<parsed>\d+) parsed, (?P<unparsed>\d+) unparsed\), (?P<too_long>\d+) too long skipped, "
    r"(?P<rotations>\d+) rotations"
)
_SAMPLE = re.compile(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", re.M)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def access_line(seq: int, block_lines: int, time_local: str) -> bytes:
    """nginx_combined line number ``seq``: its block as remote_user, ``seq`` as body_bytes_sent."""
    status = 503 if seq % 97 == 0 else 200
    return (
        f'127.0.0.1 - b{seq // block_lines:06d} [{time_local}] "GET /orders/{seq} HTTP/1.1" {status} {seq} '
        f'"-" "logwriter/1.0" 0.012\n'
    ).encode()


def config_text(log_dir: Path) -> str:
    """The exporter's config: one access log (glob over its generations) with the per-block metrics."""
    return f"""\
version: v1
services:
  {SERVICE}:
    logs:
      - name: {SOURCE}
        path: "{log_dir}/access.log*"
        format: nginx_combined
        start: beginning
        metrics:
          - {{name: {LINES_METRIC}, type: counter, labels: {{block: remote_user}}, max_label_values: 100000}}
          - {{name: {SEQ_METRIC}, type: counter, value: body_bytes_sent, labels: {{block: remote_user}},
              max_label_values: 100000}}
"""


# ---------------------------------------------------------------------------- the writer and its logrotate


class LogWriter(threading.Thread):
    """Appends numbered access lines at ``rate`` lines/s; :meth:`rotate` rotates as logrotate would."""

    def __init__(
        self,
        log_dir: Path,
        rate: float,
        *,
        block_lines: int = 1000,
        batch_seconds: float = 0.005,
        reopen_delay: float = 0.02,
    ) -> None:
        super().__init__(name="logwriter", daemon=True)
        self.path = log_dir / "access.log"
        self.rate = rate
        self.block_lines = block_lines
        self.batch_seconds = batch_seconds
        self.reopen_delay = reopen_delay
        self.written = 0  # lines written so far: seq 0 .. written-1
        self.rotations: Counter[str] = Counter()
        self.compressed = 0  # old generations gzipped (and their plain file deleted)
        self.deleted = 0  # old generations deleted (.gz replaced, dateext beyond KEEP_DATEEXT)
        self.started = self.stopped = 0.0  # monotonic
        self.error: BaseException | None = None
        self._lock = threading.Lock()  # held for each write and by copytruncate
        self._stopping = threading.Event()
        self._fd = self._open()
        self._reopen_at: float | None = None
        self._dateext = 0

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def _write(self) -> None:
        self.started = time.monotonic()
        while not self._stopping.is_set():
            now = time.monotonic()
            due = int((now - self.started) * self.rate) - self.written
            if due > 0:
                stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime())
                first = self.written
                batch = b"".join(access_line(n, self.block_lines, stamp) for n in range(first, first + due))
                with self._lock:
                    if self._reopen_at is not None and now >= self._reopen_at:
                        self._reopen()
                    os.write(self._fd, batch)  # complete lines only; O_APPEND
                    self.written += due
            self._stopping.wait(self.batch_seconds)
        self.stopped = time.monotonic()
        with self._lock:
            if self._reopen_at is not None:
                self._reopen()
            os.close(self._fd)

    def _reopen(self) -> None:
        old, self._fd, self._reopen_at = self._fd, self._open(), None
        os.close(old)

    def stop(self) -> None:
        """Stop writing (after the current batch) and close the log; raise what the thread raised."""
        self._stopping.set()
        self.join(10)
        if self.error is not None:
            raise self.error

    @property
    def lines_per_second(self) -> float:
        """Lines written per second of writing."""
        end = self.stopped or time.monotonic()
        return self.written / (end - self.started) if end > self.started else 0.0

    def rotate(self, kind: str) -> None:
        """Rotate ``access.log`` the way ``kind`` says (one of :data:`KINDS`)."""
        with self._lock:
            if self._reopen_at is not None:  # the application reopens before the next rotation
                self._reopen()
            p = self.path
            if kind == "copytruncate":
                self._shift()
                shutil.copyfile(p, f"{p}.1")
                os.truncate(p, 0)
            elif kind == "rename":
                self._shift()
                os.rename(p, f"{p}.1")
                self._create()
            elif kind == "dateext":
                self._dateext += 1
                os.rename(p, f"{p}-{time.strftime('%Y%m%d-%H%M%S')}-{self._dateext:04d}")
                self._create()
                for old in sorted(p.parent.glob(f"{p.name}-*"), key=lambda q: q.name[-4:])[:-KEEP_DATEEXT]:
                    old.unlink()
                    self.deleted += 1
            elif kind == "delete":
                os.unlink(p)  # the application creates it again on its reopen
            else:
                raise ValueError(f"unknown rotation kind {kind!r}")
            if kind != "copytruncate":
                self._reopen_at = time.monotonic() + self.reopen_delay
            self.rotations[kind] += 1

    def _create(self) -> None:
        os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    def _shift(self) -> None:
        """access.log.2 -> access.log.3.gz (and deleted), access.log.1 -> access.log.2."""
        p = self.path
        if os.path.exists(f"{p}.2"):
            if os.path.exists(f"{p}.3.gz"):
                self.deleted += 1
            with open(f"{p}.2", "rb") as src, gzip.open(f"{p}.3.gz", "wb", compresslevel=1) as out:
                shutil.copyfileobj(src, out)
            os.unlink(f"{p}.2")
            self.compressed += 1
        if os.path.exists(f"{p}.1"):
            os.replace(f"{p}.1", f"{p}.2")


# ---------------------------------------------------------------------------- the exporter, life after life


@dataclass
class Scrape:
    """What one /metrics answer says about the access log."""

    lines: int = 0  # slaprobe_log_lines_total{result=parsed|unparsed}
    unparsed: int = 0
    too_long: int = 0
    rotations: int = 0
    lag_bytes: int = 0
    requests: int = 0  # slaprobe_http_requests_total, every code
    block_lines: dict[int, int] = field(default_factory=dict)
    block_seq: dict[int, int] = field(default_factory=dict)


def parse_scrape(text: str) -> Scrape:
    """The access log's figures in a /metrics text."""
    out = Scrape()
    for name, labels_text, value_text in _SAMPLE.findall(text):
        labels = dict(_LABEL.findall(labels_text))
        value = int(float(value_text))
        if name == "slaprobe_log_lines_total" and labels.get("source") == SOURCE:
            if labels["result"] in ("parsed", "unparsed"):
                out.lines += value
            if labels["result"] == "unparsed":
                out.unparsed = value
            elif labels["result"] == "too_long":
                out.too_long = value
        elif name == "slaprobe_log_rotations_total" and labels.get("source") == SOURCE:
            out.rotations = value
        elif name == "slaprobe_log_lag_bytes" and labels.get("source") == SOURCE:
            out.lag_bytes = value
        elif name == "slaprobe_http_requests_total" and labels.get("service") == SERVICE:
            out.requests += value
        elif name in (LINES_METRIC, SEQ_METRIC):
            block = labels.get("block", "")
            if not block.startswith("b"):
                raise AssertionError(f"unexpected block label {block!r}")  # __other__: too many blocks
            (out.block_lines if name == LINES_METRIC else out.block_seq)[int(block[1:])] = value
    return out


@dataclass
class Life:
    """One run of ``slaprobe serve``: its last scrape, its shutdown line, its resources."""

    index: int
    pid: int
    exit_status: int = 0
    final: Scrape = field(default_factory=Scrape)
    summary: dict[str, int] = field(default_factory=dict)  # the shutdown line's numbers
    cpu_seconds: float = 0.0
    peak_rss: int = 0  # bytes
    seconds: float = 0.0

    @property
    def lines(self) -> int:
        """Lines this life counted, from its shutdown line."""
        return self.summary.get("lines", -1)

    @property
    def exact(self) -> bool:
        """Its last scrape holds every line it counted."""
        return self.final.lines == self.lines


def _proc_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExporterLives:
    """``slaprobe serve`` on the config, started and stopped (SIGTERM) as often as asked."""

    def __init__(self, workdir: Path, config: Path, state_dir: Path) -> None:
        self.workdir, self.config, self.state_dir = workdir, config, state_dir
        self.lives: list[Life] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._url = ""
        self._started = 0.0

    def start(self, timeout: float = 60.0) -> None:
        """Start the next life and wait until it is ready."""
        port = _free_port()
        self._url = f"http://127.0.0.1:{port}"
        index = len(self.lives)
        argv = [sys.executable, "-m", "slaprobe", "serve", "--config", str(self.config),
                "--state-dir", str(self.state_dir), "--listen", f"127.0.0.1:{port}"]  # fmt: skip
        with (self.workdir / f"serve-{index}.log").open("wb") as log:
            self._proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
            )
        self._started = time.monotonic()
        self.lives.append(Life(index, self._proc.pid))
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self._proc.returncode}:\n{self.log_text(index)}")
            try:
                with urllib.request.urlopen(f"{self._url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"serve not ready after {timeout} s:\n{self.log_text(index)}")
            time.sleep(0.02)

    def scrape(self) -> Scrape:
        """The current life's figures."""
        with urllib.request.urlopen(f"{self._url}/metrics", timeout=30) as resp:
            return parse_scrape(resp.read().decode())

    def wait_polls(self, polls: int, timeout: float = 30.0) -> Scrape:
        """Scrape until the line count changed ``polls`` times (polls that counted lines); the last scrape."""
        last = self.scrape()
        deadline = time.monotonic() + timeout
        while polls > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the exporter counted nothing new for {timeout} s")
            time.sleep(0.01)
            now = self.scrape()
            if now.lines != last.lines:
                polls -= 1
            last = now
        return last

    def stop(self, *, between_polls: bool = True) -> Life:
        """SIGTERM the current life, right after a poll counted its batch unless told otherwise; its record."""
        assert self._proc is not None
        life = self.lives[-1]
        if between_polls:
            final = self.wait_polls(2)  # a full poll since whatever happened before (a rotation, the start)
            while True:  # confirm a moment later that the poll is over (it may count in several batches)
                time.sleep(0.02)
                again = self.scrape()
                if again.lines == final.lines:
                    break
                final = again
        else:
            final = self.scrape()
        life.final = final
        life.cpu_seconds = _proc_cpu(self._proc.pid)
        life.peak_rss = _proc_kb(self._proc.pid, "VmHWM") * 1024
        self._proc.send_signal(signal.SIGTERM)
        life.exit_status = self._proc.wait(30)
        life.seconds = time.monotonic() - self._started
        text = self.log_text(life.index)
        found = [m.groupdict() for m in _SUMMARY.finditer(text) if m["source"] == SOURCE]
        if len(found) != 1:
            raise AssertionError(f"life {life.index}: expected one shutdown line for {SOURCE!r}:\n{text[-3000:]}")
        life.summary = {k: int(v) for k, v in found[0].items() if k != "source"}
        self._proc = None
        return life

    def log_text(self, index: int) -> str:
        """The stderr/stdout of life ``index``."""
        return (self.workdir / f"serve-{index}.log").read_text(errors="replace")

    def kill(self) -> None:
        """Stop a life still running (cleanup after a failure)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# ---------------------------------------------------------------------------- the scenario


@dataclass
class Outcome:
    """What a run wrote, what the exporter counted, and where they differ."""

    written: int
    counted: int  # sum over lives of the shutdown lines' counts
    duplicated: int  # lines counted more than once (from the blocks; from the totals when not blocks_checked)
    lost: int  # lines never counted (likewise)
    unparsed: int
    too_long: int
    requests: int  # sum over lives of slaprobe_http_requests_total (of their last scrapes)
    rotations: Counter[str]
    rotations_while_down: Counter[str]
    rotations_noticed: int  # sum over lives of slaprobe_log_rotations_total (shutdown lines)
    compressed: int
    deleted: int
    lives: list[Life]
    problems: list[str]  # per-block differences, named (or the totals' difference when not blocks_checked)
    blocks_checked: bool  # every life exact, so the per-block counts are complete
    wall_seconds: float
    lines_per_second: float

    @property
    def exact_lives(self) -> int:
        """Lives whose last scrape held every line they counted."""
        return sum(life.exact for life in self.lives)


def restart_points(rotations: int, restarts: int) -> dict[int, str]:
    """Rotation index -> kind, for the rotations made while the exporter is down (evenly spread, kinds varied)."""
    points: dict[int, str] = {}
    for k in range(restarts):
        kind = DOWN_KINDS[k % len(DOWN_KINDS)]
        i = round((k + 1) * rotations / (restarts + 1))
        while KINDS[i % len(KINDS)] != kind or i in points:
            i += 1
        if i >= rotations:
            raise ValueError(f"{rotations} rotations leave no room for {restarts} restarts")
        points[i] = kind
    return points


def compare_blocks(
    written: int, block_lines: int, lines: Counter[int], seqs: Counter[int]
) -> tuple[int, int, list[str]]:
    """(duplicated, lost, problems) of the per-block counts against what was written."""
    duplicated = lost = 0
    problems: list[str] = []
    for block in range((written - 1) // block_lines + 1 if written else 0):
        first, end = block * block_lines, min((block + 1) * block_lines, written)
        want_lines, want_seq = end - first, (first + end - 1) * (end - first) // 2
        extra, extra_seq = lines.get(block, 0) - want_lines, seqs.get(block, 0) - want_seq
        if extra == 0 and extra_seq == 0:
            continue
        if extra > 0:
            duplicated += extra
            named = f": line {extra_seq}" if extra == 1 and first <= extra_seq < end else ""
            problems.append(f"block {block} (lines {first}-{end - 1}): {extra} counted twice{named}")
        elif extra < 0:
            lost += -extra
            named = f": line {-extra_seq}" if extra == -1 and first <= -extra_seq < end else ""
            problems.append(f"block {block} (lines {first}-{end - 1}): {-extra} lost{named}")
        else:
            problems.append(f"block {block} (lines {first}-{end - 1}): as many lost as counted twice")
    for block in sorted(set(lines) - set(range((written - 1) // block_lines + 1))):
        duplicated += lines[block]
        problems.append(f"block {block}: {lines[block]} lines never written were counted")
    return duplicated, lost, problems


def run_scenario(
    workdir: Path,
    *,
    rotations: int,
    rate: float,
    restarts: int,
    interval: float,
    block_lines: int = 1000,
    settle_seconds: float = 60.0,
    progress: Callable[[str], None] = lambda _: None,
) -> Outcome:
    """Write at ``rate`` lines/s, rotate ``rotations`` times ``interval`` s apart, restart ``restarts`` times."""
    log_dir, state_dir = workdir / "logs", workdir / "state"
    log_dir.mkdir()
    config = workdir / "slaprobe.yaml"
    config.write_text(config_text(log_dir))
    down = restart_points(rotations, restarts)
    writer = LogWriter(log_dir, rate, block_lines=block_lines)
    exporter = ExporterLives(workdir, config, state_dir)
    started = time.monotonic()
    try:
        while_down: Counter[str] = Counter()
        writer.start()
        exporter.start()
        for i in range(rotations):
            kind = KINDS[i % len(KINDS)]
            if i in down:
                life = exporter.stop()
                progress(f"life {life.index}: {life.lines:,} lines, exact {life.exact}; {kind} while down")
                writer.rotate(kind)
                while_down[kind] += 1
                exporter.start()
            else:
                writer.rotate(kind)
            time.sleep(interval)
            if i % 10 == 9:
                progress(f"{i + 1} rotations, {writer.written:,} lines written")
        writer.stop()
        # The last life counts until it has everything (or stops counting), then stops: nothing is in flight.
        before = sum(life.lines for life in exporter.lives[:-1])
        deadline, last, quiet_since = time.monotonic() + settle_seconds, -1, time.monotonic()
        while time.monotonic() < deadline:
            now = exporter.scrape()
            if now.lines != last:
                last, quiet_since = now.lines, time.monotonic()
            if (before + now.lines >= writer.written and now.lag_bytes == 0) or (
                time.monotonic() - quiet_since > 4 * POLL_SECONDS
            ):
                break
            time.sleep(0.05)
        life = exporter.stop(between_polls=False)
        progress(f"life {life.index}: {life.lines:,} lines, exact {life.exact}")
    finally:
        exporter.kill()
        if writer.is_alive():
            writer.stop()
    lives = exporter.lives
    lines: Counter[int] = Counter()
    seqs: Counter[int] = Counter()
    for life in lives:
        lines.update(life.final.block_lines)
        seqs.update(life.final.block_seq)
    counted = sum(life.lines for life in lives)
    blocks_checked = all(life.exact for life in lives)
    if blocks_checked:
        duplicated, lost, problems = compare_blocks(writer.written, block_lines, lines, seqs)
    else:  # totals only: what an inexact life counted after its last scrape is not known by block
        duplicated, lost = max(0, counted - writer.written), max(0, writer.written - counted)
        problems = [] if counted == writer.written else [f"{counted} lines counted, {writer.written} written"]
    return Outcome(
        written=writer.written,
        counted=counted,
        duplicated=duplicated,
        lost=lost,
        unparsed=sum(life.summary["unparsed"] for life in lives),
        too_long=sum(life.summary["too_long"] for life in lives),
        requests=sum(life.final.requests for life in lives),
        rotations=writer.rotations,
        rotations_while_down=while_down,
        rotations_noticed=sum(life.summary["rotations"] for life in lives),
        compressed=writer.compressed,
        deleted=writer.deleted,
        lives=lives,
        problems=problems,
        blocks_checked=blocks_checked,
        wall_seconds=time.monotonic() - started,
        lines_per_second=writer.lines_per_second,
    )
