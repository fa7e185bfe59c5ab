"""HTTP probes per CPU-second through /probe: slaprobe vs blackbox_exporter, same load, same target.

Both exporters answer ``/probe?target=<nginx>&module=http_2xx`` (the same module file)
one after the other in this run; wrk keeps ``--concurrency`` requests in flight for
``--seconds`` against each. The exporter's CPU is utime+stime from /proc/PID/stat
over the wrk run; nginx's stub_status shows how many TCP connections each probe
opened (blackbox opens a fresh one per probe).

    python bench/probe_mode.py --seconds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import common


@dataclass
class ProbeModeResult:
    """One exporter's figures under /probe load."""

    exporter: str
    seconds: float
    ok: int
    bad: int
    cpu: float  # exporter CPU seconds over the run
    rss: int  # bytes at the end of the run
    peak_rss: int  # bytes, high-water mark
    connections_per_probe: float  # nginx accepts / requests during the run
    p50_ms: float
    p99_ms: float
    sys_cpu: float  # of ``cpu``, seconds in the kernel (stime)
    host_cores: float  # cores busy on the whole machine (exporter, nginx, wrk and anything else)
    nginx_cpu: float  # nginx CPU seconds over the run

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def per_cpu(self) -> float:
        return self.ok / self.cpu if self.cpu else float("nan")

    def row(self) -> list[str]:
        return [
            self.exporter,
            f"{self.rate:.0f}",
            f"{self.cpu:.2f} / {self.seconds:.0f} s",
            f"{self.sys_cpu / self.cpu * 100:.0f}%" if self.cpu else "-",
            f"{(self.cpu - self.sys_cpu) / self.ok * 1e6:.0f} / {self.sys_cpu / self.ok * 1e6:.0f}" if self.ok else "-",
            f"{self.per_cpu:.0f}",
            f"{self.cpu / self.seconds * 100:.0f}%",
            f"{common.mb(self.rss)} ({common.mb(self.peak_rss)})",
            f"{self.connections_per_probe:.2f}",
            f"{self.p50_ms:.1f} / {self.p99_ms:.1f}",
            str(self.bad),
            f"{self.host_cores:.2f} (nginx {self.nginx_cpu / self.seconds:.2f})",
        ]


HEADERS = [
    "exporter",
    "probes/s",
    "exporter CPU",
    "of it kernel",
    "user / kernel µs per probe",
    "probes per CPU-s",
    "CPU use",
    "RSS MB (peak)",
    "TCP conns per probe",
    "/probe p50 / p99 ms",
    "failed",
    "host busy cores",
]


def measure(
    exporter: common.Proc,
    nginx: common.Nginx,
    tmp: Path,
    *,
    seconds: float,
    concurrency: int,
    warmup: float,
    threads: int = 1,
    spy: Path | None = None,
) -> ProbeModeResult:
    """Warm up, then drive ``exporter``'s /probe against ``nginx`` and read its CPU around the run."""
    url = common.probe_url(exporter, nginx.url)
    if warmup > 0:
        common.run_wrk(url, seconds=warmup, concurrency=concurrency, threads=threads, tmp=tmp)
    before = nginx.stub_status()
    sampler = common.py_spy_record(exporter.pid, seconds, spy) if spy is not None else None
    cpu0, sys0, host0, nginx0 = exporter.cpu(), exporter.sys_cpu(), common.host_cpu(), nginx.proc_cpu()
    load = common.run_wrk(url, seconds=seconds, concurrency=concurrency, threads=threads, tmp=tmp)
    cpu1, sys1, host1, nginx1 = exporter.cpu(), exporter.sys_cpu(), common.host_cpu(), nginx.proc_cpu()
    if sampler is not None:
        sampler.wait(60)
    after = nginx.stub_status()
    requests = after["requests"] - before["requests"] - 1  # minus our own stub_status read
    accepts = after["accepts"] - before["accepts"] - 1
    return ProbeModeResult(
        exporter=exporter.name,
        seconds=load.seconds,
        ok=load.ok,
        bad=load.bad + load.errors,
        cpu=cpu1 - cpu0,
        sys_cpu=sys1 - sys0,
        rss=exporter.rss(),
        peak_rss=exporter.peak_rss(),
        connections_per_probe=accepts / requests if requests > 0 else float("nan"),
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        host_cores=common.host_busy_cores(host0, host1, load.seconds),
        nginx_cpu=nginx1 - nginx0,
    )


def run_exporter(
    kind: str,
    nginx: common.Nginx,
    tmp: Path,
    *,
    seconds: float,
    concurrency: int,
    warmup: float,
    threads: int,
    profile: Path | None = None,
    spy: Path | None = None,
    preamble: str | None = None,
    config_targets: int = 0,
) -> ProbeModeResult:
    """Start one exporter (``blackbox``, ``slaprobe`` or a ``slaprobe+<variant>``), measure it, stop it."""
    if kind == "blackbox":
        proc = common.start_blackbox(tmp)
    else:
        name = "slaprobe+cProfile" if profile else "slaprobe+py-spy" if spy else kind
        config = None
        if config_targets:
            # Scheduled probes that hardly run (24 h interval) but sit in the config, as in production.
            config = tmp / f"idle-{config_targets}.json"
            common.write_config(config, nginx, targets=config_targets, interval=86400, timeout=10)
            name += f" ({config_targets} probes in config)"
        proc = common.start_slaprobe(tmp, config=config, profile=profile, name=name, preamble=preamble)
    try:
        return measure(
            proc, nginx, tmp, seconds=seconds, concurrency=concurrency, warmup=warmup, threads=threads, spy=spy
        )
    finally:
        status = proc.stop()
        if status not in (0, -15):
            print(f"warning: {proc.name} exited with {status}:\n{proc.log_tail()}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20, help="measured seconds per exporter (default 20)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds before each run (default 3)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat blackbox+slaprobe this many times (median)")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--nginx-keepalive", choices=["on", "off"], default="on")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="also measure slaprobe with PYTHON run first in its process (an experiment); repeatable",
    )
    parser.add_argument(
        "--config-targets",
        type=int,
        default=0,
        help="also measure slaprobe with a config of this many (24 h interval) probes loaded",
    )
    parser.add_argument("--profile", type=Path, help="afterwards, run slaprobe once more under cProfile into this file")
    parser.add_argument(
        "--py-spy", type=Path, help="afterwards, run slaprobe once more sampled by py-spy into this file"
    )
    args = parser.parse_args()

    common.print_machine()
    with common.workdir() as tmp:
        nginx = common.start_nginx(tmp, keepalive=args.nginx_keepalive == "on")
        try:
            variants = dict(v.split("=", 1) for v in args.variant)
            kinds = ["blackbox", "slaprobe"] + [f"slaprobe+{name}" for name in variants]
            results: dict[str, list[ProbeModeResult]] = {kind: [] for kind in kinds}
            for _ in range(args.rounds):
                for kind in kinds:
                    results[kind].append(
                        run_exporter(
                            kind,
                            nginx,
                            tmp,
                            seconds=args.seconds,
                            concurrency=args.concurrency,
                            warmup=args.warmup,
                            threads=args.wrk_threads,
                            preamble=variants.get(kind.partition("+")[2]),
                        )
                    )
            if args.config_targets:
                kinds.append("slaprobe+config")
                results["slaprobe+config"] = [
                    run_exporter(
                        "slaprobe",
                        nginx,
                        tmp,
                        seconds=args.seconds,
                        concurrency=args.concurrency,
                        warmup=args.warmup,
                        threads=args.wrk_threads,
                        config_targets=args.config_targets,
                    )
                ]
            profiled = []
            if args.profile:
                profiled.append(
                    run_exporter(
                        "slaprobe",
                        nginx,
                        tmp,
                        seconds=args.seconds,
                        concurrency=args.concurrency,
                        warmup=0,
                        threads=args.wrk_threads,
                        profile=args.profile.resolve(),
                    )
                )
            if args.py_spy:
                profiled.append(
                    run_exporter(
                        "slaprobe",
                        nginx,
                        tmp,
                        seconds=args.seconds,
                        concurrency=args.concurrency,
                        warmup=args.warmup,
                        threads=args.wrk_threads,
                        spy=args.py_spy.resolve(),
                    )
                )
        finally:
            nginx.proc.stop()

    print()
    print(
        f"/probe?module=http_2xx against nginx on loopback, {args.concurrency} in flight (wrk), "
        f"{args.seconds:g} s per exporter after {args.warmup:g} s warm-up, {args.rounds} round(s), "
        f"nginx keep-alive {args.nginx_keepalive}"
    )
    print()
    rows = [r.row() for kind in kinds for r in results[kind]]
    rows += [r.row() for r in profiled]  # profiler runs: overhead included, not used in the ratio
    print(common.md_table(HEADERS, rows))
    bb = statistics.median(r.per_cpu for r in results["blackbox"])
    sp = statistics.median(r.per_cpu for r in results["slaprobe"])
    bb_rate = statistics.median(r.rate for r in results["blackbox"])
    sp_rate = statistics.median(r.rate for r in results["slaprobe"])
    print()
    print(
        f"probes per CPU-second, slaprobe / blackbox: **{sp / bb:.2f}x** ({sp:.0f} vs {bb:.0f}; target >= 1.0x: "
        f"{'met' if sp / bb >= 1.0 else 'MISSED'}); probes/s ratio {sp_rate / bb_rate:.2f}x"
    )
    for kind in kinds[2:]:
        per_cpu = statistics.median(r.per_cpu for r in results[kind])
        rate = statistics.median(r.rate for r in results[kind])
        print(
            f"experiment {kind} / blackbox: {per_cpu / bb:.2f}x per CPU-second ({per_cpu:.0f}), "
            f"{rate / bb_rate:.2f}x probes/s"
        )
    if args.profile:
        print(f"cProfile of the extra slaprobe run: {args.profile} (python -m pstats {args.profile})")
    if args.py_spy:
        print()
        print(f"py-spy profile of the extra slaprobe run under the same load ({args.py_spy}):")
        print()
        print(common.summarize_profile(args.py_spy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
