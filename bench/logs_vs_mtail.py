"""slaprobe's tailer + nginx parser against mtail, tailing the same 1,000,000-line access log.

Run: ``python bench/logs_vs_mtail.py [--lines 1000000] [--repeat 3]`` (needs ``mtail``).

Both sides do the same work in tail mode: follow an (initially empty) access log, and
count requests by status plus a request_time histogram with the default SLA buckets.
Each side is its own process, started and idle before the log is appended in one go;
the clock runs from the append to the moment the side has counted every line (slaprobe:
the worker says so on stdout; mtail: its ``/metrics`` on a loopback port, read every
20 ms). Peak RSS is VmHWM from /proc; CPU seconds are utime+stime of the side's process
over the same span, so a busy machine shows in wall time but not in CPU time. The sides
run one after the other, alternating, ``--repeat`` times; the table has the medians.

The slaprobe side is the loop exporter/logs.py runs: ``Tailer.poll()`` every 0.25 s
(mtail's default poll interval too), ``parse_nginx_combined`` per line, a dict counter
by status and a ``bisect`` histogram of ``Event.duration``, ``commit()`` after each batch.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POLL_INTERVAL = 0.25
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The same layout as the generated lines; RE2 syntax, as mtail compiles it.
MTAIL_REGEX = (
    r'^(?P<remote_addr>\S+) \S+ \S+ \[(?P<time_local>[^\]]*)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<body_bytes_sent>\S+) "(?P<http_referer>[^"]*)" "(?P<http_user_agent>[^"]*)" (?P<request_time>\d+\.\d+)$'
)
MTAIL_PROGRAM = """\
counter requests_total by status
histogram request_duration_seconds buckets %(buckets)s

/%(regex)s/ {
  requests_total[$status]++
  request_duration_seconds = float($request_time)
}
"""

# ---------------------------------------------------------------------------- the log


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


def generate_log(path: Path, lines: int, seed: int = 4) -> dict[str, object]:
    """Write an nginx combined + $request_time log; return the true counts by status and bucket."""
    rng = random.Random(seed)
    codes = [c for c, _ in STATUSES]
    weights = [w for _, w in STATUSES]
    truth_status: dict[str, int] = {}
    truth_buckets = [0] * (len(BUCKETS) + 1)
    start = 1_700_000_000
    per_second = 400
    out = []
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(lines):
            t = time.gmtime(start + i // per_second)
            clock = f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
            stamp = f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000"
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
            out.append(
                f'{client} - {user} [{stamp}] "{rng.choice(METHODS)} {target} HTTP/1.1" {status} {size} '
                f'"{rng.choice(REFERERS)}" "{rng.choice(AGENTS)}" {rt:.3f}\n'
            )
            truth_status[str(status)] = truth_status.get(str(status), 0) + 1
            truth_buckets[bisect.bisect_left(BUCKETS, float(f"{rt:.3f}"))] += 1
            if len(out) == 10000:
                fh.write("".join(out))
                out.clear()
        fh.write("".join(out))
    return {"status": truth_status, "buckets": truth_buckets}


# ---------------------------------------------------------------------------- the slaprobe side


def run_worker(log_path: str, lines: int, state_dir: str, imports: str) -> None:
    """The slaprobe side (a subprocess): tail, parse, count; print a JSON summary when all lines are in."""
    if imports == "exporter":  # what `slaprobe serve` has loaded besides: aiohttp, pydantic, prometheus_client...
        import slaprobe.cli
        import slaprobe.exporter.app
        import slaprobe.exporter.logs  # noqa: F401
    from slaprobe.probes.parsers import parse_nginx_combined
    from slaprobe.probes.tailer import Tailer

    parse = parse_nginx_combined
    bounds = list(BUCKETS)
    place = bisect.bisect_left
    by_status: dict[int, int] = {}
    buckets = [0] * (len(bounds) + 1)
    parsed = unparsed = 0
    tailer = Tailer("bench", log_path, start="beginning", state_dir=state_dir)
    tailer.poll()
    print("ready", flush=True)
    while parsed + unparsed < lines:
        batch = tailer.poll()
        if not batch:
            time.sleep(POLL_INTERVAL)
            continue
        for line in batch:
            event = parse(line)
            if event is None:
                unparsed += 1
                continue
            parsed += 1
            status = event.status
            if status is not None:
                by_status[status] = by_status.get(status, 0) + 1
            duration = event.duration
            if duration is not None:
                buckets[place(bounds, duration)] += 1
        tailer.commit()
    tailer.close()
    summary = {
        "parsed": parsed,
        "unparsed": unparsed,
        "status": {str(k): v for k, v in sorted(by_status.items())},
        "buckets": buckets,
        "stats": {"bytes_read": tailer.stats.bytes_read, "lines": tailer.stats.lines},
    }
    print(json.dumps(summary), flush=True)
    sys.stdin.readline()  # stay alive until the harness has read /proc


# ---------------------------------------------------------------------------- measuring


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_kb(pid: int) -> int:
    """VmHWM of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def append(source: Path, target: Path) -> None:
    """Append the whole generated log to the followed file, as fast as the disk takes it."""
    with open(source, "rb") as src, open(target, "ab") as dst:
        shutil.copyfileobj(src, dst, 8 << 20)


def measure_slaprobe(work: Path, source: Path, lines: int, imports: str = "minimal") -> dict[str, object]:
    """One run of the slaprobe side (``imports``: ``minimal`` or ``exporter``)."""
    log_path = work / "slaprobe-access.log"
    log_path.write_bytes(b"")
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    cmd = [sys.executable, __file__, "_worker", str(log_path), str(lines), str(state), imports]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdin is not None
    try:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("slaprobe worker did not start")
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        append(source, log_path)
        summary = json.loads(proc.stdout.readline())
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        rss = peak_rss_kb(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
    finally:
        proc.wait(30)
    return {"elapsed": elapsed, "cpu": cpu, "rss_kb": rss, "counts": summary}


def scrape_mtail(url: str) -> tuple[float, dict[str, int], list[int]]:
    """(lines counted, requests by status, cumulative bucket counts) from mtail's /metrics."""
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    by_status = {
        m.group(1): int(float(m.group(2)))
        for m in re.finditer(r'^requests_total\{[^}]*status="(\d+)"[^}]*\} (\S+)$', text, re.M)
    }
    cumulative = [
        int(float(m.group(1))) for m in re.finditer(r"^request_duration_seconds_bucket\{[^}]*\} (\S+)$", text, re.M)
    ]
    return sum(by_status.values()), by_status, cumulative


def measure_mtail(work: Path, source: Path, lines: int) -> dict[str, object]:
    """One run of mtail in tail mode."""
    log_path = work / "mtail-access.log"
    log_path.write_bytes(b"")
    progs = work / "progs"
    progs.mkdir(exist_ok=True)
    bounds = ", ".join(f"{b:g}" for b in BUCKETS)
    (progs / "nginx.mtail").write_text(MTAIL_PROGRAM % {"buckets": bounds, "regex": MTAIL_REGEX})
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    cmd = [
        "mtail",
        "--progs", str(progs),
        "--logs", str(log_path),
        "--address", "127.0.0.1",
        "--port", str(port),
        "--logtostderr",
        "--poll_interval", f"{int(POLL_INTERVAL * 1000)}ms",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                scrape_mtail(url)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mtail did not start: {proc.stderr.read().decode()[-2000:]}") from None  # type: ignore[union-attr]
                time.sleep(0.05)
        time.sleep(1.0)  # let it settle on the empty file
        cpu0 = cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        append(source, log_path)
        deadline = time.monotonic() + 600
        while True:
            counted, by_status, cumulative = scrape_mtail(url)
            if counted >= lines:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"mtail counted {counted} of {lines} lines in 600 s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        rss = peak_rss_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    buckets = [b - a for a, b in zip([0, *cumulative], cumulative, strict=False)][: len(BUCKETS)]
    buckets.append(int(counted) - (cumulative[len(BUCKETS) - 1] if len(cumulative) >= len(BUCKETS) else 0))
    return {"elapsed": elapsed, "cpu": cpu, "rss_kb": rss, "counts": {"status": by_status, "buckets": buckets}}


# ---------------------------------------------------------------------------- report


def raise_priority() -> int:
    """As root, run at nice -10 (and the session's autogroup too), as bench/common.py does.

    The machine may be shared; both sides inherit the same priority, so the figures are
    about slaprobe and mtail rather than the neighbours. SLAPROBE_BENCH_NICE=0 turns it off.
    """
    nice = int(os.environ.get("SLAPROBE_BENCH_NICE", "-10" if os.geteuid() == 0 else "0"))
    if not nice:
        return 0
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError:
        return 0
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))
    return nice


def machine() -> str:
    """CPU model, cores, memory, kernel, Python and mtail versions, load."""
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    mtail = subprocess.run(["mtail", "--version"], capture_output=True, text=True).stdout.split(" git ")[0].strip()
    return (
        f"{model}, {os.cpu_count()} cores, {mem_kb / 1048576:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}, {mtail}"
    )


def main() -> int:
    """Generate the log, run both sides ``--repeat`` times, print a markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if shutil.which("mtail") is None:
        print("mtail is not installed (apt-get install mtail)", file=sys.stderr)
        return 2
    nice = raise_priority()
    work = Path(tempfile.mkdtemp(prefix="slaprobe-logs-bench-"))
    try:
        source = work / "generated.log"
        t = time.perf_counter()
        truth = generate_log(source, args.lines)
        size = source.stat().st_size
        print(f"generated {args.lines} lines, {size / 1e6:.0f} MB in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        sides: dict[str, Callable[[Path, Path, int], dict[str, object]]] = {
            "slaprobe": measure_slaprobe,
            "mtail": measure_mtail,
            "slaprobe+exporter": lambda w, s, n: measure_slaprobe(w, s, n, "exporter"),
        }
        runs: dict[str, list[dict[str, object]]] = {side: [] for side in sides}
        load0 = os.getloadavg()
        for i in range(args.repeat):
            for side, fn in sides.items():
                r = fn(work, source, args.lines)
                runs[side].append(r)
                print(
                    f"run {i + 1} {side}: {args.lines / r['elapsed']:,.0f} lines/s wall "
                    f"({r['elapsed']:.2f} s), {r['cpu']:.2f} CPU s, peak RSS {r['rss_kb'] / 1024:.1f} MiB",  # type: ignore[operator]
                    file=sys.stderr,
                )
        load1 = os.getloadavg()
        print(report(args.lines, size, truth, runs, load0, load1))
        print(f"\nBoth sides ran at nice {nice}.")
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(
    lines: int,
    size: int,
    truth: dict[str, object],
    runs: dict[str, list[dict[str, object]]],
    load0: tuple[float, float, float],
    load1: tuple[float, float, float],
) -> str:
    """The markdown table and the correctness check of both sides."""
    med: dict[str, dict[str, float]] = {}
    for side, rs in runs.items():
        med[side] = {
            "wall": statistics.median(lines / r["elapsed"] for r in rs),  # type: ignore[operator]
            "cpu": statistics.median(lines / r["cpu"] for r in rs),  # type: ignore[operator]
            "rss": max(r["rss_kb"] for r in rs) / 1024,  # type: ignore[type-var, operator]
        }
    s, m, e = med["slaprobe"], med["mtail"], med["slaprobe+exporter"]
    paired = statistics.median(
        m_run["elapsed"] / s_run["elapsed"]  # type: ignore[operator]
        for s_run, m_run in zip(runs["slaprobe"], runs["mtail"], strict=True)
    )
    out = [
        f"Machine: {machine()}; load average {load0[0]:.2f} before, {load1[0]:.2f} after.",
        f"Log: {lines:,} nginx combined lines with $request_time, {size / 1e6:.0f} MB; "
        f"median of {len(runs['mtail'])} alternating runs, peak RSS = max VmHWM.",
        "",
        "| | lines/s (wall) | lines per CPU-second | peak RSS |",
        "|---|---:|---:|---:|",
        f"| slaprobe (Tailer + parse_nginx_combined) | {s['wall']:,.0f} | {s['cpu']:,.0f} | {s['rss']:.1f} MiB |",
        f"| mtail (tail mode) | {m['wall']:,.0f} | {m['cpu']:,.0f} | {m['rss']:.1f} MiB |",
        f"| ratio (target: >= 2x speed, <= 5x memory) | {s['wall'] / m['wall']:.2f}x | {s['cpu'] / m['cpu']:.2f}x "
        f"| {s['rss'] / m['rss']:.2f}x |",
        f"| same loop, `slaprobe serve`'s modules loaded too | {e['wall']:,.0f} | {e['cpu']:,.0f} "
        f"| {e['rss']:.1f} MiB ({e['rss'] / m['rss']:.2f}x) |",
        "",
        f"Median of the per-run wall-time ratios (slaprobe run i against mtail run i): {paired:.2f}x.",
        "",
    ]
    for side, rs in runs.items():
        counts = rs[-1]["counts"]
        ok_status = counts["status"] == truth["status"]  # type: ignore[index]
        ok_buckets = counts["buckets"] == truth["buckets"]  # type: ignore[index]
        line = f"{side}: counts by status {'match' if ok_status else 'DIFFER from'} the generator"
        line += f"; histogram buckets {'match' if ok_buckets else 'DIFFER'}"
        if not ok_buckets:
            line += f" (got {counts['buckets']}, true {truth['buckets']})"  # type: ignore[index]
        out.append(line + ".")
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        run_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5])
        sys.exit(0)
    sys.exit(main())
