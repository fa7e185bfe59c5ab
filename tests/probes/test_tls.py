"""The tls probe against real loopback TLS servers: valid, expired, unknown CA, wrong host, mTLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from prometheus_client.parser import text_string_to_metric_families

from slaprobe import conventions as names
from slaprobe.config import TlsSpec
from slaprobe.exporter.runtime import Exporter, Sources
from slaprobe.probes.result import FailureReason, ForbiddenTargetError, ProbeContext, ProbeResult, ProbeTrace
from slaprobe.probes.runner import run_probe
from slaprobe.probes.tls import probe_tls
from tests.conftest import free_port
from tests.support.certs import Authority, CertFiles, make_authority
from tests.support.hosts import hosts


@contextlib.asynccontextmanager
async def serve(tls: ssl.SSLContext | None) -> AsyncIterator[int]:
    """A server on 127.0.0.1 (TLS if ``tls``) that holds each connection until the client leaves."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(hold, "127.0.0.1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def spec(port: int, host: str = "localhost", **fields: Any) -> TlsSpec:
    """A validated tls spec for ``host:port``."""
    return TlsSpec.model_validate({"address": f"{host}:{port}", **fields})


async def probe(tls: TlsSpec, timeout: float = 5.0, **fields: Any) -> ProbeResult:
    """Run the tls probe the way the scheduler does."""
    return await run_probe(probe_tls, tls, ProbeContext(timeout=timeout, trace=ProbeTrace(debug=True), **fields))


def sample_names(result: ProbeResult) -> set[str]:
    """The names of every sample in ``result``."""
    return {s.name for s in result.samples}


def label(result: ProbeResult, name: str, key: str) -> str:
    """The value of label ``key`` on the sample ``name``."""
    sample = next(s for s in result.samples if s.name == name)
    return dict(sample.labels)[key]


def server_context(cert: CertFiles, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A server context presenting ``cert``, capped at ``max_version``."""
    ctx = cert.server_context()
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


@pytest.fixture
def ca_file(authority: Authority) -> str:
    """The test CA as a ca_file setting."""
    return str(authority.path)


@pytest.fixture
def leaf(authority: Authority, tmp_path: Path) -> CertFiles:
    """A valid certificate for localhost from the test CA."""
    return authority.issue(tmp_path, "localhost", days=60)


# ---------------------------------------------------------------------------- valid


async def test_a_valid_certificate_succeeds_with_phases_cert_and_blackbox_samples(
    leaf: CertFiles, ca_file: str
) -> None:
    async with serve(leaf.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file))
    assert result.success, result.detail
    assert set(result.phases) == {"resolve", "connect", "tls"}
    cert = result.cert
    assert cert is not None and cert.verified
    assert cert.leaf_expiry == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert cert.subject == "CN=localhost"
    assert cert.issuer == "CN=slaprobe test CA"
    assert result.sample(names.BB_TLS_LEAF_EXPIRY) == cert.leaf_expiry
    assert result.sample(names.BB_SSL_EARLIEST_EXPIRY) == cert.earliest_expiry
    assert result.sample(names.BB_SSL_LAST_CHAIN_EXPIRY) == cert.leaf_expiry  # the CA outlives the leaf
    assert label(result, names.BB_TLS_VERSION, "version") == "TLS 1.3"
    assert label(result, names.BB_TLS_CIPHER, "cipher").startswith("TLS_")
    assert label(result, names.BB_SSL_LAST_CHAIN_INFO, "subjectalternative") == "localhost"
    assert label(result, names.BB_SSL_LAST_CHAIN_INFO, "fingerprint_sha256") == cert.fingerprint_sha256
    assert label(result, names.BB_SSL_LAST_CHAIN_INFO, "serialnumber") == cert.serial
    assert result.sample(names.BB_IP_PROTOCOL) == 4
    assert result.sample(names.BB_DNS_LOOKUP) == result.phases["resolve"]


async def test_server_name_sets_the_name_that_is_verified(authority: Authority, tmp_path: Path, ca_file: str) -> None:
    other = authority.issue(tmp_path, "other", hosts=("other.example",))
    async with serve(other.server_context()) as port:
        result = await probe(spec(port, host="127.0.0.1", ca_file=ca_file, server_name="other.example"))
    assert result.success, result.detail


async def test_the_hostname_override_of_the_context_is_used_for_sni(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    other = authority.issue(tmp_path, "other", hosts=("other.example",))
    async with serve(other.server_context()) as port:
        result = await probe(spec(port, host="127.0.0.1", ca_file=ca_file), hostname="other.example")
    assert result.success, result.detail


# ---------------------------------------------------------------------------- verification failures


async def test_an_expired_certificate_fails_with_tls_and_still_reports_it(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    expired = authority.issue(tmp_path, "expired", hosts=("localhost",), days=-2, not_before_days=-30)
    async with serve(expired.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file))
    assert result.reason is FailureReason.TLS
    assert "certificate has expired" in result.detail
    assert result.cert is not None and not result.cert.verified
    assert result.cert.leaf_expiry == pytest.approx(expired.not_after.timestamp(), abs=1)
    assert result.cert.leaf_expiry < time.time()
    assert result.sample(names.BB_SSL_EARLIEST_EXPIRY) == result.cert.earliest_expiry
    assert names.BB_SSL_LAST_CHAIN_INFO in sample_names(result)
    # No chain verified: no chain expiry at all, rather than blackbox's negative timestamp.
    assert names.BB_SSL_LAST_CHAIN_EXPIRY not in sample_names(result)
    assert result.cert.chain_expiry is None
    assert set(result.phases) == {"resolve", "connect", "tls"}


async def test_an_unknown_ca_fails_with_tls_and_still_reports_the_certificate(tmp_path: Path) -> None:
    stranger = make_authority(tmp_path, "stranger CA").issue(tmp_path, "localhost")
    async with serve(stranger.server_context()) as port:
        result = await probe(spec(port))  # the system store does not know the stranger
    assert result.reason is FailureReason.TLS
    assert "certificate verify failed" in result.detail
    assert result.cert is not None
    assert result.cert.issuer == "CN=stranger CA"


async def test_a_self_signed_certificate_fails_with_tls(tmp_path: Path) -> None:
    own = make_authority(tmp_path, "localhost")  # a CA certificate as its own server certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    key = tmp_path / "self.key"
    key.write_bytes(
        own.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server.load_cert_chain(own.path, key)
    async with serve(server) as port:
        result = await probe(spec(port))
    assert result.reason is FailureReason.TLS
    assert "self-signed" in result.detail
    assert result.cert is not None and result.cert.subject == result.cert.issuer == "CN=localhost"


async def test_a_certificate_for_another_host_fails_with_tls(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    other = authority.issue(tmp_path, "other", hosts=("other.example",))
    async with serve(other.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file))
    assert result.reason is FailureReason.TLS
    assert "hostname mismatch" in result.detail.lower()
    assert result.cert is not None and result.cert.subject == "CN=other"


async def test_insecure_skip_verify_accepts_an_unknown_ca_and_reports_no_verified_chain(tmp_path: Path) -> None:
    stranger = make_authority(tmp_path, "stranger CA").issue(tmp_path, "localhost")
    async with serve(stranger.server_context()) as port:
        result = await probe(spec(port, insecure_skip_verify=True))
    assert result.success, result.detail
    assert result.cert is not None and not result.cert.verified
    assert names.BB_SSL_LAST_CHAIN_EXPIRY not in sample_names(result)
    assert result.cert.chain_expiry is None


async def test_a_plain_text_server_fails_with_tls() -> None:
    async def talk_plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(talk_plain, "127.0.0.1", 0)
    try:
        result = await probe(spec(server.sockets[0].getsockname()[1]))
    finally:
        server.close()
        await server.wait_closed()
    assert result.reason is FailureReason.TLS
    assert "wrong version number" in result.detail


async def test_reading_the_certificate_after_a_failure_never_turns_it_into_a_timeout(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    expired = authority.issue(tmp_path, "expired", hosts=("localhost",), days=-2, not_before_days=-30)
    connections = 0

    async def bad_then_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            if connections == 1:
                await writer.start_tls(expired.server_context())
            await reader.read()  # the second connection: never handshake
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(bad_then_silent, "127.0.0.1", 0)
    try:
        result = await probe(spec(server.sockets[0].getsockname()[1], ca_file=ca_file), timeout=0.6)
    finally:
        server.close()
        await server.wait_closed()
    assert result.reason is FailureReason.TLS
    assert result.cert is None
    assert result.duration < 0.6
    assert connections == 2


# ---------------------------------------------------------------------------- assertions


async def test_a_version_outside_the_expected_ones_fails_with_assertion(leaf: CertFiles, ca_file: str) -> None:
    async with serve(server_context(leaf, max_version=ssl.TLSVersion.TLSv1_2)) as port:
        result = await probe(spec(port, ca_file=ca_file, expect={"versions": ["TLS 1.3"]}))
        accepted = await probe(spec(port, ca_file=ca_file, expect={"versions": ["TLS 1.2", "TLS 1.3"]}))
    assert result.reason is FailureReason.ASSERTION
    assert result.detail == "negotiated TLS 1.2, expected one of TLS 1.3"
    assert result.cert is not None and result.cert.verified
    assert accepted.success, accepted.detail
    assert label(accepted, names.BB_TLS_VERSION, "version") == "TLS 1.2"


async def test_a_legacy_tls10_endpoint_is_reachable_when_min_version_asks_for_it(leaf: CertFiles, ca_file: str) -> None:
    if not ssl.HAS_TLSv1:
        pytest.skip("this OpenSSL has no TLS 1.0")
    server = leaf.server_context()
    server.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 is the point of this test
        server.minimum_version = server.maximum_version = ssl.TLSVersion.TLSv1
    async with serve(server) as port:
        refused = await probe(spec(port, ca_file=ca_file))
        legacy = await probe(spec(port, ca_file=ca_file, min_version="TLS10", expect={"versions": ["TLS 1.0"]}))
    assert refused.reason is FailureReason.TLS
    assert legacy.success, legacy.detail
    assert label(legacy, names.BB_TLS_CIPHER, "cipher").startswith("TLS_ECDHE_ECDSA_WITH_")


async def test_tls12_ciphers_are_labelled_with_their_iana_names(leaf: CertFiles, ca_file: str) -> None:
    async with serve(server_context(leaf, max_version=ssl.TLSVersion.TLSv1_2)) as port:
        result = await probe(spec(port, ca_file=ca_file, expect={"cipher_regex": "^TLS_ECDHE_ECDSA_WITH_AES_"}))
        by_openssl_name = await probe(spec(port, ca_file=ca_file, expect={"cipher_regex": "^ECDHE-ECDSA-AES"}))
    assert result.success, result.detail
    assert by_openssl_name.success, by_openssl_name.detail
    assert label(result, names.BB_TLS_CIPHER, "cipher").startswith("TLS_ECDHE_ECDSA_WITH_AES_")


async def test_a_cipher_not_matching_cipher_regex_fails_with_assertion(leaf: CertFiles, ca_file: str) -> None:
    async with serve(leaf.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file, expect={"cipher_regex": "^TLS_RC4_"}))
    assert result.reason is FailureReason.ASSERTION
    assert "does not match '^TLS_RC4_'" in result.detail


async def test_a_certificate_near_expiry_fails_with_cert_expiry(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    soon = authority.issue(tmp_path, "soon", hosts=("localhost",), days=5)
    async with serve(soon.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file, min_days_left=14))
        relaxed = await probe(spec(port, ca_file=ca_file, min_days_left=3))
    assert result.reason is FailureReason.CERT_EXPIRY
    assert "expires in 5.0 days (min_days_left 14)" in result.detail
    assert result.cert is not None and result.cert.verified
    assert relaxed.success, relaxed.detail


async def test_an_intermediate_near_expiry_fails_min_days_left_though_the_leaf_has_long_to_go(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    intermediate = authority.intermediate(tmp_path, "shop intermediate", days=2)
    leaf = intermediate.issue(tmp_path, "localhost", days=20)
    async with serve(leaf.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file, min_days_left=7))
        relaxed = await probe(spec(port, ca_file=ca_file, min_days_left=1))
    assert result.reason is FailureReason.CERT_EXPIRY
    assert (
        "chain certificate CN=shop intermediate (of CN=localhost) expires in 2.0 days (min_days_left 7)"
        in result.detail
    )
    assert relaxed.success, relaxed.detail
    cert = relaxed.cert
    intermediate_expiry = intermediate.cert.not_valid_after_utc.timestamp()
    assert cert is not None and cert.leaf_expiry == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert cert.earliest_expiry == cert.chain_expiry == intermediate_expiry
    assert relaxed.sample(names.BB_SSL_EARLIEST_EXPIRY) == intermediate_expiry
    assert relaxed.sample(names.BB_SSL_LAST_CHAIN_EXPIRY) == intermediate_expiry
    assert relaxed.sample(names.BB_TLS_LEAF_EXPIRY) == cert.leaf_expiry


async def test_the_earliest_chain_expiry_is_exported_beside_the_leafs_by_a_scheduled_probe(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    intermediate = authority.intermediate(tmp_path, "shop intermediate", days=2)
    leaf = intermediate.issue(tmp_path, "localhost", days=20)
    async with serve(leaf.server_context()) as port:
        config = tmp_path / "slaprobe.yaml"
        config.write_text(
            "version: v1\nglobal: {interval: 1s, timeout: 900ms}\nservices:\n  shop:\n    probes:\n"
            f"      - {{name: cert, tls: {{address: '127.0.0.1:{port}', ca_file: '{ca_file}', server_name: localhost}}}}\n"
        )
        exporter = Exporter(Sources(config=str(config)))
        assert exporter.reload().successful, exporter.status.issues
        task = asyncio.create_task(exporter.start_scheduler().run())
        series = exporter.store.get(("shop", "cert"))
        assert series is not None
        deadline = time.monotonic() + 10
        while series.last is None:
            assert time.monotonic() < deadline, "the probe never ran"
            await asyncio.sleep(0.01)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    exported = {
        sample.name: sample.value
        for family in text_string_to_metric_families(exporter.store.render())
        for sample in family.samples
    }
    assert exported[names.TLS_CERT_EXPIRY] == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert exported[names.TLS_CHAIN_EARLIEST_EXPIRY] == intermediate.cert.not_valid_after_utc.timestamp()


async def test_every_broken_expectation_is_in_the_detail_and_the_first_is_the_reason(
    authority: Authority, tmp_path: Path, ca_file: str
) -> None:
    soon = authority.issue(tmp_path, "soon", hosts=("localhost",), days=5)
    async with serve(soon.server_context()) as port:
        result = await probe(spec(port, ca_file=ca_file, min_days_left=14, expect={"versions": ["TLS 1.2"]}))
    assert result.reason is FailureReason.ASSERTION
    assert "negotiated TLS 1.3" in result.detail
    assert "expires in 5.0 days" in result.detail


# ---------------------------------------------------------------------------- mutual TLS


async def test_mutual_tls_succeeds_with_a_client_certificate_and_fails_without(
    authority: Authority, leaf: CertFiles, tmp_path: Path, ca_file: str
) -> None:
    client = authority.issue(tmp_path, "client", hosts=("probe.test",), client=True)
    server = server_context(leaf, max_version=ssl.TLSVersion.TLSv1_2)  # 1.2: rejection is in the handshake
    server.verify_mode = ssl.CERT_REQUIRED
    server.load_verify_locations(authority.path)
    async with serve(server) as port:
        with_cert = await probe(spec(port, ca_file=ca_file, cert_file=str(client.cert), key_file=str(client.key)))
        without = await probe(spec(port, ca_file=ca_file))
    assert with_cert.success, with_cert.detail
    assert without.reason is FailureReason.TLS
    assert without.cert is None  # the server sent its certificate, but the handshake never finished


async def test_a_missing_ca_file_fails_with_tls_naming_the_file(leaf: CertFiles, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pem"
    async with serve(leaf.server_context()) as port:
        result = await probe(spec(port, ca_file=str(missing)))
    assert result.reason is FailureReason.TLS
    assert str(missing) in result.detail


# ---------------------------------------------------------------------------- dialling


async def test_a_closed_port_fails_with_connect() -> None:
    result = await probe(spec(free_port()))
    assert result.reason is FailureReason.CONNECT
    assert "refused" in result.detail
    assert "tls" not in result.phases


async def test_an_unresolvable_name_fails_with_dns() -> None:
    result = await probe(spec(443, host="no-such-host.invalid"), lookup=hosts())
    assert result.reason is FailureReason.DNS


async def test_a_guard_refusal_is_forbidden_and_nothing_is_dialled(leaf: CertFiles) -> None:
    dialled: list[str] = []

    def guard(host: str, ip: str) -> None:
        dialled.append(ip)
        raise ForbiddenTargetError(f"{host} ({ip}) is not in the allow-list")

    async with serve(leaf.server_context()) as port:
        result = await probe(spec(port), guard=guard)
    assert result.reason is FailureReason.FORBIDDEN
    assert result.detail == "localhost (127.0.0.1) is not in the allow-list"
    assert dialled == ["127.0.0.1"]
    assert "connect" not in result.phases


async def test_a_peer_that_never_answers_the_handshake_times_out_with_its_phases() -> None:
    async with serve(None) as port:
        result = await probe(spec(port), timeout=0.3)
    assert result.reason is FailureReason.TIMEOUT
    assert {"resolve", "connect", "tls"} <= set(result.phases)
    assert result.phases["tls"] > 0.2
