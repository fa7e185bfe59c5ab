"""``slaprobe demo``: the misbehaving sample shop plus ``slaprobe serve`` probing it."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from slaprobe.demo import shop
from slaprobe.exporter.runtime import Sources
from slaprobe.exporter.serve import ServeOptions, serve

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


async def run_demo(*, listen: str = "127.0.0.1:9799", workdir: str = str(shop.DEMO_WORKDIR)) -> int:
    """Start the sample service on its fixed loopback ports, then the exporter; run until Ctrl-C."""
    try:
        service = await shop.start_sample_service(
            Path(workdir),
            http_port=shop.DEMO_HTTP_PORT,
            https_port=shop.DEMO_HTTPS_PORT,
            tcp_port=shop.DEMO_TCP_PORT,
            dns_port=shop.DEMO_DNS_PORT,
        )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ready = asyncio.Event()

    async def announce() -> None:
        await ready.wait()
        lines = [f"  {name:<14} {url}" for name, url in service.endpoints().items()]
        print(
            "slaprobe demo is running (Ctrl-C to stop)\n"
            f"  status page    http://{listen}/\n"
            f"  metrics        http://{listen}/metrics\n"
            f"  one probe      http://{listen}/probe?target=http://127.0.0.1:{service.http_port}/&debug=true\n"
            f"  config         {DEMO_CONFIG}\n"
            "sample service (misbehaves on purpose, see /schedule):\n" + "\n".join(lines),
            flush=True,
        )

    announcer = asyncio.create_task(announce())
    try:
        return await serve(ServeOptions(sources=Sources(config=str(DEMO_CONFIG)), listen=listen), ready=ready)
    finally:
        announcer.cancel()
        await service.close()
