"""``--web-config``: the Prometheus exporter-toolkit ``web-config.yml`` for the aiohttp server.

The file format is exporter-toolkit's (``docs/web-configuration.md``), read strictly:
an unknown key is an error naming its path, and a key Python cannot honour is refused
by name rather than ignored. Relative file names are relative to the file's directory.

``tls_server_config``
    ``cert_file``/``key_file`` or inline ``cert``/``key``; ``client_ca_file`` or inline
    ``client_ca``; ``client_auth_type``: ``NoClientCert`` (default),
    ``RequestClientCert`` (slaprobe never reads an optional client certificate, so this
    behaves as ``NoClientCert``), ``VerifyClientCertIfGiven``,
    ``RequireAndVerifyClientCert``; ``RequireAnyClientCert`` is refused (Python's ssl
    verifies every certificate it requires). ``client_allowed_sans`` (checked per request,
    403 otherwise), ``min_version``/``max_version`` (``TLS10`` .. ``TLS13``, default
    TLS12..TLS13), ``cipher_suites`` (Go names, mapped to OpenSSL's; like Go they apply to
    TLS 1.2 and below, TLS 1.3 suite names are accepted and have no effect),
    ``prefer_server_cipher_suites``, ``curve_preferences`` (one curve: Python's ssl sets
    a single one).
``http_server_config``
    ``headers``: the toolkit's five security headers, added to every response (a handler
    may override them); ``http2``: accepted, but slaprobe serves HTTP/1.1 only.
``basic_auth_users``
    ``user: bcrypt hash``. The middleware compares user names in constant time, pays the
    bcrypt cost for unknown users too, runs bcrypt off the event loop one at a time, and
    remembers recent successful checks (by a SHA-256 of user, password and hash) so a
    scrape every few seconds does not pay bcrypt each time.
``auth_excluded_paths``
    paths served without basic auth, added to the caller's ``exempt``.
``rate_limit``
    refused: not supported.

Unlike exporter-toolkit, the file and its certificates are read once at start.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
import secrets
import ssl
import tempfile
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import bcrypt
import yaml
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

REALM = "slaprobe"
_CACHE_SIZE = 256

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
_TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's tls.CipherSuites() names -> OpenSSL names; TLS 1.3 suites are not configurable in either.
_CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
_CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
# The headers exporter-toolkit lets a web-config set, with their allowed values (None: any).
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class WebConfigError(Exception):
    """A web-config file that cannot be used; the message names the key (``web-config: a.b: ...``)."""


@dataclass(frozen=True)
class TLSServerConfig:
    """``tls_server_config``, checked; file names already made absolute."""

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = field(default=None, repr=False)
    key: str | None = field(default=None, repr=False)
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    client_ca: str | None = field(default=None, repr=False)
    client_allowed_sans: tuple[str, ...] = ()
    min_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2
    max_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3
    ciphers: tuple[str, ...] = ()  # OpenSSL names, TLS 1.2 and below
    prefer_server_cipher_suites: bool = True
    curve: str | None = None  # OpenSSL name


@dataclass(frozen=True)
class WebConfig:
    """A loaded web-config: TLS for the listener, basic auth and response headers for the app."""

    tls: TLSServerConfig | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    http2: bool = True  # accepted for compatibility; aiohttp serves HTTP/1.1
    users: Mapping[str, str] = field(default_factory=dict, repr=False)  # user -> bcrypt hash
    auth_excluded_paths: tuple[str, ...] = ()

    def ssl_context(self) -> ssl.SSLContext | None:
        """A server SSLContext for the listener, or None when the file configures no TLS."""
        if self.tls is None:
            return None
        return _ssl_context(self.tls)

    def middleware(
        self,
        *,
        exempt: Iterable[str] = (),
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> Middleware:
        """The aiohttp middleware enforcing basic auth (outside ``exempt`` paths) and adding headers."""
        return AccessMiddleware(self, exempt=(*exempt, *self.auth_excluded_paths), checkpw=checkpw)


# ---------------------------------------------------------------------------- loading


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check a web-config file, certificates included; raise WebConfigError naming the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WebConfigError(f"web-config: {path}: cannot read: {_reason(exc)}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise WebConfigError(f"web-config: {path}: {where}not valid YAML: {problem}") from None
    config = parse_web_config(data, base=path.parent)
    config.ssl_context()  # certificates and keys are checked now, not at the first handshake
    return config


def parse_web_config(data: Any, *, base: Path) -> WebConfig:
    """Check parsed YAML; relative file names are taken relative to ``base``."""
    top = _mapping(data, "")
    _only(top, "", {"tls_server_config", "http_server_config", "basic_auth_users", "auth_excluded_paths"})
    http = _mapping(top.get("http_server_config"), "http_server_config")
    _only(http, "http_server_config", {"headers", "http2"})
    http2 = http.get("http2", True)
    if not isinstance(http2, bool):
        _fail("http_server_config.http2", "must be true or false")
    excluded = _strings(top.get("auth_excluded_paths"), "auth_excluded_paths")
    for i, excluded_path in enumerate(excluded):
        if not excluded_path.startswith("/"):
            _fail(f"auth_excluded_paths[{i}]", f"not a path: {excluded_path!r}")
    return WebConfig(
        tls=_tls(_mapping(top.get("tls_server_config"), "tls_server_config"), base),
        headers=_headers(_mapping(http.get("headers"), "http_server_config.headers")),
        http2=http2,
        users=_users(_mapping(top.get("basic_auth_users"), "basic_auth_users")),
        auth_excluded_paths=excluded,
    )


def _tls(section: dict[str, Any], base: Path) -> TLSServerConfig | None:
    p = "tls_server_config"
    _only(section, p, {
        "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
        "client_allowed_sans", "min_version", "max_version", "cipher_suites",
        "prefer_server_cipher_suites", "curve_preferences",
    })  # fmt: skip
    text = {k: _string(section.get(k), f"{p}.{k}") for k in (
        "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
    )}  # fmt: skip
    if not any(text.values()):
        return None  # exporter-toolkit: TLS is on once a certificate, key, CA or client auth is named
    for inline, named in (("cert", "cert_file"), ("key", "key_file"), ("client_ca", "client_ca_file")):
        if text[inline] and text[named]:
            _fail(p, f"give {inline} or {named}, not both")
    if not (text["cert"] or text["cert_file"]):
        _fail(p, "missing one of cert or cert_file")
    if not (text["key"] or text["key_file"]):
        _fail(p, "missing one of key or key_file")
    auth = text["client_auth_type"] or "NoClientCert"
    has_ca = bool(text["client_ca"] or text["client_ca_file"])
    if auth not in CLIENT_AUTH_TYPES and auth != "RequireClientCert":
        _fail(f"{p}.client_auth_type", f"unknown value {auth!r} (one of {', '.join(CLIENT_AUTH_TYPES)})")
    if auth in ("RequireAnyClientCert", "RequireClientCert"):
        _fail(f"{p}.client_auth_type", f"{auth} is not supported: Python's ssl verifies every client certificate "
              "it requires; use RequireAndVerifyClientCert with client_ca_file")  # fmt: skip
    if auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not has_ca:
        _fail(f"{p}.client_auth_type", f"{auth} needs client_ca_file or client_ca")
    if has_ca and auth == "NoClientCert":
        _fail(f"{p}.{'client_ca' if text['client_ca'] else 'client_ca_file'}",
              "a client CA needs a client_auth_type other than NoClientCert")  # fmt: skip
    sans = _strings(section.get("client_allowed_sans"), f"{p}.client_allowed_sans")
    if sans and auth != "RequireAndVerifyClientCert":
        _fail(f"{p}.client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = _string(section.get(key), f"{p}.{key}") or default
        if name not in _TLS_VERSIONS:
            _fail(f"{p}.{key}", f"unknown TLS version {name!r} (one of {', '.join(_TLS_VERSIONS)})")
        versions[key] = name
    if _TLS_VERSIONS[versions["min_version"]] > _TLS_VERSIONS[versions["max_version"]]:
        _fail(p, f"min_version {versions['min_version']} is above max_version {versions['max_version']}")
    ciphers = []
    for i, name in enumerate(_strings(section.get("cipher_suites"), f"{p}.cipher_suites")):
        if name not in _CIPHERS:
            _fail(f"{p}.cipher_suites[{i}]", f"unknown cipher: {name}")
        if (openssl := _CIPHERS[name]) is not None:
            ciphers.append(openssl)
    prefer = section.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        _fail(f"{p}.prefer_server_cipher_suites", "must be true or false")
    curves = _strings(section.get("curve_preferences"), f"{p}.curve_preferences")
    for i, name in enumerate(curves):
        if name not in _CURVES:
            _fail(f"{p}.curve_preferences[{i}]", f"unknown curve: {name} (one of {', '.join(_CURVES)})")
    if len(curves) > 1:
        _fail(f"{p}.curve_preferences", "Python's ssl sets a single curve; give one")

    def file(key: str) -> Path | None:
        value = text[key]
        return None if not value else base / Path(value).expanduser()

    return TLSServerConfig(
        cert_file=file("cert_file"),
        key_file=file("key_file"),
        cert=text["cert"],
        key=text["key"],
        client_auth_type=auth,
        client_ca_file=file("client_ca_file"),
        client_ca=text["client_ca"],
        client_allowed_sans=sans,
        min_version=_TLS_VERSIONS[versions["min_version"]],
        max_version=_TLS_VERSIONS[versions["max_version"]],
        ciphers=tuple(ciphers),
        prefer_server_cipher_suites=prefer,
        curve=_CURVES[curves[0]] if curves else None,
    )


def _headers(section: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for name, value in section.items():
        path = f"http_server_config.headers.{name}"
        if name not in _HEADERS:
            _fail(path, f"header cannot be configured (one of {', '.join(_HEADERS)})")
        text = _string(value, path)
        if not text:
            continue  # blank: unset, as in exporter-toolkit
        if not text.isprintable():
            _fail(path, "must be one line of printable text")
        allowed = _HEADERS[name]
        if allowed is not None and text not in allowed:
            _fail(path, f"{text!r} is not one of {', '.join(allowed)}")
        headers[name] = text
    return headers


def _users(section: dict[str, Any]) -> dict[str, str]:
    for user, hashed in section.items():
        path = f"basic_auth_users.{user}"
        if ":" in user or not user.isprintable():
            _fail(path, "a user name cannot contain ':' or control characters")
        if not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            _fail(path, "not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
    return dict(section)


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(path, "must be a mapping")
    for key in value:
        if not isinstance(key, str):
            _fail(path, f"key {key!r} must be a string")
    return value


def _only(section: dict[str, Any], path: str, known: set[str]) -> None:
    for key in section:
        where = f"{path}.{key}" if path else key
        if key == "rate_limit" and not path:
            _fail(where, "not supported")
        if key not in known:
            _fail(where, "unknown key")


def _string(value: Any, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    _fail(path, "must be a string")


def _strings(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        _fail(path, "must be a list of strings")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            _fail(f"{path}[{i}]", "must be a string")
    return tuple(value)


def _fail(path: str, message: str) -> NoReturn:
    raise WebConfigError(f"web-config: {path}: {message}" if path else f"web-config: {message}")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError) and exc.strerror:
        return exc.strerror
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return re.sub(r" \(_ssl\.c:\d+\)$", "", text)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (as Go's UnmarshalStrict does)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool):
            continue  # an unhashable key is refused by construct_mapping itself
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


# ---------------------------------------------------------------------------- TLS


def _ssl_context(tls: TLSServerConfig) -> ssl.SSLContext:
    p = "tls_server_config"
    # Not create_default_context: that would trust the system CAs for client certificates.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = tls.min_version
    ctx.maximum_version = tls.max_version
    ctx.set_alpn_protocols(["http/1.1"])
    _load_cert_chain(ctx, tls)
    if tls.ciphers:
        try:
            ctx.set_ciphers(":".join(tls.ciphers))
        except ssl.SSLError:
            _fail(f"{p}.cipher_suites", "OpenSSL accepts none of these ciphers")
    if tls.prefer_server_cipher_suites:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve is not None:
        try:
            ctx.set_ecdh_curve(tls.curve)
        except (ValueError, ssl.SSLError):
            _fail(f"{p}.curve_preferences", f"OpenSSL does not support {tls.curve}")
    if tls.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
        try:
            if tls.client_ca_file is not None:
                ctx.load_verify_locations(cafile=tls.client_ca_file)
            else:
                ctx.load_verify_locations(cadata=tls.client_ca)
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            key = "client_ca_file" if tls.client_ca_file is not None else "client_ca"
            shown = f" {tls.client_ca_file}" if tls.client_ca_file is not None else ""
            _fail(f"{p}.{key}", f"cannot load CA certificates{shown}: {_reason(exc)}")
        required = tls.client_auth_type == "RequireAndVerifyClientCert"
        ctx.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE  # RequestClientCert: nothing here reads an unverified certificate
    return ctx


def _load_cert_chain(ctx: ssl.SSLContext, tls: TLSServerConfig) -> None:
    p = "tls_server_config"

    def no_password() -> NoReturn:
        raise WebConfigError(f"web-config: {p}: the key is encrypted; give an unencrypted key")

    with tempfile.TemporaryDirectory(prefix="slaprobe-web-") as tmp:  # inline PEM: ssl wants files
        cert, key = tls.cert_file, tls.key_file
        if cert is None:
            cert = Path(tmp) / "cert.pem"
            cert.write_text(tls.cert or "")
        if key is None:
            key = Path(tmp) / "key.pem"
            key.touch(mode=0o600)
            key.write_text(tls.key or "")
        for name, file in (("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if file is not None and not file.is_file():
                _fail(f"{p}.{name}", f"cannot read {file}: no such file")
        try:
            ctx.load_cert_chain(cert, key, password=no_password)
        except ssl.SSLError as exc:
            _fail(p, f"cannot load the certificate and key: {_reason(exc)}")
        except OSError as exc:
            _fail(p, f"cannot read the certificate or key: {_reason(exc)}")


# ---------------------------------------------------------------------------- middleware


class AccessMiddleware:
    """aiohttp middleware: client-certificate SANs, basic auth and the configured response headers."""

    __middleware_version__ = 1  # new-style aiohttp middleware

    def __init__(
        self,
        config: WebConfig,
        *,
        exempt: Iterable[str] = (),
        checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
    ) -> None:
        """Prepare the checks; a decoy hash for unknown users is made here, at the users' usual cost."""
        self._headers = dict(config.headers)
        self._exempt = frozenset(exempt)
        self._sans = config.tls.client_allowed_sans if config.tls is not None else ()
        self._users = [(user.encode(), hashed.encode()) for user, hashed in config.users.items()]
        self._checkpw = checkpw
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._bcrypt_lock = asyncio.Lock()  # bcrypt is CPU-bound: one at a time, off the loop
        self._decoy = b""
        if self._users:
            cost = Counter(int(hashed[4:6]) for _, hashed in self._users).most_common(1)[0][0]
            self._decoy = bcrypt.hashpw(secrets.token_bytes(18), bcrypt.gensalt(rounds=cost))

    async def __call__(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Check the request, call ``handler``, add the headers (to errors and 401s too)."""
        try:
            response = await self._checked(request, handler)
        except web.HTTPException as exc:
            self._add_headers(exc)
            raise
        self._add_headers(response)
        return response

    async def _checked(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._sans and not self._san_allowed(request):
            return web.Response(status=403, text="client certificate not allowed\n")
        if not self._users or request.path in self._exempt:
            return await handler(request)
        credentials = _basic_credentials(request.headers.get("Authorization"))
        if credentials is None or not await self._authenticated(*credentials):
            return web.Response(
                status=401, text="Unauthorized\n", headers={"WWW-Authenticate": f'Basic realm="{REALM}"'}
            )
        return await handler(request)

    async def _authenticated(self, user: bytes, password: bytes) -> bool:
        stored = None
        for name, hashed in self._users:  # no early exit: the time does not depend on which user matched
            if hmac.compare_digest(name, user):
                stored = hashed
        hashed = stored if stored is not None else self._decoy
        key = hashlib.sha256(b"\0".join((user.hex().encode(), password.hex().encode(), hashed))).digest()
        if stored is not None and key in self._cache:
            self._cache.move_to_end(key)
            return True
        async with self._bcrypt_lock:
            ok = await asyncio.get_running_loop().run_in_executor(None, self._bcrypt_ok, password, hashed)
        if not (ok and stored is not None):
            return False
        self._cache[key] = None
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return True

    def _bcrypt_ok(self, password: bytes, hashed: bytes) -> bool:
        try:
            return self._checkpw(password, hashed)
        except ValueError:  # e.g. a password over bcrypt's 72 bytes
            return False

    def _san_allowed(self, request: web.Request) -> bool:
        transport = request.transport
        cert = transport.get_extra_info("peercert") if transport is not None else None
        if not cert:
            return False
        allowed_ips = {ip for ip in map(_ip_or_none, self._sans) if ip is not None}
        for kind, value in cert.get("subjectAltName", ()):
            if kind == "IP Address":
                if _ip_or_none(value.strip()) in allowed_ips:
                    return True
            elif value in self._sans:
                return True
        return False

    def _add_headers(self, response: web.StreamResponse) -> None:
        if response.prepared:
            return  # a streamed response has sent its headers already
        for name, value in self._headers.items():
            response.headers.setdefault(name, value)


def _basic_credentials(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from ``Authorization: Basic ...``, or None if absent or malformed."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def _ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
