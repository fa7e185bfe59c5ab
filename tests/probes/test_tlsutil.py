"""TLS helpers: cached client contexts, certificate facts, blackbox samples, the unverified re-read."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from slaprobe import conventions as names
from slaprobe.config import TLSConfig
from slaprobe.probes.result import CertInfo
from slaprobe.probes.tlsutil import (
    TLSSettingsError,
    cert_info,
    check_min_days_left,
    client_context,
    describe_handshake,
    describe_tls_error,
    handshake_unverified,
    serial_hex,
    server_hostname,
    tls_samples,
    verified_chain_expiry,
)
from tests.conftest import free_port
from tests.support.certs import Authority, CertFiles, make_authority

DAY = 86400.0


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


@contextlib.asynccontextmanager
async def tls_connection(port: int, cfg: TLSConfig, name: str = "localhost") -> AsyncIterator[ssl.SSLObject]:
    """A client TLS connection to 127.0.0.1:``port`` under ``cfg``; yields its SSLObject."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(cfg), server_hostname=name)
    try:
        yield writer.get_extra_info("ssl_object")
    finally:
        writer.transport.abort()


def make_intermediate(root: Authority, directory: Path, *, days: float) -> Authority:
    """An intermediate CA signed by ``root`` that expires in ``days``."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "slaprobe intermediate")]))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.key, hashes.SHA256())
    )
    path = directory / "intermediate.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert, key, path)


def cert_expiring_in(days: float) -> CertInfo:
    """Certificate facts of a leaf that expires ``days`` from now."""
    expiry = dt.datetime.now(dt.UTC).timestamp() + days * DAY
    return CertInfo(leaf_expiry=expiry, earliest_expiry=expiry, subject="CN=shop.example")


@pytest.fixture
def leaf(authority: Authority, tmp_path: Path) -> CertFiles:
    """A valid certificate for localhost from the test CA."""
    return authority.issue(tmp_path, "localhost")


# ---------------------------------------------------------------------------- contexts


def test_contexts_are_built_once_per_settings(authority: Authority) -> None:
    cfg = TLSConfig(ca_file=str(authority.path))
    assert client_context(cfg) is client_context(TLSConfig(ca_file=str(authority.path), min_days_left=3))
    assert client_context(cfg) is not client_context(TLSConfig(ca_file=str(authority.path), max_version="TLS12"))


def test_a_rewritten_ca_file_gives_a_fresh_context(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(make_authority(tmp_path, "first").path.read_bytes())
    cfg = TLSConfig(ca_file=str(bundle))
    before = client_context(cfg)
    stat = bundle.stat()
    bundle.write_bytes(make_authority(tmp_path, "second").path.read_bytes())
    os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = client_context(cfg)
    assert after is not before
    assert [c["subject"] for c in after.get_ca_certs()] == [((("commonName", "second"),),)]


def test_verification_is_on_by_default_and_off_when_skipped(authority: Authority) -> None:
    strict = client_context(TLSConfig(ca_file=str(authority.path)))
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    for relaxed in (client_context(TLSConfig(insecure_skip_verify=True)), client_context(TLSConfig(), verify=False)):
        assert relaxed.verify_mode == ssl.CERT_NONE and not relaxed.check_hostname


def test_version_bounds_are_applied() -> None:
    ctx = client_context(TLSConfig(min_version="TLS10", max_version="TLS12"))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2


def test_a_missing_ca_file_is_a_settings_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TLSSettingsError, match=r"tls.ca_file: cannot load .*nowhere.pem"):
        client_context(TLSConfig(ca_file=str(tmp_path / "nowhere.pem")))


def test_a_bad_client_key_is_a_settings_error_naming_it(leaf: CertFiles, tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    with pytest.raises(TLSSettingsError, match=r"tls\.cert_file/key_file"):
        client_context(TLSConfig(cert_file=str(leaf.cert), key_file=str(bad)))


def test_the_server_name_setting_wins_over_the_override_and_the_host() -> None:
    assert server_hostname(TLSConfig(server_name="a.example"), "10.0.0.1", "b.example") == "a.example"
    assert server_hostname(TLSConfig(), "10.0.0.1", "b.example") == "b.example"
    assert server_hostname(TLSConfig(), "[::1]") == "::1"


# ---------------------------------------------------------------------------- certificate facts


async def test_cert_info_reads_the_leaf_and_the_soonest_expiry_in_the_chain(
    authority: Authority, tmp_path: Path
) -> None:
    intermediate = make_intermediate(authority, tmp_path, days=3)
    leaf = intermediate.issue(tmp_path, "localhost", days=30)  # the file holds leaf + intermediate
    der = x509.load_pem_x509_certificate(leaf.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    async with (
        serve(leaf.server_context()) as port,
        tls_connection(port, TLSConfig(ca_file=str(authority.path))) as ssl_object,
    ):
        info = cert_info(ssl_object, verified=True)
        chain_expiry = verified_chain_expiry(ssl_object)
    assert info is not None
    assert info.leaf_expiry == pytest.approx(leaf.not_after.timestamp(), abs=1)
    assert info.earliest_expiry == pytest.approx(intermediate.cert.not_valid_after_utc.timestamp(), abs=1)
    assert chain_expiry == info.earliest_expiry
    assert info.subject == "CN=localhost"
    assert info.issuer == "CN=slaprobe intermediate"
    assert info.fingerprint_sha256 == hashlib.sha256(der).hexdigest()
    assert info.serial == serial_hex(x509.load_der_x509_certificate(der).serial_number)
    assert info.verified


@pytest.mark.parametrize(("number", "text"), [(0x0102, "0102"), (0xFF, "ff"), (0x1FF, "01ff"), (0, "00")])
def test_serial_numbers_are_printed_as_blackbox_prints_them(number: int, text: str) -> None:
    assert serial_hex(number) == text


async def test_samples_match_blackbox_names_and_labels(leaf: CertFiles, authority: Authority) -> None:
    async with (
        serve(leaf.server_context()) as port,
        tls_connection(port, TLSConfig(ca_file=str(authority.path))) as ssl_object,
    ):
        handshake = describe_handshake(ssl_object, verified=True)
    by_name = {s.name: s for s in handshake.samples}
    assert set(by_name) == {
        names.BB_SSL_EARLIEST_EXPIRY,
        names.BB_TLS_LEAF_EXPIRY,
        names.BB_SSL_LAST_CHAIN_EXPIRY,
        names.BB_SSL_LAST_CHAIN_INFO,
        names.BB_TLS_VERSION,
        names.BB_TLS_CIPHER,
    }
    info = by_name[names.BB_SSL_LAST_CHAIN_INFO]
    assert [key for key, _ in info.labels] == [
        "fingerprint_sha256",
        "subject",
        "issuer",
        "subjectalternative",
        "serialnumber",
    ]
    assert dict(info.labels)["subjectalternative"] == "localhost"  # DNS names only, as Go's DNSNames
    assert by_name[names.BB_TLS_VERSION].labels == (("version", handshake.version),)
    assert by_name[names.BB_TLS_CIPHER].labels == (("cipher", handshake.cipher),)


async def test_an_unverified_handshake_has_no_chain_expiry(leaf: CertFiles) -> None:
    async with (
        serve(leaf.server_context()) as port,
        tls_connection(port, TLSConfig(insecure_skip_verify=True)) as ssl_object,
    ):
        info = cert_info(ssl_object, verified=False)
        samples = tls_samples(ssl_object, info)
    assert info is not None and not info.verified
    assert names.BB_SSL_LAST_CHAIN_EXPIRY not in {s.name for s in samples}


# ---------------------------------------------------------------------------- reading after a failure


async def test_the_unverified_handshake_reads_a_certificate_that_fails_verification(tmp_path: Path) -> None:
    stranger = make_authority(tmp_path, "stranger CA").issue(tmp_path, "localhost")
    async with serve(stranger.server_context()) as port:
        handshake = await handshake_unverified("127.0.0.1", port, TLSConfig(), server_name="localhost", timeout=2)
    assert handshake is not None and handshake.cert is not None
    assert handshake.cert.issuer == "CN=stranger CA"
    assert not handshake.cert.verified


async def test_the_unverified_handshake_gives_up_on_a_silent_peer_within_its_timeout() -> None:
    async with serve(None) as port:
        async with asyncio.timeout(2):  # the outer deadline must not be what ends it
            handshake = await handshake_unverified("127.0.0.1", port, TLSConfig(), server_name="localhost", timeout=0.1)
    assert handshake is None


async def test_the_unverified_handshake_gives_up_on_a_closed_port() -> None:
    result = await handshake_unverified("127.0.0.1", free_port(), TLSConfig(), server_name="x", timeout=1)
    assert result is None


# ---------------------------------------------------------------------------- expiry and errors


def test_min_days_left_passes_a_certificate_with_time_to_spare() -> None:
    assert check_min_days_left(cert_expiring_in(30), TLSConfig(min_days_left=14)) is None
    assert check_min_days_left(cert_expiring_in(1), TLSConfig()) is None
    assert check_min_days_left(None, TLSConfig(min_days_left=14)) is None


def test_min_days_left_fails_a_certificate_expiring_sooner() -> None:
    detail = check_min_days_left(cert_expiring_in(3.5), TLSConfig(min_days_left=14))
    assert detail == "certificate CN=shop.example expires in 3.5 days (min_days_left 14)"


def test_min_days_left_says_when_a_certificate_has_expired() -> None:
    detail = check_min_days_left(cert_expiring_in(-2), TLSConfig(min_days_left=0))
    assert detail == "certificate CN=shop.example expired 2.0 days ago"


def test_tls_errors_read_as_one_line() -> None:
    verify = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
    verify.verify_message = "certificate has expired"
    assert describe_tls_error(verify) == "certificate verify failed: certificate has expired"
    protocol = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    protocol.reason = "WRONG_VERSION_NUMBER"
    assert describe_tls_error(protocol) == "TLS handshake failed: wrong version number"
    reset = ConnectionResetError(104, "Connection reset by peer")
    assert describe_tls_error(reset) == "connection lost during the TLS handshake: Connection reset by peer"
