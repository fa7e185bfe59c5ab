"""A /probe flood at ``ulimit -n 1024``: hanging /probe requests vs /metrics and a scheduled probe.

Issue 13 ("/probe has no bounds"): 700 hanging ``/probe`` requests made a new ``/metrics``
connection take 13.2 s, wrote 58,368 error lines and made a scheduled probe fail as
``internal``. This starts ``slaprobe serve`` with its file limit at 1024, a target that
never answers and one that answers at once (probed on schedule every second), sends
``--flood`` ``/probe`` requests at the hanging target at once, and for ``--seconds``
reads ``/metrics`` every 100 ms over a new connection from another loopback address
(127.0.0.2, as Prometheus would be). Beyond the open-file limit (``--flood 1500``) the
exporter's connection cap refuses the flooder's excess. Printed: how the flood was answered (200/503), the
``/metrics`` latency, the scheduled probe's runs and failures in the window, and the
lines the exporter logged.

    python bench/probe_flood.py [--flood 700] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import resource
import sys
import time

import aiohttp
import common

SCRAPER = "127.0.0.2"  # the /metrics reader's address: the flood comes from 127.0.0.1
LIMIT = "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))"


def _sum(text: str, head: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(head))


async def flood(base: str, hang: str, count: int, seconds: float) -> dict[str, str]:
    statuses: collections.Counter[str] = collections.Counter()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:

        async def one() -> None:
            try:
                params = {"target": hang}
                headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(seconds * 4)}
                async with session.get(f"{base}/probe", params=params, headers=headers) as response:
                    await response.read()
                    statuses[str(response.status)] += 1
            except (aiohttp.ClientError, OSError) as exc:
                statuses[type(exc).__name__] += 1

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.sleep(1.0)  # the flood is in
        scraper = aiohttp.TCPConnector(local_addr=(SCRAPER, 0))
        async with aiohttp.ClientSession(connector=scraper) as first, first.get(f"{base}/metrics") as response:
            before = await response.text()
        latencies = []
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            t0 = time.perf_counter()
            scraper = aiohttp.TCPConnector(local_addr=(SCRAPER, 0))  # a new connection, as Prometheus' address
            async with aiohttp.ClientSession(connector=scraper) as fresh, fresh.get(f"{base}/metrics") as response:
                text = await response.text()
            latencies.append(time.perf_counter() - t0)
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - started
        answered = dict(statuses)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    head_runs = 'slaprobe_probe_runs_total{service="fine"'
    head_fail = 'slaprobe_probe_failures_total{service="fine"'
    return {
        "flood": f"{count} /probe requests at a target that never answers",
        "answered within the window": ", ".join(f"{k}: {v}" for k, v in sorted(answered.items())) or "none",
        "window": f"{elapsed:.0f} s, {len(latencies)} /metrics reads on new connections",
        "/metrics p50 / p99 / max": " / ".join(
            f"{common.percentile(latencies, p) * 1000:.1f} ms" for p in (50, 99, 100)
        ),
        "scheduled runs / failures in the window": f"{_sum(text, head_runs) - _sum(before, head_runs):.0f} / "
        f"{_sum(text, head_fail) - _sum(before, head_fail):.0f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--flood", type=int, default=700)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.flood * 3 + 256)), hard))
    with common.workdir() as tmp:
        hang_port, fast_port = common.free_port(), common.free_port()
        script = str(common.REPO / "bench" / "common.py")
        servers = [
            common.start(
                "hang", [sys.executable, script, "delay-server", "--port", str(hang_port), "--delay", "3600"], tmp
            ),
            common.start(
                "fast", [sys.executable, script, "delay-server", "--port", str(fast_port), "--delay", "0"], tmp
            ),
        ]
        config = tmp / "slaprobe.yaml"
        config.write_text(
            "version: v1\nglobal: {interval: 1s, timeout: 900ms}\nservices:\n  fine:\n    probes:\n"
            f"      - {{name: fast, http: {{url: 'http://127.0.0.1:{fast_port}/'}}}}\n"
        )
        time.sleep(0.5)
        exporter = common.start_slaprobe(tmp, config=config, modules=None, preamble=LIMIT)
        try:
            lines_before = len(exporter.log_path.read_bytes().splitlines())
            rows = asyncio.run(flood(exporter.url, f"http://127.0.0.1:{hang_port}/", args.flood, args.seconds))
            log = exporter.log_path.read_bytes()
            rows["exporter log lines / bytes in the run"] = f"{len(log.splitlines()) - lines_before} / {len(log)}"
        finally:
            exporter.stop()
            for server in servers:
                server.stop()
    common.print_machine()
    print(common.md_table(("figure", "value"), rows.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
