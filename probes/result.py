"""The probe contract: what a probe gets (``ProbeContext``) and returns (``ProbeResult``)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FailureReason(StrEnum):
    """Why a probe failed; a closed set, exported as the ``reason`` label."""

    DNS = "dns"  # the target's name did not resolve
    CONNECT = "connect"  # TCP connect refused, unreachable or reset
    TLS = "tls"  # handshake or certificate verification failed
    TIMEOUT = "timeout"  # the probe's deadline passed
    HTTP_STATUS = "http_status"  # status code not in the accepted list
    ASSERTION = "assertion"  # a body/header/JSON/dialogue/answer assertion failed
    SLOW = "slow"  # expect.max_duration exceeded
    CERT_EXPIRY = "cert_expiry"  # certificate expires within min_days_left
    BODY_LIMIT = "body_limit"  # response body above body_size_limit
    REDIRECTS = "redirects"  # too many redirects
    RCODE = "rcode"  # DNS response code not accepted (NXDOMAIN, SERVFAIL, ...)
    LOSS = "loss"  # ICMP loss above max_loss_ratio
    PROTOCOL = "protocol"  # the peer spoke something unparseable
    FORBIDDEN = "forbidden"  # target not allowed (SSRF guard)
    EXTRACT = "extract"  # a flow variable could not be extracted or was undefined
    MISSED_HEARTBEAT = "missed_heartbeat"  # no ping within a heartbeat's every + grace
    REPORTED_DOWN = "reported_down"  # a heartbeat's pinger reported status=down
    PERMISSION = "permission"  # slaprobe lacks a privilege the probe needs (ICMP: CAP_NET_RAW or ping_group_range)
    INTERNAL = "internal"  # a bug in slaprobe; logged with a traceback


@dataclass(frozen=True, slots=True)
class Sample:
    """One extra gauge sample, named as blackbox_exporter names it (``probe_http_status_code``)."""

    name: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What the peer's certificates say, reported whether or not they verified."""

    leaf_expiry: float  # unix seconds, notAfter of the leaf
    earliest_expiry: float  # unix seconds, soonest notAfter in the presented chain
    subject: str = ""
    issuer: str = ""
    serial: str = ""
    fingerprint_sha256: str = ""
    verified: bool = False
    earliest_subject: str = ""  # subject of the presented certificate that expires first
    chain_expiry: float | None = None  # unix seconds, soonest notAfter of the verified chain; None unverified


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one step of a flow probe."""

    name: str
    success: bool
    duration: float  # seconds
    reason: FailureReason | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe run; a failure is a value, never an exception."""

    success: bool
    duration: float  # seconds, whole probe
    reason: FailureReason | None = None  # None iff success
    detail: str = ""  # one line for humans: what failed and how
    phases: Mapping[str, float] = field(default_factory=dict)  # seconds by phase name
    samples: tuple[Sample, ...] = ()  # blackbox-compatible gauges for /probe
    cert: CertInfo | None = None
    steps: tuple[StepResult, ...] = ()  # flow probes only

    def sample(self, name: str, default: float | None = None) -> float | None:
        """The value of the first sample called ``name``."""
        return next((s.value for s in self.samples if s.name == name), default)


class ProbeTrace:
    """What a probe learned so far; survives a timeout so partial phases are kept.

    Probes record phases and log lines here as they go; the runner turns the trace
    into a result when the deadline cancels the probe.
    """

    __slots__ = ("debug", "lines", "phases", "samples", "started", "steps")

    def __init__(self, *, debug: bool = False) -> None:
        self.started = time.monotonic()
        self.phases: dict[str, float] = {}
        self.samples: list[Sample] = []
        self.steps: list[StepResult] = []  # flow steps finished so far
        self.lines: list[str] = []
        self.debug = debug

    def log(self, message: str) -> None:
        """Add a line to the probe log (kept only when debugging)."""
        if self.debug:
            self.lines.append(f"+{time.monotonic() - self.started:.3f}s {message}")

    def add_phase(self, phase: str, seconds: float) -> None:
        """Add ``seconds`` to ``phase`` (phases sum over redirects)."""
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def elapsed(self) -> float:
        """Seconds since the probe started."""
        return time.monotonic() - self.started

    def result(self, reason: FailureReason | None, detail: str = "", *, cert: CertInfo | None = None) -> ProbeResult:
        """The probe's result from what it learned so far: failed with ``reason``, or a success when None."""
        return ProbeResult(
            success=reason is None,
            duration=self.elapsed(),
            reason=reason,
            detail=detail,
            phases=dict(self.phases),
            samples=tuple(self.samples),
            cert=cert,
            steps=tuple(self.steps),
        )


class ForbiddenTargetError(Exception):
    """The target (or an address it resolved to) is outside the allow-list."""


# Decides whether a (hostname, ip) may be dialled; raises ForbiddenTargetError if not.
AddressGuard = Callable[[str, str], None]


class DialGuard:
    """An ``AddressGuard`` that also judges the port: ``resolve_host`` calls ``check`` with
    the port it is about to dial (``/probe``'s guard checks host *and* port)."""

    def __call__(self, hostname: str, ip: str) -> None:
        self.check(hostname, ip, None)

    def check(self, hostname: str, ip: str, port: int | None) -> None:
        """Raise ForbiddenTargetError unless ``ip`` may be dialled at ``port`` (None: no port)."""
        raise NotImplementedError


# The addresses of a host name in one family (socket.AF_INET or AF_INET6), best first;
# raises OSError (socket.gaierror) when the name has none. Tests answer from a table with it.
Lookup = Callable[[str, int], Awaitable[list[str]]]


@dataclass(slots=True)
class ProbeContext:
    """Everything a probe needs besides its spec; network seams are fields with defaults."""

    timeout: float  # seconds the caller allows (it enforces them with asyncio.timeout)
    trace: ProbeTrace = field(default_factory=ProbeTrace)
    guard: AddressGuard | None = None  # None: every address may be dialled
    hostname: str | None = None  # Host header / SNI override (blackbox's hostname=)
    extras: dict[str, Any] = field(default_factory=dict)  # kind-specific seams (e.g. a session)
    want_samples: bool = True  # False: the caller drops blackbox's samples, so they need not be built
    lookup: Lookup | None = None  # name resolution; None: the system resolver (getaddrinfo)
    secrets: frozenset[str] = frozenset()  # ${env:}/${file:} values: a header holding one stays with its host


ProbeFn = Callable[[Any, ProbeContext], Awaitable[ProbeResult]]
