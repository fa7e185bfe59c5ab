"""The websocket probe: an upgrade at a ws:// or wss:// URL, then an expect/send message dialogue.

blackbox_exporter's ``websocket`` prober (on its master branch, after 0.28): the target's
name is resolved (and guarded) here and aiohttp's client dials exactly that address (a
resolver that answers with it); each ``expect`` reads one message and matches it,
``send`` sends a text message (``${1}`` from the match). Samples are blackbox's:
``probe_websocket_status_code``, ``probe_websocket_connection_upgraded``,
``probe_websocket_failed_due_to_regex`` and ``probe_websocket_duration_seconds{phase}``.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
import time
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult
from yarl import URL

from slaprobe.probes import tlsutil
from slaprobe.probes.reasons import first_line, os_reason
from slaprobe.probes.resolve import ResolveError, address_samples, resolve_host, unresolved_samples
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult, Sample
from slaprobe.probes.tcp import expand_template
from slaprobe.specs import WebsocketSpec

STATUS = "probe_websocket_status_code"
UPGRADED = "probe_websocket_connection_upgraded"
FAILED_DUE_TO_REGEX = "probe_websocket_failed_due_to_regex"
DURATION = "probe_websocket_duration_seconds"


class _FixedResolver(aiohttp.abc.AbstractResolver):
    """Answers every name with the one address the probe resolved and the guard saw."""

    def __init__(self, ip: str, family: int) -> None:
        self.ip, self.family = ip, family

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host=self.ip, port=port, family=self.family, proto=0, flags=0)]

    async def close(self) -> None:
        return None


async def probe_websocket(spec: WebsocketSpec, ctx: ProbeContext) -> ProbeResult:
    """Upgrade at ``spec.url`` and run the message dialogue."""
    trace = ctx.trace
    phases = {"resolve": 0.0, "connect": 0.0, "processing": 0.0, "transfer": 0.0}
    state = {"status": 0.0, "upgraded": 0.0, "regex": 0.0}

    def finish(reason: FailureReason | None, detail: str) -> ProbeResult:
        trace.samples += [Sample(DURATION, v, (("phase", p),)) for p, v in phases.items()]
        trace.samples += [
            Sample(STATUS, state["status"]),
            Sample(UPGRADED, state["upgraded"]),
            Sample(FAILED_DUE_TO_REGEX, state["regex"]),
        ]
        if reason is not None:
            trace.log(f"probe failed ({reason}): {detail}")
        return trace.result(reason, detail)

    url = URL(spec.url)
    host = url.raw_host or ""
    started = time.monotonic()
    try:
        ip, family = await resolve_host(
            host, ctx, preferred=spec.preferred_ip_protocol, fallback=spec.ip_protocol_fallback, port=url.port
        )
    except ResolveError as exc:
        phases["resolve"] = time.monotonic() - started
        trace.samples += unresolved_samples(phases["resolve"])
        return finish(FailureReason.DNS, str(exc))
    phases["resolve"] = time.monotonic() - started
    trace.samples += address_samples(ip, family, phases["resolve"])

    ssl_context: ssl.SSLContext | bool = False
    if url.scheme == "wss":
        try:
            ssl_context = tlsutil.client_context(spec.tls)
        except tlsutil.TLSSettingsError as exc:
            return finish(FailureReason.TLS, str(exc))
    headers = [(name, value) for name, values in spec.headers.items() for value in values]
    if spec.basic_auth is not None:
        pair = f"{spec.basic_auth.username}:{spec.basic_auth.password}".encode()
        headers.append(("Authorization", "Basic " + base64.b64encode(pair).decode("ascii")))

    tracing = aiohttp.TraceConfig()
    connect_started: list[float] = []

    async def on_start(*_: Any) -> None:
        connect_started.append(time.monotonic())

    async def on_end(*_: Any) -> None:
        if connect_started:
            phases["connect"] += time.monotonic() - connect_started[-1]

    tracing.on_connection_create_start.append(on_start)
    tracing.on_connection_create_end.append(on_end)
    connector = aiohttp.TCPConnector(resolver=_FixedResolver(ip, family), force_close=True, use_dns_cache=False)
    dial_started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector, trace_configs=[tracing]) as session:
        try:
            ws = await session.ws_connect(
                url,
                headers=headers,
                ssl=ssl_context,
                server_hostname=(spec.tls.server_name or ctx.hostname or host) if ssl_context else None,
                autoping=True,
            )
        except aiohttp.WSServerHandshakeError as exc:
            state["status"] = float(exc.status)
            phases["processing"] = max(0.0, time.monotonic() - dial_started - phases["connect"])
            return finish(FailureReason.HTTP_STATUS, f"upgrade refused: {exc.status} {exc.message}")
        except aiohttp.ClientConnectorCertificateError as exc:
            return finish(FailureReason.TLS, tlsutil.describe_tls_error(exc.certificate_error))
        except aiohttp.ClientConnectorSSLError as exc:
            return finish(FailureReason.TLS, tlsutil.describe_tls_error(exc.os_error))
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            return finish(FailureReason.CONNECT, f"{ip} port {url.port} closed the connection: {exc}")
        except aiohttp.ClientConnectorError as exc:
            return finish(FailureReason.CONNECT, f"cannot connect to {ip} port {url.port}: {os_reason(exc.os_error)}")
        except (aiohttp.ClientError, OSError) as exc:
            return finish(
                FailureReason.PROTOCOL, f"websocket upgrade failed: {first_line(str(exc)) or type(exc).__name__}"
            )
        phases["processing"] = max(0.0, time.monotonic() - dial_started - phases["connect"])
        state["status"], state["upgraded"] = 101.0, 1.0
        transfer_started = time.monotonic()
        try:
            async with ws:
                for number, step in enumerate(spec.dialogue, 1):
                    match = None
                    if step.expect is not None:
                        message = await ws.receive()
                        if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                            state["regex"] = 1.0
                            return finish(
                                FailureReason.ASSERTION, f"step {number}: connection closed ({message.type.name})"
                            )
                        data = (
                            message.data if isinstance(message.data, str) else message.data.decode("utf-8", "replace")
                        )
                        match = re.search(step.expect, data)
                        if match is None:
                            state["regex"] = 1.0
                            return finish(FailureReason.ASSERTION, f"step {number}: no match for {step.expect!r}")
                    if step.send:
                        text = step.send if isinstance(step.send, str) else step.send.decode("utf-8", "replace")
                        await ws.send_str(expand_template(text, match) if match is not None else text)
        except (aiohttp.ClientError, OSError) as exc:
            return finish(FailureReason.CONNECT, f"websocket failed: {first_line(str(exc)) or type(exc).__name__}")
        finally:
            phases["transfer"] = time.monotonic() - transfer_started
    return finish(None, "")
