"""TLS helpers shared by the http, tcp and tls probes: client contexts, certificate facts, samples.

Certificates are read with ``cryptography`` from the DER bytes the peer presented, so the
facts are there whether or not verification succeeded; when it failed, ``handshake_unverified``
handshakes a second time without verification to read them (blackbox reports nothing then).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509

from slaprobe import conventions as names
from slaprobe.config import TLSConfig
from slaprobe.probes.result import CertInfo, Sample

SSLObjectLike = ssl.SSLObject | ssl.SSLSocket

_DER = 2  # _ssl.ENCODING_DER: the format argument of _ssl.Certificate.public_bytes

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# OpenSSL's version strings as blackbox (Go) names them in probe_tls_version_info.
_VERSION_NAMES = {
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}

# OpenSSL cipher names -> the IANA names Go's tls.CipherSuiteName returns, so the
# probe_tls_cipher_info label matches blackbox. TLS 1.3 suites have the same name in both.
_CIPHER_NAMES = {
    "RC4-SHA": "TLS_RSA_WITH_RC4_128_SHA",
    "DES-CBC3-SHA": "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "AES128-SHA": "TLS_RSA_WITH_AES_128_CBC_SHA",
    "AES256-SHA": "TLS_RSA_WITH_AES_256_CBC_SHA",
    "AES128-SHA256": "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "AES128-GCM-SHA256": "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "AES256-GCM-SHA384": "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-RC4-SHA": "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "ECDHE-ECDSA-AES128-SHA": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "ECDHE-ECDSA-AES256-SHA": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "ECDHE-RSA-RC4-SHA": "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "ECDHE-RSA-DES-CBC3-SHA": "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "ECDHE-RSA-AES128-SHA": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "ECDHE-RSA-AES256-SHA": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "ECDHE-ECDSA-AES128-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-RSA-AES128-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "ECDHE-ECDSA-AES256-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "ECDHE-RSA-AES256-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "DHE-RSA-AES128-GCM-SHA256": "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
    "DHE-RSA-AES256-GCM-SHA384": "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
    "DHE-RSA-AES128-SHA256": "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256",
    "DHE-RSA-AES256-SHA256": "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256",
    "DHE-RSA-CHACHA20-POLY1305": "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
}


class TLSSettingsError(Exception):
    """A TLS setting cannot be applied (a CA or client certificate file is missing or bad)."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """What one completed TLS handshake showed: version, cipher, certificate facts, samples."""

    version: str  # "TLS 1.3", as blackbox labels it
    cipher: str  # IANA name, e.g. TLS_AES_128_GCM_SHA256
    openssl_cipher: str  # OpenSSL's name for the same suite
    cert: CertInfo | None
    samples: tuple[Sample, ...]


# ---------------------------------------------------------------------------- contexts


def client_context(cfg: TLSConfig, *, verify: bool = True, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
    """The client SSLContext for ``cfg``; built once per distinct settings and file versions.

    ``verify=False`` gives the same context without certificate verification (to read a
    certificate that failed it). A file changed on disk (rotated CA bundle or client
    certificate) yields a fresh context, because its mtime is part of the cache key.
    The context is shared: callers must not modify it. ``alpn``: protocols offered by ALPN.
    """
    files = (cfg.ca_file, cfg.cert_file, cfg.key_file)
    return _build_context(
        files,
        tuple(_mtime(path) for path in files),
        verify and not cfg.insecure_skip_verify,
        cfg.min_version,
        cfg.max_version,
        alpn,
    )


def _mtime(path: str | None) -> int | None:
    if path is None:
        return None
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None  # the build below reports the missing file


@lru_cache(maxsize=256)
def _build_context(
    files: tuple[str | None, str | None, str | None],
    mtimes: tuple[int | None, ...],  # part of the cache key only
    verify: bool,
    min_version: str | None,
    max_version: str | None,
    alpn: tuple[str, ...] = (),
) -> ssl.SSLContext:
    ca_file, cert_file, key_file = files
    try:
        ctx = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSSettingsError(f"tls.ca_file: cannot load {ca_file}: {_reason(exc)}") from exc
    if cert_file is not None:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSSettingsError(f"tls.cert_file/key_file: cannot load {cert_file}: {_reason(exc)}") from exc
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # Python deprecates TLS 1.0/1.1; a config that names them asks for them deliberately.
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version is not None:
            ctx.minimum_version = _VERSIONS[min_version]
        if max_version is not None:
            ctx.maximum_version = _VERSIONS[max_version]
    if min_version in ("TLS10", "TLS11"):
        # OpenSSL 3's default security level refuses TLS < 1.2 even when allowed;
        # whoever asks for it explicitly is probing a legacy endpoint on purpose.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def server_hostname(cfg: TLSConfig, host: str, override: str | None = None) -> str:
    """The name sent as SNI and verified: ``server_name``, else the override, else the host."""
    return cfg.server_name or override or host.strip("[]")


# ---------------------------------------------------------------------------- certificates


@lru_cache(maxsize=512)
def _load(der: bytes) -> x509.Certificate | None:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        return None


def _chain_der(ssl_object: SSLObjectLike, method: str) -> list[bytes]:
    # Python 3.11 has the chains only as private methods of the _ssl object
    # (public as SSLSocket.get_*_chain from 3.13); fall back to the leaf alone.
    getter: Any = getattr(getattr(ssl_object, "_sslobj", None), method, None)
    if getter is not None:
        try:
            return [cert.public_bytes(_DER) for cert in getter() or ()]
        except (ssl.SSLError, ValueError, TypeError):
            pass
    if method == "get_verified_chain":
        return []
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _certs(ders: list[bytes]) -> list[x509.Certificate]:
    return [cert for cert in map(_load, ders) if cert is not None]


def _not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def serial_hex(number: int) -> str:
    """A serial number as blackbox prints it: hex of its big-endian bytes (``0102``, not ``102``)."""
    return number.to_bytes(max(1, (number.bit_length() + 7) // 8), "big").hex()


def cert_info(ssl_object: SSLObjectLike, verified: bool) -> CertInfo | None:
    """Facts about the certificates the peer presented; None if it presented none."""
    ders = _chain_der(ssl_object, "get_unverified_chain")
    if not ders:
        return None
    leaf = _load(ders[0])
    if leaf is None:
        return None
    presented = _certs(ders)
    earliest = min(presented, key=_not_after)
    return CertInfo(
        leaf_expiry=_not_after(leaf),
        earliest_expiry=_not_after(earliest),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        serial=serial_hex(leaf.serial_number),
        fingerprint_sha256=hashlib.sha256(ders[0]).hexdigest(),
        verified=verified,
        earliest_subject=earliest.subject.rfc4514_string(),
        chain_expiry=verified_chain_expiry(ssl_object) if verified else None,
    )


def _dns_names(ssl_object: SSLObjectLike) -> str:
    leaf = ssl_object.getpeercert(binary_form=True)
    cert = _load(leaf) if leaf else None
    if cert is None:
        return ""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ""
    return ",".join(san.get_values_for_type(x509.DNSName))


def verified_chain_expiry(ssl_object: SSLObjectLike) -> float | None:
    """Soonest notAfter in the chain OpenSSL verified (blackbox's "last chain" expiry: Python
    knows one verified chain); None when no chain was verified, as in insecure mode."""
    chain = _certs(_chain_der(ssl_object, "get_verified_chain"))
    return min((_not_after(cert) for cert in chain), default=None)


def tls_version(ssl_object: SSLObjectLike) -> str:
    """The negotiated protocol as blackbox names it (``TLS 1.3``), or ``unknown``."""
    return _VERSION_NAMES.get(ssl_object.version() or "", "unknown")


def tls_cipher(ssl_object: SSLObjectLike) -> tuple[str, str]:
    """The negotiated cipher suite as (IANA name as Go prints it, OpenSSL name)."""
    cipher = ssl_object.cipher()
    if cipher is None:
        return "unknown", "unknown"
    return _CIPHER_NAMES.get(cipher[0], cipher[0]), cipher[0]


def tls_samples(ssl_object: SSLObjectLike, cert: CertInfo | None) -> list[Sample]:
    """The blackbox TLS samples for one handshake (plus ``probe_ssl_leaf_cert_expiry``).

    ``probe_ssl_last_chain_expiry_timestamp_seconds`` appears only when a chain was
    verified: blackbox's value without one is a bogus negative timestamp.
    """
    samples = []
    if cert is not None:
        samples += [
            Sample(names.BB_SSL_EARLIEST_EXPIRY, cert.earliest_expiry),
            Sample(names.BB_TLS_LEAF_EXPIRY, cert.leaf_expiry),
        ]
        if cert.chain_expiry is not None:
            samples.append(Sample(names.BB_SSL_LAST_CHAIN_EXPIRY, cert.chain_expiry))
        labels = (
            ("fingerprint_sha256", cert.fingerprint_sha256),
            ("subject", cert.subject),
            ("issuer", cert.issuer),
            ("subjectalternative", _dns_names(ssl_object)),
            ("serialnumber", cert.serial),
        )
        samples.append(Sample(names.BB_SSL_LAST_CHAIN_INFO, 1, labels))
    samples.append(Sample(names.BB_TLS_VERSION, 1, (("version", tls_version(ssl_object)),)))
    samples.append(Sample(names.BB_TLS_CIPHER, 1, (("cipher", tls_cipher(ssl_object)[0]),)))
    return samples


def describe_handshake(ssl_object: SSLObjectLike, *, verified: bool) -> Handshake:
    """Everything one handshake showed, in one value."""
    cert = cert_info(ssl_object, verified)
    cipher, openssl_cipher = tls_cipher(ssl_object)
    return Handshake(
        version=tls_version(ssl_object),
        cipher=cipher,
        openssl_cipher=openssl_cipher,
        cert=cert,
        samples=tuple(tls_samples(ssl_object, cert)),
    )


def describe_tls_error(exc: BaseException) -> str:
    """A one-line reason for a failed handshake (``certificate verify failed: ...``)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        # OpenSSL reasons read WRONG_VERSION_NUMBER; say "wrong version number".
        reason = exc.reason.replace("_", " ").lower() if exc.reason else _reason(exc)
        return f"TLS handshake failed: {reason}"
    if isinstance(exc, ConnectionError | EOFError):
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return "connection lost during the TLS handshake" + (f": {why}" if why else "")
    return f"TLS handshake failed: {_reason(exc)}"


async def handshake_unverified(
    ip: str,
    port: int,
    cfg: TLSConfig,
    *,
    server_name: str,
    timeout: float,
) -> Handshake | None:
    """Dial ``ip:port`` again and handshake without verification, to read the certificate.

    Used after verification failed, so the failure still reports what the peer presents.
    Gives up (None) after ``timeout`` seconds or on any error: the caller already has
    its failure and this second look must not turn it into a timeout.
    """
    if timeout <= 0:
        return None
    writer = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(
                ip, port, ssl=client_context(cfg, verify=False), server_hostname=server_name
            )
        ssl_object = writer.get_extra_info("ssl_object")
        if ssl_object is None:
            return None
        return describe_handshake(ssl_object, verified=False)
    except (OSError, ssl.SSLError, TimeoutError, TLSSettingsError, EOFError):
        return None
    finally:
        if writer is not None:
            writer.transport.abort()


def days_left(cert: CertInfo, *, now: float | None = None) -> float:
    """Days until the leaf certificate expires (negative once it has)."""
    return (cert.leaf_expiry - (time.time() if now is None else now)) / 86400


def check_min_days_left(cert: CertInfo | None, cfg: TLSConfig, *, now: float | None = None) -> str | None:
    """A failure detail if any certificate the peer presented (the leaf, an intermediate)
    expires within ``cfg.min_days_left`` days, else None."""
    if cert is None or cfg.min_days_left is None:
        return None
    left = (cert.earliest_expiry - (time.time() if now is None else now)) / 86400
    if left >= cfg.min_days_left:
        return None
    which = f"certificate {cert.subject}"
    if cert.earliest_expiry < cert.leaf_expiry and cert.earliest_subject:
        which = f"chain certificate {cert.earliest_subject} (of {cert.subject})"
    if left < 0:
        return f"{which} expired {-left:.1f} days ago"
    return f"{which} expires in {left:.1f} days (min_days_left {cfg.min_days_left:g})"
