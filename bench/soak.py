"""Soak: 10,000 targets for 10 minutes, a quarter of them failing in ways that rotate every minute.

    python bench/soak.py                          # the run whose figures are in bench/README.md
    python bench/soak.py --targets 2000 --minutes 3

Every target is ``/rotate?id=N`` on the fault server (tests/support/faults.py, its own
process): for each minute a fresh quarter of the targets fails, each in one of eight ways
(503, hang until the timeout, reset mid-body, close unanswered, garbage status line, a body
trickled past the timeout, a redirect loop, a body over the probe's size limit), and the
rest answer 200. A real ``slaprobe serve`` probes them every ``--interval`` seconds and is
scraped every 15 s, as Prometheus would.

Pass criteria (exit status 1 otherwise): the exporter's RSS at the end within 10% of its
RSS after the first minute; no missed run (``slaprobe_scheduler_missed_runs_total`` 0 for
both causes); every failure reason seen is one the faults explain; every scrape answered.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import common

sys.path.insert(0, str(common.REPO))

from tests.support.faults import FaultProcess

SCRAPE_EVERY = 15.0
EXPECTED_REASONS = {"http_status", "timeout", "connect", "protocol", "redirects", "body_limit"}
_REASON = re.compile(r'^slaprobe_probe_failures_total\{.*reason="([a-z_]+)"\} (\S+)$', re.M)


def write_config(path: Path, faults: FaultProcess, targets: int, interval: float, timeout: float) -> None:
    services: dict[str, dict[str, object]] = {}
    for i in range(targets):
        service = services.setdefault(f"svc{i // 100:03d}", {"tier": "low", "owner": "soak", "probes": []})
        probes = service["probes"]
        assert isinstance(probes, list)
        probes.append({"name": f"t{i:05d}", "http": {"url": faults.url("rotate", id=str(i)), "body_size_limit": 65536}})
    global_ = {"location": "soak", "interval": f"{interval:g}s", "timeout": f"{timeout:g}s", "concurrency": 1024}
    path.write_text(json.dumps({"version": "v1", "global": global_, "services": services}))


def total(text: str, name: str) -> float:
    """Sum of every series of ``name`` (counters with labels)."""
    head = name + "{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(head))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=float, default=30)
    parser.add_argument("--timeout", type=float, default=5)
    parser.add_argument("--rotate", type=float, default=60, help="seconds between rotations of the failing quarter")
    args = parser.parse_args()
    common.print_machine()
    with (
        common.workdir("slaprobe-soak-") as tmp,
        FaultProcess(dns=False, huge_size=1 << 20, trickle_interval=0.5, rotate_period=args.rotate) as faults,
    ):
        config = tmp / "slaprobe.json"
        write_config(config, faults, args.targets, args.interval, args.timeout)
        loading = time.monotonic()
        exporter = common.start_slaprobe(tmp, config=config, modules=None)
        print(f"serve ready after {time.monotonic() - loading:.1f} s (pid {exporter.pid})", flush=True)
        rows = []
        scrapes: list[float] = []
        failed_scrapes = 0
        first_lag: dict[float, float] = {}
        started = time.monotonic()
        cpu_start, server_cpu_start = exporter.cpu(), common.cpu_seconds(faults.pid)
        rss_minute = 0.0
        text = ""
        try:
            next_scrape = started
            while (now := time.monotonic()) - started < args.minutes * 60 + 1:
                if now < next_scrape:
                    time.sleep(min(1.0, next_scrape - now))
                    continue
                next_scrape += SCRAPE_EVERY
                t0 = time.perf_counter()
                try:
                    text = common.http_get(f"{exporter.url}/metrics", timeout=30)
                except OSError:
                    failed_scrapes += 1
                    continue
                scrapes.append(time.perf_counter() - t0)
                elapsed = time.monotonic() - started
                rss = exporter.rss()
                if not first_lag:
                    first_lag = common.lag_buckets(text)
                if not rss_minute and elapsed >= 60:
                    rss_minute = rss
                reasons: Counter[str] = Counter()
                for reason, value in _REASON.findall(text):
                    reasons[reason] += float(value)  # type: ignore[assignment]  # Counter adds floats too
                runs = total(text, "slaprobe_probe_runs_total")
                missed = total(text, "slaprobe_scheduler_missed_runs_total")
                rows.append((
                    f"{elapsed:.0f}", f"{common.mb(rss)}", f"{runs:.0f}",
                    f"{sum(reasons.values()) / runs:.1%}" if runs else "-",
                    f"{common.sample_value(text, 'slaprobe_probes_in_flight'):.0f}", f"{missed:.0f}",
                    f"{scrapes[-1] * 1000:.0f}",
                ))  # fmt: skip
                print(" | ".join(rows[-1]), flush=True)
            elapsed = time.monotonic() - started
            cpu = (exporter.cpu() - cpu_start) / elapsed
            server_cpu = (common.cpu_seconds(faults.pid) - server_cpu_start) / elapsed
            rss_end, rss_peak = exporter.rss(), exporter.peak_rss()
        finally:
            exporter.stop()
    last_lag = common.lag_buckets(text)
    window = [(le, last_lag[le] - first_lag.get(le, 0.0)) for le in last_lag]
    reasons.clear()
    for reason, value in _REASON.findall(text):
        reasons[reason] += float(value)  # type: ignore[assignment]  # Counter adds floats too
    runs = total(text, "slaprobe_probe_runs_total")
    planned = total(text, "slaprobe_probe_planned_runs_total")
    missed = total(text, "slaprobe_scheduler_missed_runs_total")
    growth = rss_end / rss_minute - 1 if rss_minute else float("nan")
    print()
    print(common.md_table(["s", "RSS MB", "runs", "failed", "in flight", "missed", "scrape ms"], rows))
    print()
    summary = {
        "targets, interval, timeout": f"{args.targets:,}, {args.interval:g} s, {args.timeout:g} s",
        "duration": f"{elapsed / 60:.1f} min",
        "runs (planned slots)": f"{runs:,.0f} ({planned:,.0f}), {runs / elapsed:.0f}/s",
        "failed runs": f"{sum(reasons.values()):,.0f} ({sum(reasons.values()) / runs:.1%}): "
        + ", ".join(f"{r} {v:,.0f}" for r, v in reasons.most_common()),
        "missed runs": f"{missed:.0f}",
        "RSS after 1 min / at the end / peak": " / ".join(map(common.mb, (rss_minute, rss_end, rss_peak))) + " MB",
        "RSS growth after the first minute": f"{growth:+.1%}",
        "scheduler lag p50 / p99 / highest bucket bound": " / ".join(
            f"{common.histogram_quantile(q, window) * 1000:.1f} ms" for q in (0.5, 0.99, 1.0)
        ),
        "/metrics scrape p50 / p99 (size)": f"{common.percentile(scrapes, 50) * 1000:.0f} / "
        f"{common.percentile(scrapes, 99) * 1000:.0f} ms ({len(text) / 1e6:.1f} MB), {failed_scrapes} failed",
        "CPU: exporter / fault server": f"{cpu:.2f} / {server_cpu:.2f} cores",
    }
    print(common.md_table(["", "measured"], summary.items()))
    ok = abs(growth) <= 0.10 and missed == 0 and not failed_scrapes and set(reasons) <= EXPECTED_REASONS
    verdict = "PASS" if ok else "FAIL"
    print(f"\n{verdict}: RSS growth {growth:+.1%} (<= 10%), missed {missed:.0f} (0), failed scrapes "
          f"{failed_scrapes} (0), reasons {sorted(reasons)} (within {sorted(EXPECTED_REASONS)})")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
