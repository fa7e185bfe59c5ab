"""Certificates made in the test: a CA, leaf certificates with chosen names and expiry."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one certificate: ``cert`` (leaf then chain), ``key``, and the ``ca`` that signed it."""

    cert: Path
    key: Path
    ca: Path
    not_after: dt.datetime

    def server_context(self) -> ssl.SSLContext:
        """A server-side SSLContext presenting this certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


@dataclass(frozen=True)
class Authority:
    """A CA that signs test certificates."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    path: Path  # PEM of the root to trust (this CA's own certificate, unless it is an intermediate)
    parents: tuple[x509.Certificate, ...] = ()  # issuers above this CA, presented after it

    def intermediate(self, directory: Path, name: str = "slaprobe test intermediate", *, days: float = 90) -> Authority:
        """A CA signed by this one, valid until now + ``days``; its leaves present it in their chain."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _ca_builder(name, now, days)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .sign(self.key, hashes.SHA256())
        )
        return Authority(cert, key, self.path, (self.cert, *self.parents))

    def issue(
        self,
        directory: Path,
        name: str = "localhost",
        *,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
        days: float = 30,
        not_before_days: float = -1,
        client: bool = False,
    ) -> CertFiles:
        """Sign a leaf for ``hosts`` valid until now + ``days`` (negative: already expired)."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        not_after = now + dt.timedelta(days=days)
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + dt.timedelta(days=not_before_days))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        cert_path = directory / f"{name}.crt"
        key_path = directory / f"{name}.key"
        cert_path.write_bytes(
            b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (cert, self.cert, *self.parents))
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return CertFiles(cert_path, key_path, self.path, not_after)


def make_authority(directory: Path, name: str = "slaprobe test CA", *, days: float = 365) -> Authority:
    """Create a self-signed CA in ``directory`` (``<name>.pem``)."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = _ca_builder(name, now, days).issuer_name(subject).public_key(key.public_key()).sign(key, hashes.SHA256())
    path = directory / (name.replace(" ", "-") + ".pem")
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Authority(cert, key, path)


def _ca_builder(name: str, now: dt.datetime, days: float) -> x509.CertificateBuilder:
    """A CA certificate called ``name`` valid from a day ago to now + ``days``, not yet signed."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
