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
import sys
import time
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


def snapshot(proc: common.Proc, *, cpu_first: bool) -> Snapshot:
    """Scrape /metrics and read the CPU (before the scrape when ``cpu_first``, else after it)."""
    cpu, sys_cpu = (proc.cpu(), proc.sys_cpu()) if cpu_first else (0.0, 0.0)
    host = common.host_cpu()
    started = time.monotonic()
    text = common.http_get(f"{proc.url}/metrics")
    took = time.monotonic() - started
    if not cpu_first:
        cpu, sys_cpu = proc.cpu(), proc.sys_cpu()
    # One pass over the (up to tens of MB) text: this process shares the machine's cores.
    wanted = (RUNS, FAILURES, MISSED, f"{LAG}_bucket", IN_FLIGHT, f"{DURATION}_sum", f"{DURATION}_count")
    sums = dict.fromkeys(wanted, 0.0)
    lag: dict[float, float] = {}
    for name, labels, value in common.scrape_samples(text, wanted):
        sums[name] += value
        if name == f"{LAG}_bucket":
            lag[float(labels.split('le="', 1)[1].split('"', 1)[0])] = value
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
        bytes=len(text.encode()),
        scrape_seconds=took,
        duration_sum=sums[f"{DURATION}_sum"],
        duration_count=sums[f"{DURATION}_count"],
        rss=proc.rss(),
    )


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
) -> ScheduledResult:
    """Start slaprobe with ``targets`` probes, wait an interval + warm-up, measure ``seconds``."""
    config = tmp / f"scheduled-{targets}.json"
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="efficiency window and blackbox run (default 20)")
    parser.add_argument("--targets", type=int, default=500, help="targets of the efficiency run (default 500)")
    parser.add_argument("--interval", type=float, default=1.0, help="interval of the efficiency run, s (default 1)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds after the first interval (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="blackbox /probe load in flight (default 16)")
    parser.add_argument("--big-targets", type=int, default=10_000, help="targets of the scale run; 0 skips it")
    parser.add_argument("--big-interval", type=float, default=30.0)
    parser.add_argument("--big-seconds", type=float, default=120, help="scale run window after warm-up (default 120)")
    parser.add_argument("--scrape-interval", type=float, default=15, help="/metrics scrapes during the scale run")
    parser.add_argument("--skip-small", action="store_true", help="only the scale run")
    parser.add_argument(
        "--py-spy", type=Path, help="run the efficiency run's slaprobe sampled by py-spy into this file"
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

    common.print_machine()
    if args.preamble:
        print(f"EXPERIMENT: every slaprobe process ran first: {args.preamble}")
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
        try:
            bb = small = big = None
            if not args.skip_small:
                bb = probe_mode.run_exporter(
                    "blackbox",
                    nginx,
                    tmp,
                    seconds=args.seconds,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    threads=1,
                )
                small = efficiency_run(profile=args.profile, preamble=args.preamble)
            for vname, preamble in variants.items():
                extra[vname] = efficiency_run(preamble=preamble, name=f"slaprobe+{vname}")
            if args.py_spy:  # an extra, unmeasured run: the sampler costs the exporter CPU
                efficiency_run(spy=args.py_spy.resolve())
            if args.big_targets:
                big = run_scheduled(
                    nginx,
                    tmp,
                    targets=args.big_targets,
                    interval=args.big_interval,
                    timeout=10,
                    warmup=args.warmup,
                    seconds=args.big_seconds,
                    scrape_interval=args.scrape_interval,
                    preamble=args.preamble,
                )
        finally:
            nginx.proc.stop()

    if bb is not None and small is not None:
        print()
        print(
            f"Efficiency: slaprobe scheduled, {small.targets} targets at {small.interval:g} s "
            f"(offered {small.targets / small.interval:.0f} probes/s), {small.window:.0f} s window; "
            f"blackbox /probe with {args.concurrency} in flight for {bb.seconds:.0f} s"
            + (" (slaprobe under cProfile: figures inflated)" if args.profile else "")
        )
        print()
        rows = [
            [
                "blackbox /probe",
                f"{bb.rate:.0f}",
                f"{bb.cpu:.2f}",
                f"{(bb.cpu - bb.sys_cpu) / bb.ok * 1e6:.0f} / {bb.sys_cpu / bb.ok * 1e6:.0f}",
                f"{bb.per_cpu:.0f}",
                str(bb.bad),
                "-",
                "-",
                common.mb(bb.rss),
                f"{bb.host_cores:.2f}",
            ],
        ]
        for label, r in [("slaprobe scheduled", small)] + [(f"slaprobe+{k} (experiment)", v) for k, v in extra.items()]:
            rows.append(
                [
                    label,
                    f"{r.rate:.0f}",
                    f"{r.cpu:.2f}",
                    f"{(r.cpu - r.sys_cpu) / r.probes * 1e6:.0f} / {r.sys_cpu / r.probes * 1e6:.0f}"
                    if r.probes
                    else "-",
                    f"{r.per_cpu:.0f}",
                    f"{r.failures:.0f}",
                    fmt_seconds(r.p99_lag),
                    f"{r.missed:.0f}",
                    common.mb(r.rss),
                    f"{r.host_cores:.2f}",
                ]
            )
        headers = [
            "mode",
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
        print(common.md_table(headers, rows))
        ratio = small.per_cpu / bb.per_cpu
        print()
        print(
            f"scheduled slaprobe / blackbox /probe, probes per CPU-second: **{ratio:.2f}x** "
            f"(target >= 2x: {'met' if ratio >= 2 else 'MISSED'})"
        )
    if big is not None:
        print()
        print(
            f"Scale: {big.targets} HTTP targets at {big.interval:g} s (offered {big.targets / big.interval:.0f} "
            f"probes/s), concurrency 256 (default), {big.window:.0f} s window after {big.interval + args.warmup:.0f} s "
            f"warm-up, /metrics scraped every {args.scrape_interval:g} s"
        )
        print()
        ok = big.p99_lag < 1 and big.missed == 0 and big.peak_rss < 200e6
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
            "/metrics size, slowest scrape",
            "host busy cores",
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
            f"{big.scrape_bytes / 1e6:.1f} MB, {big.scrape_max:.2f} s",
            f"{big.host_cores:.2f}",
        ]
        print(common.md_table(headers, [row]))
        print()
        print("Timeline (one row per /metrics scrape; CPU and host cores over the row's span):")
        print()
        print(timeline_table(big))
        print()
        print(
            f"targets p99 lag < 1 s, no missed runs, RSS < 200 MB: {'met' if ok else 'MISSED'} "
            f"(lag {fmt_seconds(big.p99_lag)}, missed {big.missed:.0f}, peak RSS {common.mb(big.peak_rss)} MB)"
        )
    if args.py_spy:
        print()
        print(f"py-spy profile of an extra efficiency run ({args.py_spy}):")
        print()
        print(common.summarize_profile(args.py_spy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
