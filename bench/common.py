"""Shared benchmark plumbing: loopback servers, processes, /proc readings, percentiles.

Everything here talks to 127.0.0.1 only. Scripts in this folder import it as
``common`` (they run as ``python bench/<script>.py``, which puts bench/ on sys.path).
Run ``python bench/common.py delay-server --port P --delay 0.05`` for the fixed-delay
HTTP target of duration_accuracy.py.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
# The machine may be shared: as root, the bench and everything it starts (exporters, nginx,
# wrk) run at nice -10 so other work on the box disturbs the figures less. Both exporters
# get the same priority. With autogroup scheduling (kernel.sched_autogroup_enabled=1) a
# process's nice only counts inside its session's group, so the group's nice is set too.
# SLAPROBE_BENCH_NICE=0 turns this off.
NICE = int(os.environ.get("SLAPROBE_BENCH_NICE", "-10" if os.geteuid() == 0 else "0"))
if NICE:
    try:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    except OSError:
        NICE = 0
    with suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(NICE))

BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"

# The module both exporters answer /probe with: blackbox's stock http_2xx.
BLACKBOX_MODULES = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
"""


# ---------------------------------------------------------------------------- small helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200 (raise on timeout or if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


def http_get(url: str, timeout: float = 60.0) -> str:
    """GET ``url`` and return the body as text."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over cumulative ``(le, count)`` pairs (+Inf last)."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le  # as Prometheus does: the highest finite bound
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return buckets[-1][0]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def scrape_samples(text: str, names: Iterable[str]) -> list[tuple[str, str, float]]:
    """``(name, labels, value)`` for every sample whose name is in ``names``."""
    wanted = tuple(names)
    out = []
    for line in text.splitlines():
        if not line.startswith(wanted):
            continue
        m = _SAMPLE.match(line)
        if m and m.group(1) in wanted:
            out.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return out


def sample_sum(text: str, name: str) -> float:
    """Sum of every sample called ``name`` (over all label sets)."""
    return sum(v for _, _, v in scrape_samples(text, [name]))


def sample_value(text: str, name: str, default: float = float("nan")) -> float:
    """The value of the first sample called ``name``."""
    found = scrape_samples(text, [name])
    return found[0][2] if found else default


def lag_buckets(text: str, name: str = "slaprobe_scheduler_lag_seconds") -> dict[float, float]:
    """Cumulative bucket counts of a histogram without other labels, by ``le``."""
    out = {}
    for _, labels, value in scrape_samples(text, [f"{name}_bucket"]):
        m = re.search(r'le="([^"]+)"', labels)
        if m:
            out[float(m.group(1))] = value
    return out


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def mb(nbytes: float) -> str:
    """Bytes as MB with one decimal."""
    return f"{nbytes / 1e6:.1f}"


# ---------------------------------------------------------------------------- processes and /proc


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of ``pid`` (all its threads) in seconds, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) in seconds, from /proc/PID/stat."""
    return sum(cpu_split(pid))


def host_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK, sum(values[:8]) / CLK_TCK


def host_busy_cores(before: tuple[float, float], after: tuple[float, float], seconds: float) -> float:
    """Cores the whole machine kept busy between two ``host_cpu`` readings."""
    return (after[0] - before[0]) / seconds if seconds else float("nan")


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` value from /proc/PID/status (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Proc:
    """A started process with its CPU and memory readings."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        """CPU seconds used so far (user + system)."""
        return cpu_seconds(self.pid)

    def sys_cpu(self) -> float:
        """Kernel-mode CPU seconds used so far (stime): syscalls, and on loopback the peer's TCP work too."""
        return cpu_split(self.pid)[1]

    def rss(self) -> int:
        """Resident set size now, in bytes."""
        return status_kb(self.pid, "VmRSS") * 1024

    def peak_rss(self) -> int:
        """Highest resident set size so far, in bytes."""
        return status_kb(self.pid, "VmHWM") * 1024

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait (SIGKILL after ``timeout``); return the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return int(self.popen.returncode)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(
    name: str,
    argv: Sequence[str],
    workdir: Path,
    *,
    ready_url: str = "",
    env: dict[str, str] | None = None,
    ready_timeout: float = 30.0,
) -> Proc:
    """Start ``argv`` with output to ``workdir/name.log``; wait for ``ready_url`` if given."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})}
        )
    proc = Proc(name, popen, log_path)
    if ready_url:
        try:
            wait_http(ready_url, timeout=ready_timeout, proc=popen)
        except Exception:
            proc.stop()
            raise RuntimeError(f"{name} did not start:\n{proc.log_tail()}") from None
    return proc


@contextmanager
def workdir(prefix: str = "slaprobe-bench-") -> Iterator[Path]:
    """A temporary directory, removed afterwards unless SLAPROBE_BENCH_KEEP is set."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not os.environ.get("SLAPROBE_BENCH_KEEP"):
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------- nginx


@dataclass
class Nginx:
    """nginx on a loopback port serving a small static body at every path."""

    proc: Proc
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def proc_cpu(self) -> float:
        """CPU seconds of the nginx master and its workers."""
        pids = [self.proc.pid]
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        if children.exists():
            pids += [int(p) for p in children.read_text().split()]
        return sum(cpu_seconds(pid) for pid in pids)

    def stub_status(self) -> dict[str, int]:
        """accepts / handled / requests counters of the stub_status module."""
        text = http_get(f"http://127.0.0.1:{self.port}/nginx_status")
        accepts, handled, requests = (int(x) for x in text.splitlines()[2].split())
        # the stub_status request itself is one connection and one request
        return {"accepts": accepts, "handled": handled, "requests": requests}


def start_nginx(tmp: Path, *, body: bytes = b"ok\n", keepalive: bool = True, workers: int = 1) -> Nginx:
    """Start nginx (``daemon off``) with a temp prefix; ``keepalive=False`` closes after each response."""
    root = tmp / "nginx"
    (root / "html").mkdir(parents=True, exist_ok=True)
    (root / "html" / "index.html").write_bytes(body)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(
        f"""
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type text/html;
    keepalive_timeout {"65s" if keepalive else "0"};
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root}/html;
        location = /nginx_status {{ stub_status; }}
        location / {{ try_files /index.html =404; }}
    }}
}}
"""
    )
    proc = start(
        "nginx",
        [
            NGINX,
            "-p",
            str(root),
            "-c",
            str(conf),
            "-g",
            "daemon off; user root;" if os.geteuid() == 0 else "daemon off;",
        ],
        tmp,
        ready_url=f"http://127.0.0.1:{port}/",
    )
    return Nginx(proc, port)


# ---------------------------------------------------------------------------- the two exporters


def write_config(
    path: Path,
    nginx: Nginx,
    *,
    targets: int,
    interval: float,
    timeout: float,
    concurrency: int | None = None,
    per_service: int = 100,
) -> None:
    """A slaprobe config with ``targets`` HTTP probes of distinct URLs (``/?i=N``) on ``nginx``."""
    services: dict[str, dict[str, object]] = {}
    for i in range(targets):
        service = services.setdefault(f"svc{i // per_service:04d}", {"tier": "low", "owner": "bench", "probes": []})
        probes = service["probes"]
        assert isinstance(probes, list)
        probes.append({"name": f"p{i:05d}", "http": {"url": f"{nginx.url}?i={i}"}})
    global_: dict[str, object] = {"location": "bench", "interval": f"{interval:g}s", "timeout": f"{timeout:g}s"}
    if concurrency is not None:
        global_["concurrency"] = concurrency
    # JSON is YAML: quicker to write and to parse for 10,000 probes.
    path.write_text(json.dumps({"version": "v1", "global": global_, "services": services}))


def start_blackbox(tmp: Path, modules: str = BLACKBOX_MODULES) -> Proc:
    """blackbox_exporter with ``modules`` on a free loopback port."""
    path = tmp / "blackbox.yml"
    path.write_text(modules)
    port = free_port()
    proc = start(
        "blackbox",
        [BLACKBOX, f"--config.file={path}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        tmp,
        ready_url=f"http://127.0.0.1:{port}/-/healthy",
    )
    proc.url = f"http://127.0.0.1:{port}"
    return proc


def start_slaprobe(
    tmp: Path,
    *,
    config: Path | None = None,
    modules: str | None = BLACKBOX_MODULES,
    profile: Path | None = None,
    name: str = "slaprobe",
    ready_timeout_path: str = "/-/ready",
    preamble: str | None = None,
) -> Proc:
    """``slaprobe serve`` on a free loopback port.

    ``profile``: under cProfile, written there on exit. ``preamble``: Python run before the
    CLI in the same process, for experiments (e.g. installing uvloop's event loop policy).
    """
    port = free_port()
    argv = [sys.executable]
    if profile is not None:
        argv += ["-m", "cProfile", "-o", str(profile)]
    if preamble:
        argv += ["-c", f"{preamble}\nimport sys\nfrom slaprobe.cli import main\nsys.exit(main(sys.argv[1:]))", "serve"]
    else:
        argv += ["-m", "slaprobe", "serve"]
    argv += ["--listen", f"127.0.0.1:{port}", "--probe-allow", "127.0.0.1/32"]
    if config is not None:
        argv += ["--config", str(config)]
    if modules is not None:
        path = tmp / "blackbox.yml"
        path.write_text(modules)
        argv += ["--modules", str(path)]
    # A 10,000-probe config takes seconds to load, more on a busy machine.
    proc = start(name, argv, tmp, ready_url=f"http://127.0.0.1:{port}{ready_timeout_path}", ready_timeout=180)
    proc.url = f"http://127.0.0.1:{port}"
    return proc


def probe_url(exporter: Proc, target: str, module: str = "http_2xx") -> str:
    """The /probe URL of ``exporter`` for ``target``."""
    return f"{exporter.url}/probe?target={urllib.parse.quote(target, safe='')}&module={module}"


# ---------------------------------------------------------------------------- wrk load generator

WRK_SCRIPT = """\
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; bad = 0 end
function response(status, headers, body)
  if status == 200 and string.find(body, "\\nprobe_success 1\\n", 1, true) then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local o, b = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("bad") end
  io.write(string.format("RESULT ok=%d bad=%d errors=%d p50=%d p99=%d\\n", o, b,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout + summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class LoadResult:
    """What one wrk run saw."""

    seconds: float
    ok: int  # 200 with probe_success 1
    bad: int  # anything else
    errors: int  # socket errors, timeouts, non-2xx
    p50_ms: float  # latency of /probe as the client saw it
    p99_ms: float
    raw: str = field(repr=False, default="")

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def run_wrk(url: str, *, seconds: float, concurrency: int, threads: int = 1, tmp: Path) -> LoadResult:
    """Drive ``url`` with ``concurrency`` requests in flight for ``seconds`` with wrk."""
    script = tmp / "probe_success.lua"
    script.write_text(WRK_SCRIPT)
    started = time.monotonic()
    out = subprocess.run(
        [
            WRK,
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed = time.monotonic() - started
    m = re.search(r"RESULT ok=(\d+) bad=(\d+) errors=(\d+) p50=(\d+) p99=(\d+)", out)
    if not m:
        raise RuntimeError(f"wrk printed no result:\n{out}")
    ok, bad, errors, p50, p99 = (int(g) for g in m.groups())
    return LoadResult(min(elapsed, round(seconds)) or elapsed, ok, bad, errors, p50 / 1000, p99 / 1000, out)


# ---------------------------------------------------------------------------- profiles (py-spy)

PY_SPY = shutil.which("py-spy")


def py_spy_record(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen[bytes]:
    """Sample ``pid`` with py-spy (``pip install py-spy``; bench-only) into collapsed stacks at ``out``."""
    if PY_SPY is None:
        raise RuntimeError("py-spy is not installed: pip install py-spy")
    argv = [PY_SPY, "record", "-p", str(pid), "-d", str(max(1, round(seconds)))]
    argv += ["-r", str(rate), "-f", "raw", "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _frame_name(frame: str) -> str:
    """``render (/x/site-packages/aiohttp/web.py:12)`` -> ``render (aiohttp/web.py)``."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{func} ({path})"


def summarize_profile(path: Path, top: int = 25) -> str:
    """Markdown tables of the top self and inclusive costs in py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_name(f) for f in stack.split(";")]
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            incl[frame] = incl.get(frame, 0) + count
    if not total:
        return "(no samples)"

    def rows(counts: dict[str, int], limit: float) -> list[list[str]]:
        ranked = sorted(((n, f) for f, n in counts.items() if n / total <= limit), reverse=True)[:top]
        return [[f"{n / total * 100:.1f}%", f"`{f}`"] for n, f in ranked]

    return "\n\n".join(
        (
            f"{total} samples of CPU (idle excluded). Top self time:",
            md_table(["self", "function"], rows(own, 1.0)),
            "Top inclusive time (frames above 90% left out: the event loop itself):",
            md_table(["inclusive", "function"], rows(incl, 0.9)),
        )
    )


# ---------------------------------------------------------------------------- the machine


def machine_info() -> dict[str, str]:
    """What the figures were measured on."""

    def run(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    model = next(
        (line.split(":", 1)[1].strip() for line in run(["lscpu"]).splitlines() if line.startswith("Model name")), "?"
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    try:
        import aiohttp

        aiohttp_version = aiohttp.__version__
    except ImportError:
        aiohttp_version = "?"
    blackbox = run([BLACKBOX, "--version"]).splitlines()
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": run(["nproc"]),
        "cpu": model,
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiohttp": aiohttp_version,
        "blackbox": blackbox[0].split("version ", 1)[-1] if blackbox else "?",
        "nginx": run([NGINX, "-v"]) or subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip(),
        "slaprobe commit": _commit(run),
        "bench nice": str(NICE),
    }


def _commit(run: Callable[[list[str]], str]) -> str:
    """HEAD, and how many files of the measured code differ from it (the install is editable)."""
    head = run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    status = run(["git", "-C", str(REPO), "status", "--porcelain", "--", "exporter", "probes", "slaprobe"])
    changed = len([line for line in status.splitlines() if line.strip()])
    return f"{head} + {changed} uncommitted files in exporter/ probes/ slaprobe/" if changed else head


def print_machine() -> None:
    """Print the machine as one markdown line."""
    print("Machine: " + "; ".join(f"{k} {v}" for k, v in machine_info().items()))


# ---------------------------------------------------------------------------- fixed-delay target


async def serve_delayed(port: int, delay: float) -> None:
    """An HTTP/1.1 server on 127.0.0.1:port answering every request after ``delay`` seconds."""
    body = b"ok\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(delay)
            writer.write(head + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description="benchmark helpers")
    sub = parser.add_subparsers(dest="command", required=True)
    delay = sub.add_parser("delay-server", help="HTTP target answering after a fixed delay")
    delay.add_argument("--port", type=int, required=True)
    delay.add_argument("--delay", type=float, default=0.05)
    sub.add_parser("machine", help="print the machine description")
    args = parser.parse_args()
    if args.command == "delay-server":
        with suppress(KeyboardInterrupt):
            asyncio.run(serve_delayed(args.port, args.delay))
        return 0
    print_machine()
    return 0


if __name__ == "__main__":
    sys.exit(main())
