"""The tcp probe: connect (TLS from the start, or later by STARTTLS) and run an expect/send dialogue.

Also home of the dialling helpers the tls probe shares: resolve under the guard, connect,
upgrade to TLS, each timed as a phase in ``ctx.trace``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import time
from dataclasses import dataclass

from slaprobe import conventions as names
from slaprobe.config import TcpSpec, TcpStep, TLSConfig
from slaprobe.probes.reasons import os_reason
from slaprobe.probes.resolve import ResolveError, ip_hash, resolve_host
from slaprobe.probes.result import CertInfo, FailureReason, ProbeContext, ProbeResult, ProbeTrace, Sample
from slaprobe.probes.tlsutil import (
    Handshake,
    TLSSettingsError,
    check_min_days_left,
    client_context,
    describe_handshake,
    describe_tls_error,
    handshake_unverified,
    server_hostname,
)

MAX_STEP_BYTES = 1 << 20  # bytes read while waiting for one step's expect, at most
_CHUNK = 64 * 1024
_LOGGED_LINE_CHARS = 120

# Go's regexp.Expand template references: $$, ${name}, $name (name: [A-Za-z0-9_]+).
_TEMPLATE_REF = re.compile(r"\$(?:(\$)|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


class DialError(Exception):
    """A fault of the target met while dialling or talking; the probe returns it as a result."""

    def __init__(self, reason: FailureReason, detail: str, cert: CertInfo | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.cert = cert


class _LineTooLongError(Exception):
    pass


@dataclass(slots=True)
class Connection:
    """An open connection to the one IP that was dialled (plain TCP, or TLS after ``start_tls``)."""

    host: str
    ip: str
    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        """Close without waiting: a TLS peer that never answers close_notify must not hold us."""
        if self.writer.get_extra_info("ssl_object") is not None:
            self.writer.transport.abort()
        else:
            self.writer.close()


# ---------------------------------------------------------------------------- shared helpers


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as (host without brackets, port)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def set_sample(trace: ProbeTrace, name: str, value: float) -> None:
    """Set the unlabelled sample ``name`` in ``trace`` (replacing an earlier value)."""
    for index, sample in enumerate(trace.samples):
        if sample.name == name and not sample.labels:
            trace.samples[index] = Sample(name, value)
            return
    trace.samples.append(Sample(name, value))


def make_result(
    ctx: ProbeContext,
    reason: FailureReason | None = None,
    detail: str = "",
    cert: CertInfo | None = None,
) -> ProbeResult:
    """The result of the probe so far: phases and samples from ``ctx.trace``; failed if ``reason``."""
    if reason is not None:
        ctx.trace.log(f"probe failed ({reason}): {detail}")
    return ctx.trace.result(reason, detail, cert=cert)


async def dial(
    address: str, ctx: ProbeContext, *, preferred: str, fallback: bool, source: str | None = None
) -> Connection:
    """Resolve ``address`` (the guard checks the IP dialled), connect (from ``source`` if given),
    record phases and samples.

    Raises ``DialError`` (DNS, CONNECT); ``ForbiddenTargetError`` propagates to the runner.
    """
    host, port = split_address(address)
    try:
        ip, family = await resolve_host(host, ctx, preferred=preferred, fallback=fallback, port=port)
    except ResolveError as exc:
        set_sample(ctx.trace, names.BB_IP_PROTOCOL, 0)  # as blackbox: its gauges show 0
        set_sample(ctx.trace, names.BB_IP_ADDR_HASH, 0)
        raise DialError(FailureReason.DNS, str(exc)) from None
    finally:
        set_sample(ctx.trace, names.BB_DNS_LOOKUP, ctx.trace.phases.get("resolve", 0.0))
    set_sample(ctx.trace, names.BB_IP_PROTOCOL, 6 if family == socket.AF_INET6 else 4)
    set_sample(ctx.trace, names.BB_IP_ADDR_HASH, ip_hash(ip))
    where = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    ctx.trace.log(f"connecting to {where}")
    started = time.monotonic()
    try:
        local = (source, 0) if source else None
        reader, writer = await asyncio.open_connection(ip, port, local_addr=local, limit=_CHUNK)
    except OSError as exc:
        raise DialError(FailureReason.CONNECT, f"connect to {where}: {os_reason(exc)}") from None
    finally:
        ctx.trace.add_phase("connect", time.monotonic() - started)
    ctx.trace.log(f"connected to {where}")
    return Connection(host, ip, port, reader, writer)


async def start_tls(
    conn: Connection,
    cfg: TLSConfig,
    ctx: ProbeContext,
    *,
    reread_on_failure: bool = True,
) -> Handshake:
    """Upgrade ``conn`` to TLS under ``cfg`` (phase ``tls``) and add the TLS samples to the trace.

    On failure raises ``DialError(TLS)``. If verification failed and ``reread_on_failure``,
    a second, unverified handshake on a new connection reads the certificate first, so
    the failure still carries the certificate facts and samples.
    """
    name = server_hostname(cfg, conn.host, ctx.hostname)
    try:
        context = client_context(cfg)
    except TLSSettingsError as exc:
        raise DialError(FailureReason.TLS, str(exc)) from None
    started = time.monotonic()
    failure: OSError | EOFError | None = None
    try:
        await conn.writer.start_tls(context, server_hostname=name or None)
    except (OSError, EOFError) as exc:  # ssl.SSLError is an OSError
        failure = exc
    finally:
        ctx.trace.add_phase("tls", time.monotonic() - started)
    if failure is not None:
        detail = describe_tls_error(failure)
        ctx.trace.log(f"TLS handshake with {name} failed: {detail}")
        cert = None
        if reread_on_failure and isinstance(failure, ssl.SSLCertVerificationError):
            cert = await _read_unverified(conn, cfg, ctx, name)
        raise DialError(FailureReason.TLS, detail, cert)
    ssl_object = conn.writer.get_extra_info("ssl_object")
    handshake = describe_handshake(ssl_object, verified=not cfg.insecure_skip_verify)
    ctx.trace.samples.extend(handshake.samples)
    ctx.trace.log(f"TLS handshake done: {handshake.version}, {handshake.cipher}{_cert_summary(handshake.cert)}")
    return handshake


async def _read_unverified(conn: Connection, cfg: TLSConfig, ctx: ProbeContext, name: str) -> CertInfo | None:
    # Half of what is left of the deadline: the failure we already have must not become a timeout.
    budget = (ctx.timeout - ctx.trace.elapsed()) / 2
    second = await handshake_unverified(conn.ip, conn.port, cfg, server_name=name, timeout=budget)
    if second is None:
        ctx.trace.log("could not read the certificate without verification either")
        return None
    ctx.trace.samples.extend(second.samples)
    ctx.trace.log(f"read the unverified certificate{_cert_summary(second.cert)}")
    return second.cert


def _cert_summary(cert: CertInfo | None) -> str:
    if cert is None:
        return ""
    expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cert.leaf_expiry))
    return f"; certificate {cert.subject} issued by {cert.issuer}, expires {expiry}"


# ---------------------------------------------------------------------------- dialogue


def expand_template(template: str, match: re.Match[str]) -> str:
    """``template`` with ``$1``/``${1}``/``${name}`` replaced by ``match``'s groups, as Go's Expand.

    Unknown or unmatched groups become empty, ``$$`` is a literal ``$``, and a ``$``
    that starts no reference stays as it is.
    """

    def substitute(ref: re.Match[str]) -> str:
        if ref.group(1):
            return "$"
        key = ref.group(2) or ref.group(3)
        try:
            value = match.group(int(key) if key.isdigit() else key)
        except (IndexError, ValueError):
            return ""
        return value or ""

    return _TEMPLATE_REF.sub(substitute, template)


class _Lines:
    """Lines from a stream; memory stays within the caller's byte limit plus one chunk."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self._eof = False

    async def readline(self, limit: int) -> bytes | None:
        """The next line without its newline (the last may lack one); None at end of stream."""
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end > limit or (end < 0 and len(self._buffer) > limit):
                raise _LineTooLongError
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            if self._eof:
                if not self._buffer:
                    return None
                line = bytes(self._buffer)
                self._buffer.clear()
                self._scanned = 0
                return line
            chunk = await self._reader.read(_CHUNK)
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    async def read_exactly(self, size: int) -> bytes:
        """Up to ``size`` bytes: those buffered first, then at most one read (as blackbox reads)."""
        if not self._buffer and not self._eof:
            chunk = await self._reader.read(size)
            if not chunk:
                self._eof = True
            self._buffer += chunk
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._scanned = 0
        return data

    def discard(self) -> int:
        """Drop buffered bytes (before STARTTLS: plaintext sent ahead of the handshake)."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return dropped


def _io_failure(exc: OSError, what: str) -> DialError:
    if isinstance(exc, ssl.SSLError):
        return DialError(FailureReason.TLS, f"{what}: {describe_tls_error(exc)}")
    return DialError(FailureReason.CONNECT, f"{what}: {os_reason(exc)}")


async def _expect(lines: _Lines, pattern: re.Pattern[str], ctx: ProbeContext, number: int) -> re.Match[str]:
    budget = MAX_STEP_BYTES
    while budget > 0:
        try:
            line = await lines.readline(budget)
        except _LineTooLongError:
            if budget < MAX_STEP_BYTES:  # earlier lines of this step used up the limit
                break
            raise DialError(
                FailureReason.PROTOCOL,
                f"step {number}: peer sent more than {MAX_STEP_BYTES} bytes without a newline",
            ) from None
        except OSError as exc:
            raise _io_failure(exc, f"step {number}: reading") from None
        if line is None:
            set_sample(ctx.trace, names.BB_FAILED_DUE_TO_REGEX, 1)
            raise DialError(
                FailureReason.ASSERTION,
                f"step {number}: connection closed before a line matched {pattern.pattern!r}",
            )
        budget -= len(line) + 1
        # surrogateescape: any bytes survive the round trip into ${1} and back out.
        text = line.decode("utf-8", "surrogateescape").removesuffix("\r")
        ctx.trace.log(f"step {number}: read {text[:_LOGGED_LINE_CHARS]!r}")
        found = pattern.search(text)
        if found is not None:
            ctx.trace.log(f"step {number}: matched {pattern.pattern!r}")
            return found
    set_sample(ctx.trace, names.BB_FAILED_DUE_TO_REGEX, 1)
    raise DialError(
        FailureReason.ASSERTION,
        f"step {number}: no line matched {pattern.pattern!r} in {MAX_STEP_BYTES} bytes",
    )


async def _expect_bytes(lines: _Lines, expected: bytes, ctx: ProbeContext, number: int) -> None:
    """The next bytes must be ``expected`` exactly (blackbox's ``expect_bytes``)."""
    try:
        data = await lines.read_exactly(len(expected))
    except OSError as exc:
        raise _io_failure(exc, f"step {number}: reading") from None
    if len(data) < len(expected):
        raise DialError(FailureReason.ASSERTION, f"step {number}: read {len(data)} bytes, {len(expected)} expected")
    if data != expected:
        set_sample(ctx.trace, names.BB_FAILED_DUE_TO_BYTES, 1)
        raise DialError(FailureReason.ASSERTION, f"step {number}: read {data[:32]!r}, not {expected[:32]!r}")
    ctx.trace.log(f"step {number}: read the {len(expected)} expected bytes")


def _expect_info(ctx: ProbeContext, labels: dict[str, str], match: re.Match[str]) -> None:
    """``probe_expect_info`` with the step's labels, their values expanded from the match."""
    ctx.trace.samples.append(
        Sample(names.BB_EXPECT_INFO, 1.0, tuple((name, expand_template(v, match)) for name, v in labels.items()))
    )


async def talk(conn: Connection, steps: list[TcpStep], tls: TLSConfig, ctx: ProbeContext) -> Handshake | None:
    """Run the dialogue; returns the STARTTLS handshake if one happened."""
    lines = _Lines(conn.reader)
    match: re.Match[str] | None = None
    handshake = None
    for number, step in enumerate(steps, 1):
        if step.expect is not None:
            match = await _expect(lines, re.compile(step.expect), ctx, number)
            if step.labels:
                _expect_info(ctx, step.labels, match)
        if step.expect_bytes:
            await _expect_bytes(lines, step.expect_bytes, ctx, number)
        if step.send:
            if isinstance(step.send, bytes):  # binary: sent as it is (with blackbox's newline)
                data = step.send + b"\n"
            else:
                text = expand_template(step.send, match) if match is not None else step.send
                data = (text + "\n").encode("utf-8", "surrogateescape")
            try:
                conn.writer.write(data)
                await conn.writer.drain()
            except OSError as exc:
                raise _io_failure(exc, f"step {number}: sending") from None
            ctx.trace.log(f"step {number}: sent {len(data)} bytes")  # never the payload: it may hold secrets
        if step.starttls:
            dropped = lines.discard()
            if dropped:
                ctx.trace.log(f"step {number}: dropped {dropped} bytes received before STARTTLS")
            handshake = await start_tls(conn, tls, ctx, reread_on_failure=False)
    return handshake


async def probe_tcp(spec: TcpSpec, ctx: ProbeContext) -> ProbeResult:
    """Connect to ``spec.address`` (over TLS if ``spec.tls``) and run the expect/send dialogue.

    With a ``starttls`` step in the dialogue, ``spec.tls`` configures that upgrade and the
    connection starts in plain text (blackbox's ``tls: false`` plus ``tls_config``).
    """
    set_sample(ctx.trace, names.BB_FAILED_DUE_TO_REGEX, 0)
    set_sample(ctx.trace, names.BB_FAILED_DUE_TO_BYTES, 0)
    uses_starttls = any(step.starttls for step in spec.dialogue)
    tls = spec.tls if spec.tls is not None else TLSConfig()
    conn = None
    handshake = None
    try:
        conn = await dial(
            spec.address,
            ctx,
            preferred=spec.preferred_ip_protocol,
            fallback=spec.ip_protocol_fallback,
            source=spec.source_ip_address,
        )
        if spec.tls is not None and not uses_starttls:
            handshake = await start_tls(conn, spec.tls, ctx)
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
