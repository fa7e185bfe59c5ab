"""The grpc probe: one grpc.health.v1 ``Check`` call, as blackbox_exporter's grpc prober makes it.

The target's name is resolved (and guarded) like every other probe's; the channel goes to
exactly that address, with the name kept for TLS (SNI and the name verified, or
``server_name``) and as the ``:authority``. Success is a ``SERVING`` answer. Samples are
blackbox's: ``probe_grpc_duration_seconds{phase=resolve|check}``, ``probe_grpc_ssl``,
``probe_grpc_status_code`` and ``probe_grpc_healthcheck_response{serving_status}``.

The client is grpcio's asyncio API with grpcio-health-checking's generated stubs: the
reference implementation's C core, maintained by the gRPC project. It cannot skip
certificate verification, so ``insecure_skip_verify`` is refused for grpc at load.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from slaprobe import conventions as names
from slaprobe.probes.resolve import ResolveError, address_samples, resolve_host, unresolved_samples
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult, Sample
from slaprobe.probes.tcp import split_address
from slaprobe.specs import GrpcSpec, TLSConfig

SERVING_STATUSES = tuple(health_pb2.HealthCheckResponse.ServingStatus.keys())


def _credentials(tls: TLSConfig) -> grpc.ChannelCredentials:
    """Channel credentials of ``tls`` (CA bundle, client certificate)."""

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls.ca_file),
        private_key=read(tls.key_file),
        certificate_chain=read(tls.cert_file),
    )


def _reason(code: grpc.StatusCode, details: str) -> FailureReason:
    """The failure reason of a failed call."""
    text = details.lower()
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return FailureReason.TIMEOUT
    if code is grpc.StatusCode.UNAVAILABLE:
        if any(word in text for word in ("ssl", "tls", "handshake", "certificate")):
            return FailureReason.TLS
        if "failed parsing http/2" in text or "frame" in text:  # the peer speaks no HTTP/2
            return FailureReason.PROTOCOL
        return FailureReason.CONNECT
    if code in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        return FailureReason.PROTOCOL
    return FailureReason.ASSERTION  # NOT_FOUND (an unknown service), PERMISSION_DENIED, ...


async def probe_grpc(spec: GrpcSpec, ctx: ProbeContext) -> ProbeResult:
    """Ask the health service at ``spec.address`` about ``spec.service``; success is SERVING."""
    trace = ctx.trace
    host, port = split_address(spec.address)
    status_code = 0
    serving = ""
    used_tls = 0.0
    started = time.monotonic()
    try:
        ip, family = await resolve_host(
            host, ctx, preferred=spec.preferred_ip_protocol, fallback=spec.ip_protocol_fallback, port=port
        )
    except ResolveError as exc:
        trace.samples += unresolved_samples(time.monotonic() - started)
        trace.samples += _samples(time.monotonic() - started, 0.0, used_tls, status_code, serving)
        return trace.result(FailureReason.DNS, str(exc))
    resolved = time.monotonic() - started
    trace.samples += address_samples(ip, family, resolved)
    where = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    options: list[tuple[str, str | int]] = [
        ("grpc.default_authority", f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"),
        ("grpc.enable_retries", 0),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    check_started = time.monotonic()
    reason: FailureReason | None = None
    detail = ""
    try:
        if spec.tls is not None:
            name = spec.tls.server_name or ctx.hostname or host
            options.append(("grpc.ssl_target_name_override", name))
            # grpcio requires the :authority to match the name verified.
            options[0] = ("grpc.default_authority", f"{name}:{port}" if ":" not in name else f"[{name}]:{port}")
            try:
                credentials = _credentials(spec.tls)
            except OSError as exc:
                return _finish(ctx, resolved, 0.0, used_tls, status_code, serving, FailureReason.TLS, str(exc))
            channel = grpc.aio.secure_channel(f"ipv6:{where}" if ":" in ip else where, credentials, options)
        else:
            channel = grpc.aio.insecure_channel(f"ipv6:{where}" if ":" in ip else where, options)
        trace.log(f"health check of {spec.service or '(server)'} at {where}{' over TLS' if spec.tls else ''}")
        async with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            metadata = tuple((key.lower(), value) for key, values in spec.metadata.items() for value in values)
            left = max(0.05, ctx.timeout - trace.elapsed())
            try:
                response = await stub.Check(
                    health_pb2.HealthCheckRequest(service=spec.service),
                    metadata=metadata or None,
                    timeout=left,
                    wait_for_ready=False,
                )
            except grpc.aio.AioRpcError as exc:
                status_code = exc.code().value[0]
                reason = _reason(exc.code(), exc.details() or "")
                detail = f"{exc.code().name}: {(exc.details() or '').splitlines()[0] if exc.details() else ''}"
            else:
                used_tls = 1.0 if spec.tls is not None else 0.0
                serving = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                if serving != "SERVING":
                    reason, detail = FailureReason.ASSERTION, f"serving status {serving}"
    finally:
        check = time.monotonic() - check_started
    if reason is None:
        trace.log(f"{spec.service or 'server'} is SERVING")
    return _finish(ctx, resolved, check, used_tls, status_code, serving, reason, detail)


def _finish(
    ctx: ProbeContext,
    resolved: float,
    check: float,
    used_tls: float,
    status_code: int,
    serving: str,
    reason: FailureReason | None,
    detail: str,
) -> ProbeResult:
    ctx.trace.samples += _samples(resolved, check, used_tls, status_code, serving)
    if reason is not None:
        ctx.trace.log(f"probe failed ({reason}): {detail}")
    return ctx.trace.result(reason, detail)


def _samples(resolved: float, check: float, used_tls: float, status_code: int, serving: str) -> list[Sample]:
    out = [
        Sample(names.BB_GRPC_DURATION, resolved, (("phase", "resolve"),)),
        Sample(names.BB_GRPC_DURATION, check, (("phase", "check"),)),
        Sample(names.BB_GRPC_SSL, used_tls),
        Sample(names.BB_GRPC_STATUS, float(status_code)),
    ]
    out += [
        Sample(names.BB_GRPC_HEALTH, 1.0 if status == serving else 0.0, (("serving_status", status),))
        for status in SERVING_STATUSES
    ]
    return out
