"""Business flows per second: a 5-step flow (login, subscribe, verify, bill, unsubscribe).

The sample shop runs in a separate process on loopback (``demo/shop.py``, the
demo's own service), so its CPU is not counted. This process runs ``--flows`` flows
through the flow's probe function (the code the scheduler runs), ``--concurrency`` at a time, and
reports flows per second (wall), client CPU per flow, and the failures by step (the demo's
bill step fails about one run in five on purpose, and with several flows in flight one
flow's unsubscribe ends the others' subscriptions, since all log in as the same demo user;
a failed run still made all five requests).

    python bench/flow_rate.py --flows 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

import common

from slaprobe.config import FlowSpec
from slaprobe.probes.kinds import PROBERS
from slaprobe.probes.result import ProbeContext
from slaprobe.probes.runner import run_probe

SHOP = """
import asyncio, sys
from pathlib import Path
from slaprobe.demo.shop import start_sample_service
async def main():
    service = await start_sample_service(Path(sys.argv[1]), http_port=int(sys.argv[2]))
    await asyncio.Event().wait()
asyncio.run(main())
"""


def flow_spec(base: str) -> FlowSpec:
    """login -> subscribe -> verify (catalog) -> bill, finally unsubscribe: five requests."""
    auth = {"Authorization": "Bearer ${token}"}
    return FlowSpec.model_validate(
        {
            "steps": [
                {
                    "name": "login",
                    "http": {
                        "url": f"{base}/api/login",
                        "method": "POST",
                        "json": {"user": "demo", "password": "demo"},
                    },
                    "extract": {"token": {"json": "$.token"}},
                },
                {
                    "name": "subscribe",
                    "http": {"url": f"{base}/api/subscribe", "method": "POST", "headers": auth, "json": {"plan": "b"}},
                    "extract": {"subscription": {"json": "$.subscription_id"}},
                },
                {"name": "verify", "http": {"url": f"{base}/healthz", "headers": auth}},
                {"name": "bill", "http": {"url": f"{base}/api/bill?subscription=${{subscription}}", "headers": auth}},
            ],
            "finally": [
                {"name": "unsubscribe", "http": {"url": f"{base}/api/unsubscribe", "method": "POST", "headers": auth}}
            ],
        }
    )


async def run(spec: FlowSpec, flows: int, concurrency: int) -> tuple[float, float, Counter[str]]:
    """(wall seconds, client CPU seconds, failed flows by failing step) for ``flows`` runs."""
    semaphore = asyncio.Semaphore(concurrency)
    failed: Counter[str] = Counter()

    async def one() -> None:
        async with semaphore:
            result = await run_probe(PROBERS["flow"], spec, ProbeContext(timeout=10.0))
            if not result.success:
                failed[result.detail.split(":")[0]] += 1

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(flows)))
    return time.perf_counter() - wall, time.process_time() - cpu, failed


def main() -> int:
    """Start the shop, run the flows, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    port = common.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        shop = subprocess.Popen([sys.executable, "-c", SHOP, tmp, str(port)], env=os.environ.copy())
        try:
            common.wait_http(f"http://127.0.0.1:{port}/healthz", proc=shop)
            spec = flow_spec(f"http://127.0.0.1:{port}")
            rows = []
            for concurrency in args.concurrency:
                asyncio.run(run(spec, 50, concurrency))  # warm-up
                wall, cpu, failed = asyncio.run(run(spec, args.flows, concurrency))
                rows.append(
                    (
                        concurrency,
                        args.flows,
                        f"{args.flows / wall:.0f}",
                        f"{cpu / args.flows * 1e6:.0f}",
                        f"{args.flows / cpu:.0f}",
                        ", ".join(f"{n} {step}" for step, n in failed.most_common()) or "0",
                    )
                )
        finally:
            shop.terminate()
            shop.wait(timeout=10)
    common.print_machine()
    print(
        common.md_table(("in flight", "flows", "flows/s", "client CPU µs per flow", "flows per CPU-s", "failed"), rows)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
