"""The probe function of each kind: one uniform signature ``(spec, ctx) -> ProbeResult``.

One entry per kind of ``slaprobe.kinds.KINDS`` (``tests/core/test_kinds.py`` holds the two
together); the flow's steps run with the functions of the kinds that may be steps.
"""

from __future__ import annotations

from collections.abc import Mapping

from slaprobe.kinds import STEP_KINDS
from slaprobe.probes.dns import probe_dns
from slaprobe.probes.flow import flow_prober
from slaprobe.probes.grpc import probe_grpc
from slaprobe.probes.http import probe_http
from slaprobe.probes.icmp import probe_icmp
from slaprobe.probes.result import ProbeFn
from slaprobe.probes.tcp import probe_tcp
from slaprobe.probes.tls import probe_tls
from slaprobe.probes.unix import probe_unix
from slaprobe.probes.websocket import probe_websocket

_CHECKS: Mapping[str, ProbeFn] = {
    "http": probe_http,
    "tcp": probe_tcp,
    "tls": probe_tls,
    "dns": probe_dns,
    "icmp": probe_icmp,
    "unix": probe_unix,
    "grpc": probe_grpc,
    "websocket": probe_websocket,
}

PROBERS: Mapping[str, ProbeFn] = {
    **_CHECKS,
    "flow": flow_prober({kind: _CHECKS[kind] for kind in STEP_KINDS}),
}
