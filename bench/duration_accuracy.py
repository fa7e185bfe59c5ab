"""probe_duration_seconds of slaprobe vs blackbox_exporter against a target that answers after 50 ms.

A tiny asyncio HTTP server (``common.py delay-server``, its own process) answers every
request after ``--delay`` seconds and closes the connection. Each exporter probes it
``-n`` times through /probe (module http_2xx), alternating between the two so drift
hits both alike, ``--concurrency`` probes in flight (default 1). Compared: the
distribution of probe_duration_seconds each exporter reports (median and p90 difference;
target within 2 ms of blackbox's), and the ``processing`` phase.

    python bench/duration_accuracy.py -n 200
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import common


def one_probe(url: str) -> tuple[float, float, bool]:
    """(probe_duration_seconds, processing phase, success) of one /probe call."""
    text = common.http_get(url, timeout=30)
    duration = common.sample_value(text, "probe_duration_seconds")
    processing = next(
        (
            v
            for _, labels, v in common.scrape_samples(text, ["probe_http_duration_seconds"])
            if 'phase="processing"' in labels
        ),
        float("nan"),
    )
    return duration, processing, common.sample_value(text, "probe_success") == 1


def stats_row(name: str, values: list[float]) -> list[str]:
    ms = [v * 1000 for v in values]
    return [name] + [f"{common.percentile(ms, p):.2f}" for p in (0, 50, 90, 99, 100)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="probes per exporter (default 200)")
    parser.add_argument("--delay", type=float, default=0.05, help="target answer delay in seconds (default 0.05)")
    parser.add_argument("--concurrency", type=int, default=1, help="probes in flight per exporter (default 1)")
    parser.add_argument("--warmup", type=int, default=10, help="unrecorded probes per exporter first (default 10)")
    args = parser.parse_args()

    common.print_machine()
    results: dict[str, list[tuple[float, float, bool]]] = {"blackbox": [], "slaprobe": []}
    with common.workdir() as tmp:
        port = common.free_port()
        target = common.start(
            "delay-server",
            [
                sys.executable,
                str(common.BENCH / "common.py"),
                "delay-server",
                "--port",
                str(port),
                "--delay",
                str(args.delay),
            ],
            tmp,
            ready_url=f"http://127.0.0.1:{port}/",
        )
        exporters = [common.start_blackbox(tmp), common.start_slaprobe(tmp)]
        try:
            urls = {p.name: common.probe_url(p, f"http://127.0.0.1:{port}/") for p in exporters}
            with ThreadPoolExecutor(args.concurrency) as pool:
                for url in urls.values():
                    list(pool.map(one_probe, [url] * args.warmup))
                done = 0
                while done < args.n:
                    batch = min(args.concurrency, args.n - done)
                    for name, url in urls.items():  # alternate: a batch of each
                        results[name] += pool.map(one_probe, [url] * batch)
                    done += batch
                    time.sleep(0.005)
        finally:
            for proc in exporters:
                proc.stop()
            target.stop()

    print()
    print(
        f"Target answers after {args.delay * 1000:g} ms (asyncio, own process, Connection: close); "
        f"{args.n} probes per exporter via /probe?module=http_2xx, alternating, {args.concurrency} in flight"
    )
    print()
    headers = ["series (ms)", "min", "median", "p90", "p99", "max"]
    rows = []
    for name, values in results.items():
        failed = sum(1 for _, _, ok in values if not ok)
        rows.append(
            stats_row(
                f"{name} probe_duration_seconds" + (f" ({failed} failed)" if failed else ""), [d for d, _, _ in values]
            )
        )
    for name, values in results.items():
        rows.append(stats_row(f"{name} phase=processing", [p for _, p, _ in values]))
    print(common.md_table(headers, rows))
    bb = [d for d, _, _ in results["blackbox"]]
    sp = [d for d, _, _ in results["slaprobe"]]
    d50 = (common.percentile(sp, 50) - common.percentile(bb, 50)) * 1000
    d90 = (common.percentile(sp, 90) - common.percentile(bb, 90)) * 1000
    ok = abs(d50) <= 2 and abs(d90) <= 2
    print()
    print(
        f"slaprobe - blackbox: median {d50:+.2f} ms, p90 {d90:+.2f} ms "
        f"(target within 2 ms: {'met' if ok else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
