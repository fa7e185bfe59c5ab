"""The probe function of each kind: one uniform signature ``(spec, ctx) -> ProbeResult``."""

from __future__ import annotations

from collections.abc import Mapping

from slaprobe.probes.dns import probe_dns
from slaprobe.probes.flow import probe_flow
from slaprobe.probes.http import probe_http
from slaprobe.probes.icmp import probe_icmp
from slaprobe.probes.result import ProbeFn
from slaprobe.probes.tcp import probe_tcp
from slaprobe.probes.tls import probe_tls

PROBERS: Mapping[str, ProbeFn] = {
    "http": probe_http,
    "tcp": probe_tcp,
    "tls": probe_tls,
    "dns": probe_dns,
    "icmp": probe_icmp,
    "flow": probe_flow,
}
