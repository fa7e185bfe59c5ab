"""slaprobe's scheduled mode: probes per CPU-second, and the 10,000-target run.

Part 1 (efficiency): ``--targets`` HTTP probes (distinct URLs on one loopback nginx) at
``--interval``; after one interval plus ``--warmup`` seconds, the exporter's CPU
(/proc/PID/stat) and ``slaprobe_probe_runs_total`` are read at the start and end of a
``--seconds`` window; probes per CPU-second = runs delta / CPU delta. /metrics is read
only at the two ends (outside the CPU window). blackbox_exporter's /probe figure is
measured in the same run, exactly as probe_mode.py does it.

Part 2 (scale): ``--big-targets`` (default 10,000) at ``--big-interval`` (30 s) with the
product's default concurrency (256); after one interval of warm-up, ``--big-seconds``
(at least 120 for the README figure) during which /metrics is scraped every
``--scrape-interval`` seconds as Prometheus would (those scrapes are in the CPU figure).
Reports p99 scheduler lag (histogram_quantile over slaprobe_scheduler_lag_seconds
deltas), missed runs (slaprobe_scheduler_missed_runs_total delta), RSS, CPU.

    python bench/scheduled_mode.py --seconds 20 --big-seconds 120
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import common
import probe_mode

from slaprobe import conventions

RUNS = conventions.PROBE_RUNS
FAILURES = conventions.PROBE_FAILURES
LAG = conventions.SCHEDULER_LAG
MISSED = conventions.SCHEDULER_MISSED
IN_FLIGHT = conventions.PROBES_IN_FLIGHT
DURATION = conventions.PROBE_DURATION


@dataclass
class Snapshot:
    """What one /metrics read and /proc say at one moment."""

    at: float  # monotonic
    cpu: float
    sys_cpu: float
    runs: float
    failures: float
    missed: float
    lag: dict[float, float]
    in_flight: float
    host: tuple[float, float]
    bytes: int
    scrape_seconds: float
    duration_sum: float = 0.0  # slaprobe_probe_duration_seconds_sum over every probe
    duration_count: float = 0.0
    rss: int = 0


def _sample_pattern(names: tuple[str, ...]) -> re.Pattern[bytes]:
    alternatives = b"|".join(re.escape(n.encode()) for n in names)
    return re.compile(rb"^(" + alternatives + rb")(\{[^}\n]*\})? (\S+)$", re.M)


WANTED = (RUNS, FAILURES, MISSED, f"{LAG}_bucket", IN_FLIGHT, f"{DURATION}_sum", f"{DURATION}_count")
_WANTED_RE = _sample_pattern(WANTED)


def snapshot(proc: common.Proc, *, cpu_first: bool) -> Snapshot:
    """Scrape /metrics and read the CPU (before the scrape when ``cpu_first``, else after it)."""
    cpu, sys_cpu = (proc.cpu(), proc.sys_cpu()) if cpu_first else (0.0, 0.0)
    host = common.host_cpu()
    started = time.monotonic()
    with urllib.request.urlopen(f"{proc.url}/metrics", timeout=120) as resp:
        body = resp.read()
    took = time.monotonic() - started
    if not cpu_first:
        cpu, sys_cpu = proc.cpu(), proc.sys_cpu()
    # One regex pass in C over the (up to 100+ MB) bytes: this process shares the machine's cores.
    sums = dict.fromkeys(WANTED, 0.0)
    lag: dict[float, float] = {}
    for m in _WANTED_RE.finditer(body):
        name = m.group(1).decode()
        value = float(m.group(3))
        sums[name] += value
        if name == f"{LAG}_bucket":
            lag[float(m.group(2).decode().split('le="', 1)[1].split('"', 1)[0])] = value
    return Snapshot(
        at=time.monotonic(),
        cpu=cpu,
        sys_cpu=sys_cpu,
        runs=sums[RUNS],
        failures=sums[FAILURES],
        missed=sums[MISSED],
        lag=lag,
        in_flight=sums[IN_FLIGHT],
        host=host,
        bytes=len(body),
        scrape_seconds=took,
        duration_sum=sums[f"{DURATION}_sum"],
        duration_count=sums[f"{DURATION}_count"],
        rss=proc.rss(),
    )


def raise_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (the servers started inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def start_wide_nginx(tmp: Path, *, addresses: int, workers: int) -> tuple[common.Nginx, list[str]]:
    """nginx (``workers`` processes) on one port of ``addresses`` loopback addresses 127.0.1.N.

    Each probe opens a fresh connection; at 1,667 connections a second to one address and
    port, the closed ones (TIME_WAIT, 60 s) would use up the 28,000 ephemeral ports of that
    destination. Spread over many destinations, each gets its own range.
    """
    root = tmp / "nginx-wide"
    (root / "html").mkdir(parents=True, exist_ok=True)
    (root / "html" / "index.html").write_bytes(b"ok\n")
    port = common.free_port()
    hosts = [f"127.0.{1 + k // 250}.{1 + k % 250}" for k in range(addresses)]
    listens = "\n".join(f"        listen {h}:{port} backlog=4096;" for h in ["127.0.0.1", *hosts])
    conf = root / "nginx.conf"
    conf.write_text(
        f"""
worker_processes {workers};
worker_rlimit_nofile 16384;
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
    keepalive_timeout 65s;
    server {{
{listens}
        root {root}/html;
        location = /nginx_status {{ stub_status; }}
        location / {{ try_files /index.html =404; }}
    }}
}}
"""
    )
    user = "daemon off; user root;" if os.geteuid() == 0 else "daemon off;"
    proc = common.start(
        "nginx-wide",
        [common.NGINX, "-p", str(root), "-c", str(conf), "-g", user],
        tmp,
        ready_url=f"http://127.0.0.1:{port}/",
    )
    return common.Nginx(proc, port), [f"http://{h}:{port}/" for h in hosts]


def write_wide_config(
    path: Path, bases: list[str], *, targets: int, interval: float, timeout: float, per_service: int = 100
) -> None:
    """``targets`` HTTP probes of distinct URLs spread round-robin over ``bases``."""
    services: dict[str, dict[str, object]] = {}
    for i in range(targets):
        service = services.setdefault(f"svc{i // per_service:04d}", {"tier": "low", "owner": "bench", "probes": []})
        probes = service["probes"]
        assert isinstance(probes, list)
        probes.append({"name": f"p{i:05d}", "http": {"url": f"{bases[i % len(bases)]}?i={i}"}})
    global_ = {"location": "bench", "interval": f"{interval:g}s", "timeout": f"{timeout:g}s"}
    path.write_text(json.dumps({"version": "v1", "global": global_, "services": services}))


def load_average() -> str:
    """The 1, 5 and 15 minute load averages of the machine."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def lag_quantile(q: float, first: Snapshot, last: Snapshot) -> float:
    """The q-quantile of scheduler lag over runs started between two snapshots."""
    buckets = [(le, last.lag.get(le, 0.0) - first.lag.get(le, 0.0)) for le in last.lag]
    return common.histogram_quantile(q, buckets)


def lag_bucket_bound(q: float, first: Snapshot, last: Snapshot) -> float:
    """The smallest ``le`` bound holding at least a fraction q of the runs (no interpolation)."""
    deltas = sorted((le, last.lag.get(le, 0.0) - first.lag.get(le, 0.0)) for le in last.lag)
    total = deltas[-1][1] if deltas else 0
    return next((le for le, count in deltas if total and count >= q * total), float("nan"))


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


@dataclass
class ScheduledResult:
    """Figures of one scheduled run."""

    targets: int
    interval: float
    window: float
    probes: float
    failures: float
    cpu: float
    sys_cpu: float
    missed: float
    p99_lag: float
    p99_bound: float
    rss: int
    peak_rss: int
    startup: float
    host_cores: float = 0.0  # cores busy on the whole machine during the window
    rss_ready: int = 0  # bytes once /-/ready answered, before any probe ran
    peak_ready: int = 0  # bytes, high-water mark once ready (config loading)
    rss_warm: int = 0  # bytes after the first interval, before the first /metrics scrape
    started: float = 0  # runs started in the window (lag histogram count delta)
    scrapes: int = 0
    scrape_bytes: int = 0
    scrape_max: float = 0.0
    timeline: list[tuple[float, Snapshot]] = field(default_factory=list)  # (seconds since ready, snapshot)
    window_start: float = 0.0  # seconds since ready
    scrape_times: list[float] = field(default_factory=list)  # seconds of every /metrics scrape, warm-up included
    nginx_cpu: float = 0.0  # CPU seconds of the targets' server over the window
    load: tuple[str, str] = ("", "")  # the machine's load averages at the window's start and end

    @property
    def rate(self) -> float:
        return self.probes / self.window

    @property
    def per_cpu(self) -> float:
        return self.probes / self.cpu if self.cpu else float("nan")


def run_scheduled(
    nginx: common.Nginx,
    tmp: Path,
    *,
    targets: int,
    interval: float,
    timeout: float,
    warmup: float,
    seconds: float,
    scrape_interval: float | None,
    concurrency: int | None = None,
    profile: Path | None = None,
    spy: Path | None = None,
    preamble: str | None = None,
    name: str = "",
    bases: list[str] | None = None,
) -> ScheduledResult:
    """Start slaprobe with ``targets`` probes, wait an interval + warm-up, measure ``seconds``."""
    config = tmp / f"scheduled-{targets}.json"
    if bases:
        write_wide_config(config, bases, targets=targets, interval=interval, timeout=timeout)
    else:
        common.write_config(config, nginx, targets=targets, interval=interval, timeout=timeout, concurrency=concurrency)
    started = time.monotonic()
    proc = common.start_slaprobe(
        tmp, config=config, modules=None, profile=profile, preamble=preamble, name=name or f"slaprobe-{targets}"
    )
    startup = time.monotonic() - started
    try:
        rss_ready, peak_ready = proc.rss(), proc.peak_rss()
        ready = time.monotonic()
        timeline: list[Snapshot] = []
        window_start = ready + interval + warmup
        if scrape_interval:  # Prometheus scrapes from the start, warm-up included
            timeline.append(snapshot(proc, cpu_first=True))
            while time.monotonic() + scrape_interval < window_start:
                time.sleep(scrape_interval)
                timeline.append(snapshot(proc, cpu_first=True))
        time.sleep(max(0.0, window_start - time.monotonic()))
        rss_warm = proc.rss()
        # Window edges: /metrics is read outside the CPU window at both ends.
        first = snapshot(proc, cpu_first=False)
        timeline.append(first)
        load0, nginx0 = load_average(), nginx.proc_cpu()
        sampler = common.py_spy_record(proc.pid, seconds, spy) if spy is not None else None
        peak_rss = proc.rss()
        scrapes: list[Snapshot] = []
        end = first.at + seconds
        while scrape_interval and time.monotonic() + scrape_interval < end:
            time.sleep(scrape_interval)
            scrapes.append(snapshot(proc, cpu_first=True))
            peak_rss = max(peak_rss, proc.rss())
        time.sleep(max(0.0, end - time.monotonic()))
        last = snapshot(proc, cpu_first=True)
        load1, nginx1 = load_average(), nginx.proc_cpu()
        timeline += [*scrapes, last]
        if sampler is not None:
            sampler.wait(60)
        window = last.at - first.at
        if not proc.alive():
            raise RuntimeError(f"slaprobe died:\n{proc.log_tail()}")
        return ScheduledResult(
            targets=targets,
            interval=interval,
            window=window,
            probes=last.runs - first.runs,
            failures=last.failures - first.failures,
            cpu=last.cpu - first.cpu,
            sys_cpu=last.sys_cpu - first.sys_cpu,
            missed=last.missed - first.missed,
            p99_lag=lag_quantile(0.99, first, last),
            p99_bound=lag_bucket_bound(0.99, first, last),
            rss=max(peak_rss, proc.rss()),
            peak_rss=proc.peak_rss(),
            startup=startup,
            host_cores=common.host_busy_cores(first.host, last.host, window),
            rss_ready=rss_ready,
            peak_ready=peak_ready,
            rss_warm=rss_warm,
            started=last.lag.get(float("inf"), 0.0) - first.lag.get(float("inf"), 0.0),
            scrapes=len(scrapes),
            scrape_bytes=max((s.bytes for s in scrapes), default=last.bytes),
            scrape_max=max((s.scrape_seconds for s in scrapes), default=last.scrape_seconds),
            timeline=[(s.at - ready, s) for s in timeline],
            window_start=first.at - ready,
            scrape_times=[s.scrape_seconds for s in timeline],
            nginx_cpu=nginx1 - nginx0,
            load=(load0, load1),
        )
    finally:
        status = proc.stop(timeout=60)
        if status not in (0, -15):
            print(f"warning: {proc.name} exited with {status}:\n{proc.log_tail()}", file=sys.stderr)


def timeline_table(result: ScheduledResult) -> str:
    """One row per scrape: what happened since the previous one."""
    rows = []
    for (t0, a), (t1, b) in zip(result.timeline, result.timeline[1:], strict=False):
        dt = b.at - a.at
        count = b.duration_count - a.duration_count
        mean = (b.duration_sum - a.duration_sum) / count if count else float("nan")
        rows.append(
            [
                f"{t0:.0f}-{t1:.0f}" + (" (window)" if t0 >= result.window_start - 0.5 else ""),
                f"{(b.runs - a.runs) / dt:.0f}",
                f"{mean * 1000:.1f}",
                f"{b.in_flight:.0f}",
                f"{b.missed - a.missed:.0f}",
                f"{(b.cpu - a.cpu) / dt * 100:.0f}%",
                f"{common.host_busy_cores(a.host, b.host, dt):.2f}",
                common.mb(b.rss),
                f"{b.scrape_seconds:.2f}",
            ]
        )
    headers = [
        "s since ready",
        "runs/s",
        "mean probe ms",
        "in flight",
        "missed",
        "CPU",
        "host cores",
        "RSS MB",
        "scrape s",
    ]
    return common.md_table(headers, rows)


def efficiency_table(
    bbs: list[probe_mode.ProbeModeResult],
    probes: list[probe_mode.ProbeModeResult],
    smalls: list[ScheduledResult],
    extra: dict[str, ScheduledResult],
) -> str:
    """One row per exporter run, in the order they ran."""
    rows = []
    for i, bb in enumerate(bbs):
        rows.append(
            [
                f"{i + 1}: blackbox /probe",
                f"{bb.rate:.0f}",
                f"{bb.cpu:.2f}",
                f"{(bb.cpu - bb.sys_cpu) / bb.ok * 1e6:.0f} / {bb.sys_cpu / bb.ok * 1e6:.0f}",
                f"{bb.per_cpu:.0f}",
                str(bb.bad),
                "-",
                "-",
                common.mb(bb.rss),
                f"{bb.host_cores:.2f}",
            ]
        )
        if i < len(probes):
            sp = probes[i]
            rows.append(
                [
                    f"{i + 1}: slaprobe /probe",
                    f"{sp.rate:.0f}",
                    f"{sp.cpu:.2f}",
                    f"{(sp.cpu - sp.sys_cpu) / sp.ok * 1e6:.0f} / {sp.sys_cpu / sp.ok * 1e6:.0f}" if sp.ok else "-",
                    f"{sp.per_cpu:.0f}",
                    str(sp.bad),
                    "-",
                    "-",
                    common.mb(sp.rss),
                    f"{sp.host_cores:.2f}",
                ]
            )
        if i < len(smalls):
            rows.append(scheduled_row(f"{i + 1}: slaprobe scheduled", smalls[i]))
    rows += [scheduled_row(f"slaprobe+{k} (experiment)", v) for k, v in extra.items()]
    headers = [
        "run",
        "probes/s",
        "CPU s",
        "user / kernel µs per probe",
        "probes per CPU-s",
        "failed",
        "p99 lag",
        "missed",
        "RSS MB",
        "host busy cores",
    ]
    return common.md_table(headers, rows)


def scheduled_row(label: str, r: ScheduledResult) -> list[str]:
    return [
        label,
        f"{r.rate:.0f}",
        f"{r.cpu:.2f}",
        f"{(r.cpu - r.sys_cpu) / r.probes * 1e6:.0f} / {r.sys_cpu / r.probes * 1e6:.0f}" if r.probes else "-",
        f"{r.per_cpu:.0f}",
        f"{r.failures:.0f}",
        fmt_seconds(r.p99_lag),
        f"{r.missed:.0f}",
        common.mb(r.rss),
        f"{r.host_cores:.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="efficiency window and blackbox run (default 20)")
    parser.add_argument("--targets", type=int, default=500, help="targets of the efficiency run (default 500)")
    parser.add_argument("--interval", type=float, default=1.0, help="interval of the efficiency run, s (default 1)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds after the first interval (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="/probe load in flight (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the efficiency part (median)")
    parser.add_argument("--big-targets", type=int, default=10_000, help="targets of the scale run; 0 skips it")
    parser.add_argument("--big-interval", type=float, default=30.0)
    parser.add_argument("--big-seconds", type=float, default=120, help="scale run window after warm-up (default 120)")
    parser.add_argument(
        "--big-addresses", type=int, default=50, help="loopback addresses 127.0.1.N the scale run's targets use"
    )
    parser.add_argument("--big-nginx-workers", type=int, default=2, help="nginx processes serving the scale run")
    parser.add_argument("--scrape-interval", type=float, default=15, help="/metrics scrapes during the scale run")
    parser.add_argument("--skip-small", action="store_true", help="only the scale run")
    parser.add_argument(
        "--py-spy", type=Path, help="run the efficiency run's slaprobe sampled by py-spy into this file"
    )
    parser.add_argument(
        "--big-py-spy", type=Path, help="sample the scale run's slaprobe with py-spy over its window into this file"
    )
    parser.add_argument("--profile", type=Path, help="run the efficiency run's slaprobe under cProfile into this file")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="also run the efficiency run with PYTHON run first in slaprobe's process (an experiment); repeatable",
    )
    parser.add_argument(
        "--preamble",
        metavar="PYTHON",
        help="run PYTHON first in every slaprobe process of this invocation (an experiment; printed in the output)",
    )
    args = parser.parse_args()
    variants = dict(v.split("=", 1) for v in args.variant)
    extra: dict[str, ScheduledResult] = {}

    nofile = raise_nofile()
    common.print_machine()
    print(f"Load average at the start: {load_average()}; RLIMIT_NOFILE {nofile}")
    if args.preamble:
        print(f"EXPERIMENT: every slaprobe process ran first: {args.preamble}")
    bbs: list[probe_mode.ProbeModeResult] = []
    probes: list[probe_mode.ProbeModeResult] = []
    smalls: list[ScheduledResult] = []
    big = None
    with common.workdir() as tmp:
        nginx = common.start_nginx(tmp)
        # The small run's settings; each call adds what differs (profile, preamble, name, spy).
        efficiency_run = partial(
            run_scheduled,
            nginx,
            tmp,
            targets=args.targets,
            interval=args.interval,
            timeout=args.interval,
            warmup=args.warmup,
            seconds=args.seconds,
            scrape_interval=None,
        )
        probe_run = partial(
            probe_mode.run_exporter,
            nginx=nginx,
            tmp=tmp,
            seconds=args.seconds,
            concurrency=args.concurrency,
            warmup=args.warmup,
            threads=1,
        )
        try:
            if not args.skip_small:
                for round_ in range(args.rounds):  # alternating: blackbox, slaprobe /probe, slaprobe scheduled
                    bbs.append(probe_run("blackbox"))
                    probes.append(probe_run("slaprobe"))
                    smalls.append(efficiency_run(profile=args.profile if round_ == 0 else None, preamble=args.preamble))
            for vname, preamble in variants.items():
                extra[vname] = efficiency_run(preamble=preamble, name=f"slaprobe+{vname}")
            if args.py_spy:  # an extra, unmeasured run: the sampler costs the exporter CPU
                efficiency_run(spy=args.py_spy.resolve())
        finally:
            nginx.proc.stop()
        if args.big_targets:
            wide, bases = start_wide_nginx(tmp, addresses=args.big_addresses, workers=args.big_nginx_workers)
            try:
                big = run_scheduled(
                    wide,
                    tmp,
                    targets=args.big_targets,
                    interval=args.big_interval,
                    timeout=10,
                    warmup=args.warmup,
                    seconds=args.big_seconds,
                    scrape_interval=args.scrape_interval,
                    preamble=args.preamble,
                    bases=bases,
                    spy=args.big_py_spy.resolve() if args.big_py_spy else None,
                )
            finally:
                wide.proc.stop()

    if bbs and smalls:
        print()
        print(
            f"Efficiency, {len(bbs)} alternating rounds: blackbox /probe and slaprobe /probe with "
            f"{args.concurrency} in flight (wrk) for {args.seconds:g} s each, then slaprobe scheduled, "
            f"{args.targets} targets at {args.interval:g} s (offered {args.targets / args.interval:.0f} probes/s), "
            f"{args.seconds:g} s window; all against one loopback nginx"
            + (" (round 1's scheduled slaprobe under cProfile: figures inflated)" if args.profile else "")
        )
        print()
        print(efficiency_table(bbs, probes, smalls, extra))
        bb = statistics.median(r.per_cpu for r in bbs)
        sp = statistics.median(r.per_cpu for r in probes)
        sc = statistics.median(r.per_cpu for r in smalls)
        print()
        print(
            f"medians, probes per CPU-second: blackbox /probe {bb:.0f}, slaprobe /probe {sp:.0f}, "
            f"slaprobe scheduled {sc:.0f}"
        )
        verdict = "met" if sp / bb >= 2 else "MISSED"
        print(
            f"slaprobe /probe / blackbox /probe: **{sp / bb:.2f}x** (target >= 2x: {verdict});"
            f" per round {', '.join(f'{p.per_cpu / b.per_cpu:.2f}x' for p, b in zip(probes, bbs, strict=False))}"
        )
        verdict = "met" if sc / bb >= 3 else "MISSED"
        print(
            f"slaprobe scheduled / blackbox /probe: **{sc / bb:.2f}x** (target >= 3x: {verdict});"
            f" per round {', '.join(f'{s.per_cpu / b.per_cpu:.2f}x' for s, b in zip(smalls, bbs, strict=False))}"
        )
    if big is not None:
        print()
        print(
            f"Scale: {big.targets} HTTP targets at {big.interval:g} s (offered {big.targets / big.interval:.0f} "
            f"probes/s) on {args.big_addresses} loopback addresses served by nginx with {args.big_nginx_workers} "
            f"workers, concurrency 256 (default), {big.window:.0f} s window after {big.interval + args.warmup:.0f} s "
            f"warm-up, /metrics scraped every {args.scrape_interval:g} s"
        )
        print()
        scrape_p99 = common.percentile(big.scrape_times, 99)
        ok = big.p99_lag < 1 and big.missed == 0 and big.peak_rss < 600e6 and scrape_p99 < 2
        headers = [
            "targets",
            "runs/s finished (started)",
            "failed",
            "CPU use",
            "probes per CPU-s",
            "p99 lag (bucket)",
            "missed runs",
            "RSS MB: ready (peak while loading) / warm / window max / peak",
            "startup s",
            "/metrics size; scrape p50 / p99 / max s",
            "nginx CPU",
            "host busy cores",
            "load avg start / end",
        ]
        row = [
            str(big.targets),
            f"{big.rate:.0f} ({big.started / big.window:.0f})",
            f"{big.failures:.0f}",
            f"{big.cpu / big.window * 100:.0f}%",
            f"{big.per_cpu:.0f}",
            f"{fmt_seconds(big.p99_lag)} (<= {big.p99_bound:g} s)",
            f"{big.missed:.0f}",
            f"{common.mb(big.rss_ready)} ({common.mb(big.peak_ready)}) / "
            + " / ".join(common.mb(v) for v in (big.rss_warm, big.rss, big.peak_rss)),
            f"{big.startup:.1f}",
            f"{big.scrape_bytes / 1e6:.1f} MB; {common.percentile(big.scrape_times, 50):.2f} / {scrape_p99:.2f}"
            f" / {max(big.scrape_times):.2f} ({len(big.scrape_times)} scrapes)",
            f"{big.nginx_cpu / big.window * 100:.0f}%",
            f"{big.host_cores:.2f}",
            f"{big.load[0]} / {big.load[1]}",
        ]
        print(common.md_table(headers, [row]))
        print()
        print("Timeline (one row per /metrics scrape; CPU and host cores over the row's span):")
        print()
        print(timeline_table(big))
        print()
        print(
            f"p99 lag < 1 s, no missed runs, RSS < 600 MB, /metrics p99 < 2 s: {'met' if ok else 'MISSED'} "
            f"(lag {fmt_seconds(big.p99_lag)}, missed {big.missed:.0f}, peak RSS {common.mb(big.peak_rss)} MB, "
            f"/metrics p99 {scrape_p99:.2f} s)"
        )
        if args.big_py_spy:
            print()
            print(f"py-spy profile of the scale run's window ({args.big_py_spy}):")
            print()
            print(common.summarize_profile(args.big_py_spy))
    if args.py_spy:
        print()
        print(f"py-spy profile of an extra efficiency run ({args.py_spy}):")
        print()
        print(common.summarize_profile(args.py_spy))
    print()
    print(f"Load average at the end: {load_average()} (the machine is shared with other sessions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
