"""The unix probe: connect to a unix stream socket (TLS optional) and run the tcp probe's dialogue.

blackbox_exporter's ``unix`` prober: the same ``query_response`` steps as tcp (``expect``,
``expect_bytes``, ``send``, ``starttls``, ``labels``) over a socket path instead of host:port.
No name is resolved, so there are no resolve samples; TLS verifies ``tls_config.server_name``
(a unix socket has no host name to verify), or nothing with ``insecure_skip_verify``.
"""

from __future__ import annotations

import asyncio
import errno
import time

from slaprobe import conventions as names
from slaprobe.config import TLSConfig
from slaprobe.probes.reasons import os_reason
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult
from slaprobe.probes.tcp import Connection, DialError, make_result, set_sample, start_tls, talk
from slaprobe.probes.tlsutil import check_min_days_left
from slaprobe.specs import UnixSpec

_CHUNK = 64 * 1024


async def dial_unix(path: str, ctx: ProbeContext) -> Connection:
    """Connect to the socket at ``path`` (phase ``connect``); raises ``DialError``."""
    ctx.trace.log(f"connecting to unix socket {path}")
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_unix_connection(path, limit=_CHUNK)
    except OSError as exc:
        reason = FailureReason.PERMISSION if exc.errno in (errno.EACCES, errno.EPERM) else FailureReason.CONNECT
        raise DialError(reason, f"connect to unix socket {path}: {os_reason(exc)}") from None
    finally:
        ctx.trace.add_phase("connect", time.monotonic() - started)
    ctx.trace.log(f"connected to unix socket {path}")
    return Connection("", path, 0, reader, writer)


async def probe_unix(spec: UnixSpec, ctx: ProbeContext) -> ProbeResult:
    """Connect to ``spec.path`` (over TLS if ``spec.tls``) and run the expect/send dialogue."""
    set_sample(ctx.trace, names.BB_FAILED_DUE_TO_REGEX, 0)
    set_sample(ctx.trace, names.BB_FAILED_DUE_TO_BYTES, 0)
    uses_starttls = any(step.starttls for step in spec.dialogue)
    tls = spec.tls if spec.tls is not None else TLSConfig()
    conn = None
    handshake = None
    try:
        if (spec.tls is not None or uses_starttls) and not (tls.server_name or tls.insecure_skip_verify):
            raise DialError(
                FailureReason.TLS, "TLS over a unix socket needs tls_config.server_name or insecure_skip_verify"
            )
        conn = await dial_unix(spec.path, ctx)
        if spec.tls is not None and not uses_starttls:
            handshake = await start_tls(conn, spec.tls, ctx, reread_on_failure=False)
        handshake = await talk(conn, spec.dialogue, tls, ctx) or handshake
    except DialError as exc:
        return make_result(ctx, exc.reason, exc.detail, exc.cert or (handshake.cert if handshake else None))
    finally:
        if conn is not None:
            conn.close()
    cert = handshake.cert if handshake is not None else None
    expiring = check_min_days_left(cert, tls) if handshake is not None else None
    if expiring is not None:
        return make_result(ctx, FailureReason.CERT_EXPIRY, expiring, cert)
    return make_result(ctx, cert=cert)
