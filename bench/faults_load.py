"""Probes against faults: how late they end, how much they hold, and what 1,000 hanging probes do to the rest.

    python bench/faults_load.py                    # both parts, the figures in bench/README.md
    python bench/faults_load.py --skip-matrix --hanging 1060 --healthy 1000 --seconds 60

Part 1, the fault matrix: every case of tests/reliability/test_faults.py (every probe kind
against every fault of tests/support/faults.py, HTTP on both transports) ``--runs`` times;
for each, the reason, the longest duration and how far past its timeout it ended (the
requirement: 100 ms at most), and the tracemalloc peak of one run.

Part 2, hanging probes under load: a real ``slaprobe serve`` with ``--hanging`` probes that
hang on the fault server for 9.5 s of their 10 s interval (1,060 by default, so that 1,000
are in flight at any moment; the window starts once 90% are) and ``--healthy`` probes every
5 s against the fault server's ``ok``. (A timeout closer to the interval makes some hanging
runs overlap their next slot, which the scheduler rightly counts as missed.) /metrics is scraped every
0.2 s for ``--seconds``: its latency (p50/p99/max; the requirement: p99 under 100 ms), the
scheduler lag of the runs started in that window (p99 under 1 s), missed runs (none), and
the exporter's CPU and RSS. The fault server runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import common

sys.path.insert(0, str(common.REPO))

from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import ProbeContext
from slaprobe.probes.runner import run_probe
from tests.reliability.test_faults import CASES, HTTP_TRANSPORT, Case
from tests.reliability.test_faults import expected as _expected
from tests.support.certs import make_authority
from tests.support.faults import FaultProcess, fault_certificates

# ---------------------------------------------------------------------------- part 1: the matrix


async def _run_case(case: Case, faults: FaultProcess, ca: str) -> tuple[str, float]:
    extras = case.extras() if case.extras else {}
    if case.transport is not None:
        extras[HTTP_TRANSPORT] = case.transport
    started = time.monotonic()
    ctx = ProbeContext(timeout=case.timeout, extras=extras)
    result = await run_probe(PROBERS[case.kind], case.spec(faults, ca), ctx)
    return str(result.reason or "success"), time.monotonic() - started


async def matrix(runs: int) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        authority = make_authority(Path(tmp))
        ca = str(authority.path)
        with FaultProcess(certs=fault_certificates(Path(tmp) / "certs", authority), trickle_interval=0.02) as faults:
            for case in CASES:
                reasons = set()
                longest = 0.0
                for _ in range(runs):
                    reason, wall = await _run_case(case, faults, ca)
                    reasons.add(reason)
                    longest = max(longest, wall)
                tracemalloc.start()
                await _run_case(case, faults, ca)
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                expected = "/".join(sorted(str(r or "success") for r in _expected(case)))
                past = longest - case.timeout
                shown = "/".join(sorted(reasons))
                if not reasons <= set(expected.split("/")):
                    shown += f" (expected {expected})"
                rows.append((
                    case.name, shown, f"{case.timeout:g}", f"{longest * 1000:.0f}",
                    f"{past * 1000:+.0f}" if past > -0.5 else "-", f"{peak / 2**20:.1f}",
                ))  # fmt: skip
                print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


# ---------------------------------------------------------------------------- part 2: hanging probes


def _config(faults: FaultProcess, hanging: int, healthy: int) -> str:
    lines = ["version: v1", "global: {interval: 10s, timeout: 9500ms, concurrency: 4096, location: bench}", "services:"]
    groups = (("stuck", hanging, "hang", ""), ("fine", healthy, "ok", "interval: 5s, timeout: 4s, "))
    for service, count, fault, extra in groups:
        if count:
            lines.append(f"  {service}:\n    probes:")
            lines += [
                f"      - {{name: p{i}, {extra}http: {{url: '{faults.url(fault, n=str(i))}'}}}}" for i in range(count)
            ]
    return "\n".join(lines) + "\n"


def _sum(text: str, name: str, labels: str) -> float:
    """Sum of the samples of ``name`` whose labels start with ``labels`` (``service="fine"``)."""
    head = f"{name}{{{labels}"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(head))


def load(hanging: int, healthy: int, seconds: float) -> dict[str, str]:
    with common.workdir() as tmp, FaultProcess(dns=False) as faults:
        config = tmp / "slaprobe.yaml"
        config.write_text(_config(faults, hanging, healthy))
        exporter = common.start_slaprobe(tmp, config=config, modules=None)
        try:
            metrics = f"{exporter.url}/metrics"
            deadline = time.monotonic() + 60
            while common.sample_value(text := common.http_get(metrics), "slaprobe_probes_in_flight") < 0.9 * hanging:
                if time.monotonic() > deadline:
                    raise SystemExit(f"only {common.sample_value(text, 'slaprobe_probes_in_flight')} probes in flight")
                time.sleep(0.2)
            before_lag = common.lag_buckets(text)
            before_runs = _sum(text, "slaprobe_probe_runs_total", 'service="fine"')
            cpu_before = exporter.cpu()
            latencies, in_flight = [], []
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                t0 = time.perf_counter()
                text = common.http_get(metrics)
                latencies.append(time.perf_counter() - t0)
                in_flight.append(common.sample_value(text, "slaprobe_probes_in_flight"))
                time.sleep(0.2)
            elapsed = time.monotonic() - started
            cpu = exporter.cpu() - cpu_before
            after_lag = common.lag_buckets(text)
            window = [(le, after_lag[le] - before_lag.get(le, 0.0)) for le in after_lag]
            runs = _sum(text, "slaprobe_probe_runs_total", 'service="fine"') - before_runs
            missed = common.sample_sum(text, "slaprobe_scheduler_missed_runs_total")
            healthy_failures = _sum(text, "slaprobe_probe_failures_total", 'service="fine"')
            return {
                "hanging probes (in flight, min-max)": f"{hanging} ({min(in_flight):.0f}-{max(in_flight):.0f})",
                "healthy probes": f"{healthy} every 5 s",
                "window": f"{elapsed:.0f} s, {len(latencies)} scrapes of {len(text) / 1e6:.1f} MB",
                "/metrics p50 / p99 / max": " / ".join(
                    f"{common.percentile(latencies, p) * 1000:.1f} ms" for p in (50, 99, 100)
                ),
                "scheduler lag p50 / p99 (runs started in the window)": " / ".join(
                    f"{common.histogram_quantile(q, window) * 1000:.1f} ms" for q in (0.5, 0.99)
                ),
                "healthy runs / expected": f"{runs:.0f} / {healthy * elapsed / 5:.0f}",
                "healthy failures": f"{healthy_failures:.0f}",
                "missed runs (all probes, since start)": f"{missed:.0f}",
                "exporter CPU": f"{cpu / elapsed:.2f} cores",
                "exporter RSS": f"{common.mb(exporter.rss())} MB",
            }
        finally:
            exporter.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each fault case")
    parser.add_argument("--hanging", type=int, default=1060)
    parser.add_argument("--healthy", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    args = parser.parse_args()
    common.print_machine()
    if not args.skip_matrix:
        rows = asyncio.run(matrix(args.runs))
        print()
        print(common.md_table(
            ["fault case", "reason", "timeout s", f"longest of {args.runs + 1} ms", "past timeout ms", "peak MiB"],
            rows,
        ))  # fmt: skip
    if not args.skip_load:
        figures = load(args.hanging, args.healthy, args.seconds)
        print()
        print(common.md_table(["", "measured"], figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
