"""`slaprobe serve` against mtail, tailing the same 1,000,000-line logs: nginx combined, jsonl, CRI-wrapped nginx.

Run: ``python bench/logs_vs_mtail.py [--lines 1000000] [--rounds 3] [--only nginx,jsonl,cri]``
(needs Debian's ``mtail``: ``apt-get install -y mtail``; a bench-only dependency).

What runs is what a user runs: the shipped ``slaprobe serve --config FILE --state-dir DIR``
(a subprocess, its config's log source following the file, its defaults otherwise) and
``mtail --progs DIR --logs FILE`` (its defaults otherwise: 250 ms polls, every core). Each
starts on an empty file and is left to settle; then the whole generated log is appended
in one go (``sendfile``, 8 MiB at a time), and the clock runs until the process's own ``/metrics`` (read every 50 ms)
shows every line counted. CPU seconds are utime+stime of the process (all its threads)
from /proc/PID/stat over the same span; peak RSS is VmHWM from /proc/PID/status. The two
run one after the other, alternating (slaprobe first in odd rounds, mtail first in even
ones), ``--rounds`` times per workload; the tables have the medians, and the counts each
side exported are checked against the generator's.

The workloads, each ``--lines`` lines generated with a fixed seed:

- nginx: ``combined`` plus ``$request_time``. slaprobe: ``format: nginx_combined`` (its
  built-in requests-by-code counter and request-duration histogram); mtail: one regex
  with named groups, ``counter requests_total by status``, ``histogram`` of request_time.
- jsonl: one JSON object per line (time, addr, method, path, status, bytes, referer,
  agent, request_time). slaprobe: ``format: jsonl`` with two user metrics (a counter by
  ``status``, a histogram of ``request_time`` in seconds); mtail has no JSON parser, so
  its program is a regex picking ``"status":NNN`` and ``"request_time":N.NNN`` out of
  the line (it does not check the rest is JSON).
- cri: the nginx lines as containerd writes them (``<RFC 3339 nano time> stdout F <line>``).
  slaprobe: ``wrapper: cri`` with ``format: nginx_combined``; mtail: the nginx program with
  the CRI prefix ``^\\S+ (stdout|stderr) F `` in front of its regex (it cannot join ``P``
  partial lines, so the generated log has none).

The buckets are the default SLA buckets on both sides. mtail rc50 puts an observation of
exactly 0 in no bucket (only in ``_count``), so its first bucket is checked with the 0.000
lines left out.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from common import NICE, REPO, cpu_seconds, free_port, status_kb

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCRAPE_EVERY = 0.05  # seconds between reads of /metrics while a side catches up
TIMEOUT = 900.0  # seconds a side may take for one workload
SOURCE = "bench"  # the log source's name in slaprobe's config
SERVICE = "web"

# ---------------------------------------------------------------------------- the logs

STATUSES = [
    (200, 820),
    (201, 20),
    (204, 15),
    (301, 10),
    (302, 25),
    (304, 40),
    (400, 8),
    (401, 10),
    (403, 5),
    (404, 25),
    (429, 4),
    (499, 3),
    (500, 6),
    (502, 4),
    (503, 4),
    (504, 1),
]
PATHS = [
    "/",
    "/index.html",
    "/api/v1/orders/{n}",
    "/api/v1/orders?page={m}&per_page=50",
    "/api/v1/cart",
    "/api/v1/login",
    "/static/js/app.{h}.js",
    "/static/css/site.{h}.css",
    "/images/products/{n}.jpg",
    "/search?q=red+shoes&sort=price",
    "/healthz",
]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "curl/8.4.0",
    "kube-probe/1.28",
    "-",
]
REFERERS = ["-", "https://shop.example/", "https://shop.example/cart", "https://www.google.com/"]
METHODS = ["GET"] * 16 + ["POST"] * 3 + ["PUT", "DELETE", "HEAD"]
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass
class Truth:
    """What the generator wrote: requests by status, request_time per bucket (last: +Inf), zeros."""

    status: dict[str, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    zeros: int = 0  # lines with request_time 0.000


def generate(work: Path, lines: int, seed: int = 4) -> tuple[dict[str, Path], Truth]:
    """Write the three logs (same requests in each); return their paths and the true counts."""
    rng = random.Random(seed)
    codes = [c for c, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    truth = Truth()
    paths = {name: work / f"generated-{name}.log" for name in ("nginx", "jsonl", "cri")}
    files = {name: open(path, "w", encoding="utf-8") for name, path in paths.items()}  # noqa: SIM115
    out: dict[str, list[str]] = {name: [] for name in files}
    start = 1_700_000_000
    per_second = 400
    try:
        for i in range(lines):
            second = start + i // per_second
            t = time.gmtime(second)
            clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            stamp = f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"
            iso = f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d}T{clock}"
            if rng.random() < 0.1:
                client = f"2001:db8:{rng.randrange(65536):x}::{rng.randrange(65536):x}"
            else:
                client = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            status = rng.choices(codes, weights)[0]
            target = rng.choice(PATHS).format(n=rng.randrange(100000), m=rng.randrange(40), h=rng.getrandbits(32))
            # Latency: lognormal around 40 ms, 5% served from cache in under 1 ms (logged 0.000).
            rt = 0.0 if rng.random() < 0.05 else min(round(rng.lognormvariate(-3.2, 1.1), 3), 59.999)
            size = 0 if status in (204, 304) else rng.randrange(200, 80000)
            user = "-" if rng.random() < 0.97 else "alice"
            method, referer, agent = rng.choice(METHODS), rng.choice(REFERERS), rng.choice(AGENTS)
            nginx = (
                f'{client} - {user} [{stamp}] "{method} {target} HTTP/1.1" {status} {size} '
                f'"{referer}" "{agent}" {rt:.3f}'
            )
            out["nginx"].append(nginx + "\n")
            nanos = (i % per_second) * 2_500_000 + 123
            out["cri"].append(f"{iso}.{nanos:09d}Z stdout F {nginx}\n")
            out["jsonl"].append(
                f'{{"time":"{iso}Z","remote_addr":"{client}","remote_user":"{user}","method":"{method}",'
                f'"path":"{target}","protocol":"HTTP/1.1","status":{status},"body_bytes_sent":{size},'
                f'"http_referer":"{referer}","http_user_agent":"{agent}","request_time":{rt:.3f}}}\n'
            )
            truth.status[str(status)] = truth.status.get(str(status), 0) + 1
            truth.buckets[bisect.bisect_left(BUCKETS, float(f"{rt:.3f}"))] += 1
            truth.zeros += rt == 0.0
            if len(out["nginx"]) == 10000:
                for name, fh in files.items():
                    fh.write("".join(out[name]))
                    out[name].clear()
        for name, fh in files.items():
            fh.write("".join(out[name]))
    finally:
        for fh in files.values():
            fh.close()
    return paths, truth


# ---------------------------------------------------------------------------- the two sides' setups

NGINX_REGEX = (
    r'(?P<remote_addr>\S+) \S+ \S+ \[(?P<time_local>[^\]]*)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<body_bytes_sent>\S+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)" (?P<request_time>\d+\.\d+)$'
)
MTAIL_REGEX = {
    "nginx": "^" + NGINX_REGEX,
    "cri": r"^\S+ (?:stdout|stderr) F " + NGINX_REGEX,
    "jsonl": r'^\{.*"status":(?P<status>\d{3}),.*"request_time":(?P<request_time>\d+\.\d+)\}$',
}
MTAIL_PROGRAM = """\
counter requests_total by status
histogram request_duration_seconds buckets %(buckets)s

/%(regex)s/ {
  requests_total[$status]++
  request_duration_seconds = float($request_time)
}
"""

SLAPROBE_CONFIG = """\
version: v1
global:
  buckets: [%(buckets)s]
services:
  %(service)s:
    logs:
      - name: %(source)s
        path: %(path)s
%(source_settings)s"""
SOURCE_SETTINGS = {
    "nginx": "        format: nginx_combined\n",
    "cri": "        format: nginx_combined\n        wrapper: cri\n",
    "jsonl": """\
        format: jsonl
        metrics:
          - {name: requests_total, type: counter, labels: {status: status}}
          - {name: request_duration_seconds, type: histogram, value: {field: request_time, unit: s}}
""",
}
# slaprobe's names of the same figures, per workload: (requests by status, its label; histogram).
SLAPROBE_NAMES = {
    "nginx": ("slaprobe_http_requests_total", "code", "slaprobe_http_request_duration_seconds"),
    "cri": ("slaprobe_http_requests_total", "code", "slaprobe_http_request_duration_seconds"),
    "jsonl": ("requests_total", "status", "request_duration_seconds"),
}


def mtail_program(workload: str) -> str:
    """The mtail program of a workload."""
    bounds = ", ".join(f"{b:g}" for b in BUCKETS)
    return MTAIL_PROGRAM % {"buckets": bounds, "regex": MTAIL_REGEX[workload]}


# ---------------------------------------------------------------------------- reading /metrics

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)", re.M)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


Samples = list[tuple[str, dict[str, str], float]]


def scrape(url: str) -> Samples:
    """Every sample of a Prometheus text page: (name, labels, value)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return [(m[1], dict(_LABEL.findall(m[2] or "")), float(m[3])) for m in _SAMPLE.finditer(text)]


@dataclass
class Counts:
    """What one side exported: lines counted, requests by status, histogram counts per bucket (last: +Inf)."""

    lines: float
    status: dict[str, int]
    buckets: list[int]


def read_counts(samples: Samples, requests: str, label: str, hist: str) -> Counts:
    """The counts of a scrape, with ``requests`` by ``label`` and the histogram ``hist``."""
    status = {labels[label]: int(v) for name, labels, v in samples if name == requests and label in labels}
    cumulative = sorted(
        (float(labels["le"]), int(v)) for name, labels, v in samples if name == hist + "_bucket" and "le" in labels
    )
    buckets = [b - a for (_, a), (_, b) in zip([(0.0, 0), *cumulative], cumulative, strict=False)]
    lines = sum(
        v for name, labels, v in samples if name == "slaprobe_log_lines_total" and labels.get("source") == SOURCE
    )
    return Counts(lines or sum(status.values()), status, buckets)


# ---------------------------------------------------------------------------- running one side


@dataclass
class Run:
    """One side's figures on one workload."""

    wall: float
    cpu: float
    rss_kb: int
    counts: Counts
    append: float = 0.0  # seconds the append itself took (a floor under ``wall``)


def append(source: Path, target: Path) -> None:
    """Append the whole generated log to the followed file, as fast as the kernel copies it.

    ``sendfile`` in chunks of 8 MiB (complete lines or not, as a writer's buffer flushes):
    no copy through this process, which shares the CPU with the side being measured.
    """
    with open(source, "rb") as src, open(target, "r+b") as dst:  # sendfile refuses O_APPEND
        dst.seek(0, os.SEEK_END)
        offset, size = 0, os.fstat(src.fileno()).st_size
        while offset < size:
            sent = os.sendfile(dst.fileno(), src.fileno(), offset, min(8 << 20, size - offset))
            if not sent:
                break
            offset += sent


def wait_until(
    url: str, ready: Callable[[Samples], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> Samples:
    """Scrape ``url`` every SCRAPE_EVERY seconds until ``ready(samples)``; the last scrape."""
    deadline = time.monotonic() + timeout
    name = Path(str(proc.args[0])).name  # type: ignore[index]
    while True:
        try:
            samples = scrape(url)
            if ready(samples):
                return samples
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: not there after {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        time.sleep(SCRAPE_EVERY)


def measure(
    argv: list[str], url: str, source: Path, followed: Path, lines: int, read: Callable[[Samples], Counts], log: Path
) -> Run:
    """Start ``argv`` on the empty ``followed`` file, append ``source``, time it until ``read`` counts every line."""
    followed.write_bytes(b"")
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_until(url, lambda s: read(s).lines == 0 and any(True for _ in s), proc, log, 60)
        time.sleep(1.5)  # let it settle on the empty file (slaprobe's first poll of the source, mtail's)
        wait_until(url, lambda s: True, proc, log, 10)
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        append(source, followed)
        appended = time.perf_counter() - t0
        samples = wait_until(url, lambda s: read(s).lines >= lines, proc, log, TIMEOUT)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        rss = status_kb(proc.pid, "VmHWM")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Run(wall, cpu, rss, read(samples), appended)


def slaprobe_argv() -> list[str]:
    """The shipped command: the ``slaprobe`` script of this Python, else ``python -m slaprobe``."""
    script = Path(sys.executable).with_name("slaprobe")
    return [str(script)] if script.exists() else [sys.executable, "-m", "slaprobe"]


def run_slaprobe(work: Path, workload: str, source: Path, lines: int) -> Run:
    """One run of ``slaprobe serve`` on a workload."""
    side = work / f"slaprobe-{workload}"
    shutil.rmtree(side, ignore_errors=True)
    (side / "state").mkdir(parents=True)
    followed = side / "access.log"
    config = side / "slaprobe.yml"
    config.write_text(
        SLAPROBE_CONFIG
        % {
            "buckets": ", ".join(f"{b:g}" for b in BUCKETS),
            "service": SERVICE,
            "source": SOURCE,
            "path": followed,
            "source_settings": SOURCE_SETTINGS[workload],
        }
    )
    port = free_port()
    argv = [*slaprobe_argv(), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    argv += ["--state-dir", str(side / "state")]
    requests, label, hist = SLAPROBE_NAMES[workload]
    return measure(
        argv,
        f"http://127.0.0.1:{port}/metrics",
        source,
        followed,
        lines,
        lambda s: read_counts(s, requests, label, hist),
        side / "serve.log",
    )


def run_mtail(work: Path, workload: str, source: Path, lines: int) -> Run:
    """One run of mtail on a workload."""
    side = work / f"mtail-{workload}"
    shutil.rmtree(side, ignore_errors=True)
    (side / "progs").mkdir(parents=True)
    (side / "progs" / f"{workload}.mtail").write_text(mtail_program(workload))
    followed = side / "access.log"
    followed.write_bytes(b"")
    port = free_port()
    argv = ["mtail", "--progs", str(side / "progs"), "--logs", str(followed), "--address", "127.0.0.1"]
    argv += ["--port", str(port), "--logtostderr"]
    return measure(
        argv,
        f"http://127.0.0.1:{port}/metrics",
        source,
        followed,
        lines,
        lambda s: read_counts(s, "requests_total", "status", "request_duration_seconds"),
        side / "mtail.log",
    )


# ---------------------------------------------------------------------------- report


def machine() -> list[str]:
    """nproc, CPU model, memory, kernel, Python, mtail, the commit measured."""

    def out(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "?"

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    head = out(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "-C", str(REPO), "status", "--porcelain", "--", "exporter", "probes", "slaprobe"])
    changed = len([line for line in dirty.splitlines() if line.strip()])
    mtail = out(["mtail", "--version"]).split(" git ")[0]
    return [
        f"Machine: nproc {out(['nproc'])}, {model}, {mem_kb / 1048576:.1f} GiB RAM, Linux {os.uname().release}, "
        f"Python {sys.version.split()[0]}, {mtail}.",
        f"Commit: {head}" + (f" + {changed} uncommitted files in exporter/ probes/ slaprobe/" if changed else "") + ".",
    ]


def check(name: str, counts: Counts, truth: Truth, *, mtail: bool) -> str:
    """Whether a side's counts match the generator's."""
    want = list(truth.buckets)
    if mtail:  # rc50 counts 0 observations in _count only (see the module docstring)
        want[0] -= truth.zeros
    ok_status = counts.status == truth.status
    ok_buckets = counts.buckets == want
    text = f"{name}: requests by status {'match' if ok_status else 'DIFFER from'} the generator's"
    text += f", histogram buckets {'match' if ok_buckets else 'DIFFER'}"
    if not ok_buckets:
        text += f" (got {counts.buckets}, want {want})"
    if not ok_status:
        text += f" (got {counts.status}, want {truth.status})"
    return text + "."


def report(workload: str, lines: int, size: int, runs: dict[str, list[Run]], truth: Truth) -> str:
    """The markdown table of one workload."""
    med = {
        side: (
            statistics.median(lines / r.wall for r in rs),
            statistics.median(lines / r.cpu for r in rs),
            statistics.median(r.rss_kb for r in rs) / 1024,
            statistics.median(r.wall for r in rs),
            statistics.median(r.cpu for r in rs),
        )
        for side, rs in runs.items()
    }
    s, m = med["slaprobe"], med["mtail"]
    paired = statistics.median(mr.wall / sr.wall for sr, mr in zip(runs["slaprobe"], runs["mtail"], strict=True))
    paired_cpu = statistics.median(mr.cpu / sr.cpu for sr, mr in zip(runs["slaprobe"], runs["mtail"], strict=True))

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    out = [
        f"### {workload}: {lines:,} lines, {size / 1e6:.0f} MB, median of {len(runs['mtail'])} alternating rounds",
        "",
        "| | lines/s (wall) | lines per CPU-second | peak RSS | wall s | CPU s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| slaprobe serve | {s[0]:,.0f} | {s[1]:,.0f} | {s[2]:.1f} MiB | {s[3]:.2f} | {s[4]:.2f} |",
        f"| mtail | {m[0]:,.0f} | {m[1]:,.0f} | {m[2]:.1f} MiB | {m[3]:.2f} | {m[4]:.2f} |",
        f"| slaprobe / mtail (target: >= 4x, >= 4x, <= 3x) | **{s[0] / m[0]:.2f}x** ({verdict(s[0] >= 4 * m[0])}) "
        f"| **{s[1] / m[1]:.2f}x** ({verdict(s[1] >= 4 * m[1])}) "
        f"| **{s[2] / m[2]:.2f}x** ({verdict(s[2] <= 3 * m[2])}) | | |",
        "",
        f"Per-round ratios (round i against round i), medians: wall {paired:.2f}x, CPU {paired_cpu:.2f}x. "
        "Rounds (wall s / CPU s / MiB): slaprobe "
        + ", ".join(f"{r.wall:.2f}/{r.cpu:.2f}/{r.rss_kb / 1024:.0f}" for r in runs["slaprobe"])
        + "; mtail "
        + ", ".join(f"{r.wall:.2f}/{r.cpu:.2f}/{r.rss_kb / 1024:.0f}" for r in runs["mtail"])
        + f". The append itself took {min(r.append for rs in runs.values() for r in rs):.2f}"
        + f"-{max(r.append for rs in runs.values() for r in rs):.2f} s.",
        "",
        check("slaprobe", runs["slaprobe"][-1].counts, truth, mtail=False),
        check("mtail", runs["mtail"][-1].counts, truth, mtail=True),
        "",
        "mtail ran:",
        "",
        "```",
        mtail_program(workload).rstrip(),
        "```",
        "",
    ]
    return "\n".join(out)


def main() -> int:
    """Generate the logs, run both sides ``--rounds`` times per workload, print markdown."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="nginx,jsonl,cri", help="workloads, comma-separated: nginx, jsonl, cri")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("mtail") is None:
        print("mtail is not installed (apt-get install -y mtail)", file=sys.stderr)
        return 2
    workloads = [w.strip() for w in args.only.split(",") if w.strip()]
    work = Path(tempfile.mkdtemp(prefix="slaprobe-logs-bench-"))
    try:
        t = time.perf_counter()
        sources, truth = generate(work, args.lines)
        print(f"generated 3 x {args.lines:,} lines in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        print("\n".join(machine()))
        load0 = os.getloadavg()
        start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        sections = []
        for workload in workloads:
            runs: dict[str, list[Run]] = {"slaprobe": [], "mtail": []}
            sides = {"slaprobe": run_slaprobe, "mtail": run_mtail}
            for i in range(args.rounds):
                order = ["slaprobe", "mtail"] if i % 2 == 0 else ["mtail", "slaprobe"]
                for side in order:
                    r = sides[side](work, workload, sources[workload], args.lines)
                    runs[side].append(r)
                    print(
                        f"{workload} round {i + 1} {side}: {args.lines / r.wall:,.0f} lines/s wall ({r.wall:.2f} s), "
                        f"{r.cpu:.2f} CPU s, peak RSS {r.rss_kb / 1024:.1f} MiB, append {r.append:.2f} s, "
                        f"load {os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                    )
            sections.append(report(workload, args.lines, sources[workload].stat().st_size, runs, truth))
        load1 = os.getloadavg()
        print(
            f"Measured {start} to {time.strftime('%H:%M:%S UTC', time.gmtime())}; load average (1 min) "
            f"{load0[0]:.2f} before, {load1[0]:.2f} after; both sides at nice {NICE}."
        )
        print()
        print("\n".join(sections))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
