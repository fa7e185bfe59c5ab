"""How long a reload holds the event loop of a running ``slaprobe serve``, seen from outside.

A real ``slaprobe serve`` runs ``--targets`` HTTP probes (default 5,000, at 30 s, on one
loopback nginx; a tenth inside business hours, a hundredth in a window that never opens,
a hundredth on cron). A thread of this script asks ``/-/healthy`` every ``--poll`` seconds
(10 ms) over one kept-alive connection and records how long each answer took: while the
loop is held, the answer waits. Each round then reloads, alternately by SIGHUP and by
``POST /-/reload``, with the config file switched between two versions that differ in every
probe's timeout (so every job is replaced) and, every third round, the same file again
(nothing changes). The longest ``/-/healthy`` answer between the trigger and
``--settle`` seconds after it is the round's stall; the quiet seconds before the first
round give the baseline.

    python bench/reload_stall.py --targets 5000 --rounds 6
    python bench/reload_stall.py --in-process   # the loop's own view: a 5 ms ticker, no HTTP

``--in-process`` reloads an ``Exporter`` in this process (scheduler not running, no nginx)
and reports the longest gap of a task that sleeps 5 ms at a time on the same loop: what the
reload itself holds, without the host's scheduling of two processes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import common


def write_config(path: Path, nginx: common.Nginx, *, targets: int, interval: float, timeout: float) -> None:
    """``targets`` HTTP probes; some inside a window, some in one that never opens, some on cron."""
    services: dict[str, dict[str, object]] = {}
    for i in range(targets):
        service = services.setdefault(f"svc{i // 100:04d}", {"tier": "low", "owner": "bench", "probes": []})
        probe: dict[str, object] = {"name": f"p{i:05d}", "http": {"url": f"{nginx.url}?i={i}"}}
        if i % 10 == 1:
            probe["during"] = ["business-hours"]
        elif i % 100 == 2:
            probe["during"] = ["never"]
        elif i % 100 == 3:
            probe["schedule"] = "*/5 * * * *"
        probes = service["probes"]
        assert isinstance(probes, list)
        probes.append(probe)
    config = {
        "version": "v1",
        "global": {"location": "bench", "interval": f"{interval:g}s", "timeout": f"{timeout:g}s"},
        "services": services,
        "time_intervals": {
            "business-hours": [
                {"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "18:00"}]}
            ],
            "never": [{"years": ["1999"]}],
        },
    }
    path.write_text(json.dumps(config))


@dataclass
class Poller:
    """Asks /-/healthy every ``period`` seconds; keeps (monotonic send time, seconds to answer)."""

    port: int
    period: float
    samples: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        next_at = time.monotonic()
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                conn.request("GET", "/-/healthy")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.samples.append((sent, time.monotonic() - sent))
            next_at = max(next_at + self.period, time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))
        conn.close()

    def stop(self) -> None:
        self._stop.set()

    def between(self, start: float, end: float) -> list[float]:
        return [latency for sent, latency in self.samples if start <= sent <= end]


def loads_logged(exporter: common.Proc) -> int:
    """How many times the exporter has logged a loaded config (read from its log, not asked:
    scraping /metrics meanwhile would add work to the loop being measured)."""
    return exporter.log_path.read_text(errors="replace").count("config loaded")


async def in_process(targets: int, rounds: int) -> list[list[object]]:
    """Reload an in-process exporter ``rounds`` times; the longest gaps of a 5 ms ticker."""
    import asyncio

    from slaprobe.exporter.runtime import Exporter, Sources

    class Target:
        url = "http://127.0.0.1:9/"

    rows: list[list[object]] = []
    with common.workdir() as tmp:
        config = tmp / "slaprobe.json"
        versions = []
        for name, timeout in (("a", 5.0), ("b", 4.0)):
            path = tmp / f"slaprobe-{name}.json"
            write_config(path, Target, targets=targets, interval=30.0, timeout=timeout)  # type: ignore[arg-type]
            versions.append(path.read_bytes())
        config.write_bytes(versions[0])
        exporter = Exporter(Sources(config=str(config)))
        exporter.freeze_gc = True
        exporter.reload()
        exporter.start_scheduler()
        gaps: list[float] = []

        async def tick() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        for round_ in range(rounds):
            changed = round_ % 3 != 2
            if changed:
                config.write_bytes(versions[(round_ + 1) % 2])
            await asyncio.sleep(0.3)
            gaps.clear()
            start = time.perf_counter()
            await exporter.reload_async()
            took = time.perf_counter() - start
            await asyncio.sleep(0.05)
            rows.append([round_ + 1, "every probe" if changed else "nothing", f"{took:.2f}", f"{max(gaps) * 1000:.0f}"])
        ticker.cancel()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between /-/healthy requests")
    parser.add_argument("--baseline", type=float, default=5.0, help="quiet seconds measured before the first reload")
    parser.add_argument("--settle", type=float, default=6.0, help="seconds watched after each trigger")
    parser.add_argument("--in-process", action="store_true", help="reload in this process, a 5 ms ticker on the loop")
    args = parser.parse_args()

    common.print_machine()
    if args.in_process:
        import asyncio

        rows = asyncio.run(in_process(args.targets, args.rounds))
        print(f"\n{args.targets} probes, reloaded in-process; longest gap of a 5 ms ticker on the loop\n")
        print(common.md_table(["round", "changed", "reload s", "longest gap ms"], rows))
        return 0
    with common.workdir() as tmp:
        nginx = common.start_nginx(tmp)
        config = tmp / "slaprobe.json"
        versions = []
        for name, timeout in (("a", 5.0), ("b", 4.0)):
            path = tmp / f"slaprobe-{name}.json"
            write_config(path, nginx, targets=args.targets, interval=args.interval, timeout=timeout)
            versions.append(path.read_bytes())
        config.write_bytes(versions[0])
        exporter = common.start_slaprobe(tmp, config=config, modules=None)
        port = int(exporter.url.rsplit(":", 1)[1])
        poller = Poller(port, args.poll)
        thread = threading.Thread(target=poller.run, daemon=True)
        try:
            time.sleep(args.interval)  # one interval: every probe has run once
            thread.start()
            time.sleep(args.baseline)
            quiet = poller.between(0, time.monotonic())
            rows = []
            for round_ in range(args.rounds):
                changed = round_ % 3 != 2
                current = versions[(round_ + 1) % 2] if changed else config.read_bytes()
                config.write_bytes(current)
                how = "SIGHUP" if round_ % 2 == 0 else "POST /-/reload"
                before = loads_logged(exporter)
                start = time.monotonic()
                if how == "SIGHUP":
                    os.kill(exporter.pid, signal.SIGHUP)
                else:
                    request = urllib.request.Request(f"{exporter.url}/-/reload", method="POST")
                    with urllib.request.urlopen(request, timeout=120) as resp:
                        resp.read()
                while loads_logged(exporter) == before and time.monotonic() - start < 120:
                    time.sleep(0.02)
                done = time.monotonic() - start
                time.sleep(max(0.0, args.settle - (time.monotonic() - start)))
                window = poller.between(start - args.poll, start + args.settle)
                rows.append(
                    [
                        round_ + 1,
                        how,
                        "every probe" if changed else "nothing",
                        f"{done:.2f}",
                        f"{max(window) * 1000:.0f}",
                        f"{common.percentile(window, 99) * 1000:.1f}",
                        sum(1 for latency in window if latency > 0.1),
                    ]
                )
        finally:
            poller.stop()
            thread.join(5)
            exporter.stop()
            nginx.proc.stop()
    print(f"\n{args.targets} probes at {args.interval:g}s; /-/healthy every {args.poll * 1000:g} ms")
    print(
        f"\nbaseline ({args.baseline:g} s, no reload): p50 {common.percentile(quiet, 50) * 1000:.1f} ms,"
        f" p99 {common.percentile(quiet, 99) * 1000:.1f} ms, max {max(quiet) * 1000:.1f} ms;"
        f" poll errors {poller.errors}\n"
    )
    headers = ["round", "trigger", "changed", "reload done s", "longest /-/healthy ms", "p99 ms", "answers > 100 ms"]
    print(common.md_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
