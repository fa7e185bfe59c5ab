"""The tls probe: one handshake, then assertions on certificate expiry, protocol version and cipher.

Certificate facts are reported even when verification fails (blackbox reports none then).
"""

from __future__ import annotations

import re

from slaprobe.config import TlsExpect, TlsSpec
from slaprobe.probes.result import FailureReason, ProbeContext, ProbeResult
from slaprobe.probes.tcp import DialError, dial, make_result, start_tls
from slaprobe.probes.tlsutil import Handshake, check_min_days_left


def check_handshake(handshake: Handshake, expect: TlsExpect) -> list[str]:
    """What in ``handshake`` breaks ``expect`` (version, cipher), as failure details."""
    problems = []
    if expect.versions and handshake.version not in expect.versions:
        problems.append(f"negotiated {handshake.version}, expected one of {', '.join(expect.versions)}")
    if expect.cipher_regex is not None:
        pattern = re.compile(expect.cipher_regex)
        # Either name may be matched: the IANA one exported as a label, or OpenSSL's.
        if not (pattern.search(handshake.cipher) or pattern.search(handshake.openssl_cipher)):
            problems.append(f"cipher {handshake.cipher} does not match {expect.cipher_regex!r}")
    return problems


async def probe_tls(spec: TlsSpec, ctx: ProbeContext) -> ProbeResult:
    """Handshake with ``spec.address`` and check the certificate, protocol version and cipher."""
    conn = None
    try:
        conn = await dial(spec.address, ctx, preferred=spec.preferred_ip_protocol, fallback=spec.ip_protocol_fallback)
        handshake = await start_tls(conn, spec, ctx)
    except DialError as exc:
        return make_result(ctx, exc.reason, exc.detail, exc.cert)
    finally:
        if conn is not None:
            conn.close()
    failures = [(FailureReason.ASSERTION, problem) for problem in check_handshake(handshake, spec.expect)]
    expiring = check_min_days_left(handshake.cert, spec)
    if expiring is not None:
        failures.append((FailureReason.CERT_EXPIRY, expiring))
    if failures:
        # The first failure names the reason; the detail lists them all.
        return make_result(ctx, failures[0][0], "; ".join(detail for _, detail in failures), handshake.cert)
    return make_result(ctx, cert=handshake.cert)
