"""--web-config: exporter-toolkit's file on a real aiohttp server (TLS, mTLS, basic auth, headers)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from slaprobe.exporter.webconfig import WebConfig, WebConfigError, load_web_config
from tests.support.certs import Authority, CertFiles, make_authority

PASSWORD = "s3cret pässword"
SALT = b"$2b$04$slaprobe.tests.fixed.e"  # fixed: test ids embed the hashes, and xdist workers must agree on them
HASH = bcrypt.hashpw(PASSWORD.encode(), SALT).decode()
OTHER_HASH = bcrypt.hashpw(b"other", SALT).decode()
CHALLENGE = 'Basic realm="slaprobe"'


@dataclass(frozen=True)
class Certs:
    """The files one test module needs: a server, two clients of our CA, one of a stranger's CA."""

    dir: Path
    ca: Path
    server: CertFiles
    client: CertFiles
    other_client: CertFiles
    stranger: CertFiles


@pytest.fixture(scope="module")
def certs(authority: Authority, tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Certificates for the server and its clients, in one directory."""
    directory = tmp_path_factory.mktemp("webconfig")
    stranger_ca = make_authority(tmp_path_factory.mktemp("stranger"), "stranger CA")
    return Certs(
        dir=directory,
        ca=authority.path,
        server=authority.issue(directory, "server"),
        client=authority.issue(directory, "client", hosts=("scraper.example",), client=True),
        other_client=authority.issue(directory, "other", hosts=("intruder.example",), client=True),
        stranger=stranger_ca.issue(directory, "stranger", hosts=("scraper.example",), client=True),
    )


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    """Write a web-config file and return its path."""
    path = directory / name
    path.write_text(text)
    return path


def tls_section(certs: Certs, extra: str = "") -> str:
    """A tls_server_config naming the server certificate (absolute paths) plus ``extra`` lines."""
    lines = f"tls_server_config:\n  cert_file: {certs.server.cert}\n  key_file: {certs.server.key}\n"
    return lines + "".join(f"  {line}\n" for line in extra.splitlines() if line)


def client_context(certs: Certs, cert: CertFiles | None = None) -> ssl.SSLContext:
    """A client SSLContext trusting the test CA, presenting ``cert`` if given."""
    ctx = ssl.create_default_context(cafile=certs.ca)
    if cert is not None:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for HTTP basic auth (UTF-8)."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@contextlib.asynccontextmanager
async def running(
    config: WebConfig,
    *,
    exempt: tuple[str, ...] = (),
    checkpw: Callable[[bytes, bytes], bool] = bcrypt.checkpw,
) -> AsyncIterator[str]:
    """Serve a small app behind ``config`` on 127.0.0.1 (a free port); yield its base URL."""

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text="metrics\n")

    async def gone(request: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    app = web.Application(middlewares=[config.middleware(exempt=exempt, checkpw=checkpw)])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/-/healthy", metrics)
    app.router.add_get("/gone", gone)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ssl_context = config.ssl_context()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(
    url: str, ctx: ssl.SSLContext | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """GET ``url`` in a fresh session; (status, headers, body)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, ssl=ctx if ctx is not None else True, headers=headers or {}) as response,
    ):
        return response.status, dict(response.headers), await response.text()


class CountingCheck:
    """bcrypt.checkpw that counts its calls."""

    def __init__(self) -> None:
        self.calls: list[bytes] = []

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls.append(password)
        return bcrypt.checkpw(password, hashed)


# ---------------------------------------------------------------------------- basic auth over TLS


@pytest.fixture
def auth_config(certs: Certs, tmp_path: Path) -> WebConfig:
    """TLS, two users, and the security headers."""
    return load_web_config(
        write(
            tmp_path,
            tls_section(certs)
            + f"""
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  alice: {HASH}
  bob: {OTHER_HASH}
""",
        )
    )


async def test_the_right_user_and_password_get_through_with_the_configured_headers(
    auth_config: WebConfig, certs: Certs
) -> None:
    async with running(auth_config) as url:
        status, headers, body = await get(f"{url}/metrics", client_context(certs), basic("alice", PASSWORD))
    assert (status, body) == (200, "metrics\n")
    assert headers["X-Frame-Options"] == "deny"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.parametrize(
    "headers",
    [
        basic("alice", "wrong"),
        basic("bob", PASSWORD),  # alice's password for bob
        basic("mallory", PASSWORD),  # no such user
        basic("alice", "x" * 100),  # beyond bcrypt's 72 bytes
        {},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"alice").decode()},  # no colon
    ],
    ids=[
        "wrong password",
        "other user's password",
        "unknown user",
        "long password",
        "missing",
        "bearer",
        "bad base64",
        "no colon",
    ],
)
async def test_wrong_missing_or_malformed_credentials_get_401_with_a_basic_challenge(
    auth_config: WebConfig, certs: Certs, headers: dict[str, str]
) -> None:
    async with running(auth_config) as url:
        status, response_headers, _ = await get(f"{url}/metrics", client_context(certs), headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == CHALLENGE
    assert response_headers["X-Frame-Options"] == "deny"  # headers on refusals too


async def test_an_unknown_user_pays_a_bcrypt_check_like_a_known_one(auth_config: WebConfig, certs: Certs) -> None:
    check = CountingCheck()
    async with running(auth_config, checkpw=check) as url:
        await get(f"{url}/metrics", client_context(certs), basic("mallory", "guess"))
        await get(f"{url}/metrics", client_context(certs), basic("alice", "guess"))
    assert check.calls == [b"guess", b"guess"]


async def test_a_successful_check_is_cached_so_bcrypt_runs_once_per_credentials(
    auth_config: WebConfig, certs: Certs
) -> None:
    check = CountingCheck()
    async with running(auth_config, checkpw=check) as url:
        statuses = [(await get(f"{url}/metrics", client_context(certs), basic("alice", PASSWORD)))[0] for _ in range(3)]
        statuses += [(await get(f"{url}/metrics", client_context(certs), basic("alice", "no")))[0] for _ in range(2)]
    assert statuses == [200, 200, 200, 401, 401]
    assert check.calls == [PASSWORD.encode(), b"no", b"no"]  # failures are never cached


async def test_concurrent_logins_all_succeed(auth_config: WebConfig, certs: Certs) -> None:
    async with running(auth_config) as url:
        results = await asyncio.gather(
            *(get(f"{url}/metrics", client_context(certs), basic(user, pw))
              for user, pw in [("alice", PASSWORD), ("bob", "other")] * 4)
        )  # fmt: skip
    assert [status for status, _, _ in results] == [200] * 8


async def test_exempt_paths_answer_without_credentials_and_nothing_else_does(certs: Certs, tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, f"auth_excluded_paths: [/metrics]\nbasic_auth_users:\n  alice: {HASH}\n"))
    async with running(config, exempt=("/-/healthy",)) as url:
        assert (await get(f"{url}/-/healthy"))[0] == 200
        assert (await get(f"{url}/metrics"))[0] == 200
        assert (await get(f"{url}/gone"))[0] == 401
        assert (await get(f"{url}/-/healthy/"))[0] == 401  # exact paths only


async def test_configured_headers_are_added_to_handler_errors(auth_config: WebConfig, certs: Certs) -> None:
    async with running(auth_config) as url:
        status, headers, _ = await get(f"{url}/gone", client_context(certs), basic("alice", PASSWORD))
    assert status == 404
    assert headers["X-Frame-Options"] == "deny"


async def test_a_file_without_tls_or_users_serves_plain_http_to_everyone(tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, "http_server_config:\n  http2: false\n"))
    assert config.ssl_context() is None
    async with running(config) as url:
        assert url.startswith("http://")
        assert (await get(f"{url}/metrics"))[0] == 200


def test_secrets_do_not_appear_in_the_repr(auth_config: WebConfig) -> None:
    assert HASH not in repr(auth_config)
    assert "alice" not in repr(auth_config)


# ---------------------------------------------------------------------------- TLS and client certificates


def mtls(certs: Certs, tmp_path: Path, extra: str = "") -> WebConfig:
    """A web-config requiring a client certificate signed by the test CA."""
    return load_web_config(write(tmp_path, tls_section(
        certs, f"client_auth_type: RequireAndVerifyClientCert\nclient_ca_file: {certs.ca}\n{extra}")))  # fmt: skip


HANDSHAKE_REFUSED = (aiohttp.ClientError, ssl.SSLError, ConnectionError)


async def test_mutual_tls_admits_a_client_certificate_signed_by_the_client_ca(certs: Certs, tmp_path: Path) -> None:
    async with running(mtls(certs, tmp_path)) as url:
        status, _, _ = await get(f"{url}/metrics", client_context(certs, certs.client))
    assert status == 200


@pytest.mark.parametrize("who", ["no certificate", "a stranger's certificate"])
async def test_mutual_tls_refuses_clients_without_a_certificate_from_the_client_ca(
    certs: Certs, tmp_path: Path, who: str
) -> None:
    cert = certs.stranger if who == "a stranger's certificate" else None
    async with running(mtls(certs, tmp_path)) as url:
        with pytest.raises(HANDSHAKE_REFUSED):
            await get(f"{url}/metrics", client_context(certs, cert))


async def test_client_allowed_sans_admit_only_the_named_certificates(certs: Certs, tmp_path: Path) -> None:
    config = mtls(certs, tmp_path, "client_allowed_sans: [scraper.example, 10.0.0.1]")
    async with running(config) as url:
        allowed = await get(f"{url}/metrics", client_context(certs, certs.client))
        other = await get(f"{url}/metrics", client_context(certs, certs.other_client))
    assert allowed[0] == 200
    assert (other[0], other[2]) == (403, "client certificate not allowed\n")


async def test_verify_client_cert_if_given_admits_clients_without_one_but_not_strangers(
    certs: Certs, tmp_path: Path
) -> None:
    config = load_web_config(write(tmp_path, tls_section(
        certs, f"client_auth_type: VerifyClientCertIfGiven\nclient_ca_file: {certs.ca}")))  # fmt: skip
    async with running(config) as url:
        assert (await get(f"{url}/metrics", client_context(certs)))[0] == 200
        assert (await get(f"{url}/metrics", client_context(certs, certs.client)))[0] == 200
        with pytest.raises(HANDSHAKE_REFUSED):
            await get(f"{url}/metrics", client_context(certs, certs.stranger))


async def test_min_version_tls13_refuses_a_tls12_client(certs: Certs, tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, tls_section(certs, "min_version: TLS13")))
    old_client = client_context(certs)
    old_client.maximum_version = ssl.TLSVersion.TLSv1_2
    async with running(config) as url:
        assert (await get(f"{url}/metrics", client_context(certs)))[0] == 200
        with pytest.raises(HANDSHAKE_REFUSED):
            await get(f"{url}/metrics", old_client)


async def test_cipher_suites_decide_the_tls12_cipher(certs: Certs, tmp_path: Path) -> None:
    config = load_web_config(write(tmp_path, tls_section(
        certs, "max_version: TLS12\ncipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]")))  # fmt: skip
    async with running(config) as url:
        port = int(url.rsplit(":", 1)[1])
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(certs))
        cipher = writer.get_extra_info("cipher")
        writer.close()
        await writer.wait_closed()
    assert cipher[:2] == ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2")


async def test_inline_certificate_key_and_client_ca_work_like_files(certs: Certs, tmp_path: Path) -> None:
    def block(path: Path) -> str:
        return "|\n" + "".join(f"    {line}\n" for line in path.read_text().splitlines())

    config = load_web_config(write(tmp_path, (
        f"tls_server_config:\n  cert: {block(certs.server.cert)}  key: {block(certs.server.key)}"
        f"  client_ca: {block(certs.ca)}  client_auth_type: RequireAndVerifyClientCert\n"
    )))  # fmt: skip
    assert "PRIVATE KEY" not in repr(config)
    async with running(config) as url:
        assert (await get(f"{url}/metrics", client_context(certs, certs.client)))[0] == 200


def test_relative_file_names_are_relative_to_the_web_config_file(certs: Certs, tmp_path: Path) -> None:
    elsewhere = certs.dir / "conf"
    elsewhere.mkdir(exist_ok=True)
    path = write(elsewhere, "tls_server_config:\n  cert_file: ../server.crt\n  key_file: ../server.key\n")
    config = load_web_config(path)
    assert config.tls is not None
    assert config.tls.cert_file == elsewhere / "../server.crt"
    assert isinstance(config.ssl_context(), ssl.SSLContext)


# ---------------------------------------------------------------------------- invalid files

INVALID = [
    ("colour: blue\n", "web-config: colour: unknown key"),
    ("tls_server_config:\n  foo: 1\n", "web-config: tls_server_config.foo: unknown key"),
    ("http_server_config:\n  http3: true\n", "web-config: http_server_config.http3: unknown key"),
    ("rate_limit:\n  interval: 1s\n  burst: 5\n", "web-config: rate_limit: not supported"),
    ("- a\n- b\n", "web-config: must be a mapping"),
    ("tls_server_config: yes\n", "web-config: tls_server_config: must be a mapping"),
    ("http_server_config:\n  http2: maybe\n", "web-config: http_server_config.http2: must be true or false"),
    (
        "http_server_config:\n  headers:\n    X-Powered-By: slaprobe\n",
        "web-config: http_server_config.headers.X-Powered-By: header cannot be configured (one of "
        "Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection)",
    ),
    (
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        "web-config: http_server_config.headers.X-Frame-Options: 'allow' is not one of deny, sameorigin",
    ),
    (
        "basic_auth_users:\n  alice: hunter2\n",
        "web-config: basic_auth_users.alice: not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')",
    ),
    (
        f"basic_auth_users:\n  'a:b': {HASH}\n",
        "web-config: basic_auth_users.a:b: a user name cannot contain ':' or control characters",
    ),
    (f"basic_auth_users:\n  123: {HASH}\n", "web-config: basic_auth_users: key 123 must be a string"),
    ("auth_excluded_paths: [metrics]\n", "web-config: auth_excluded_paths[0]: not a path: 'metrics'"),
    ("tls_server_config:\n  key_file: server.key\n", "web-config: tls_server_config: missing one of cert or cert_file"),
    ("tls_server_config:\n  cert_file: server.crt\n", "web-config: tls_server_config: missing one of key or key_file"),
    (
        "tls_server_config:\n  cert_file: server.crt\n  cert: x\n  key_file: server.key\n",
        "web-config: tls_server_config: give cert or cert_file, not both",
    ),
    (
        "{tls}client_auth_type: Sometimes\n",
        "web-config: tls_server_config.client_auth_type: unknown value 'Sometimes' (one of NoClientCert, "
        "RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
    ),
    (
        "{tls}client_auth_type: RequireAnyClientCert\n",
        "web-config: tls_server_config.client_auth_type: RequireAnyClientCert is not supported: Python's ssl verifies "
        "every client certificate it requires; use RequireAndVerifyClientCert with client_ca_file",
    ),
    (
        "{tls}client_auth_type: RequireAndVerifyClientCert\n",
        "web-config: tls_server_config.client_auth_type: RequireAndVerifyClientCert needs client_ca_file or client_ca",
    ),
    (
        "{tls}client_ca_file: ca.pem\n",
        "web-config: tls_server_config.client_ca_file: a client CA needs a client_auth_type other than NoClientCert",
    ),
    (
        "{tls}client_allowed_sans: [a.example]\n",
        "web-config: tls_server_config.client_allowed_sans: needs client_auth_type RequireAndVerifyClientCert",
    ),
    (
        "{tls}min_version: TLS14\n",
        "web-config: tls_server_config.min_version: unknown TLS version 'TLS14' (one of TLS10, TLS11, TLS12, TLS13)",
    ),
    (
        "{tls}min_version: TLS13\n  max_version: TLS12\n",
        "web-config: tls_server_config: min_version TLS13 is above max_version TLS12",
    ),
    (
        "{tls}cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_RC4_128_SHA]\n",
        "web-config: tls_server_config.cipher_suites[1]: unknown cipher: TLS_RSA_WITH_RC4_128_SHA",
    ),
    (
        "{tls}curve_preferences: [CurveP256, X25519]\n",
        "web-config: tls_server_config.curve_preferences: Python's ssl sets a single curve; give one",
    ),
    (
        "{tls}curve_preferences: [X448]\n",
        "web-config: tls_server_config.curve_preferences[0]: unknown curve: X448 (one of CurveP256, CurveP384, "
        "CurveP521, X25519)",
    ),
    (
        "{tls}cipher_suites: TLS_AES_128_GCM_SHA256\n",
        "web-config: tls_server_config.cipher_suites: must be a list of strings",
    ),
    (
        "tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n",
        "web-config: tls_server_config.cert_file: cannot read {dir}/missing.crt: no such file",
    ),
    (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
        "web-config: tls_server_config: cannot load the certificate and key: [X509: KEY_VALUES_MISMATCH] key values "
        "mismatch",
    ),
    (
        "{tls}client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: server.key\n",
        "web-config: tls_server_config.client_ca_file: cannot load CA certificates {dir}/server.key: [X509: "
        "NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found",
    ),
    (
        "basic_auth_users:\n  alice: x\n  alice: y\n",
        "web-config: {file}: line 3: not valid YAML: duplicate key 'alice'",
    ),
    (
        "tls_server_config: [\n",
        "web-config: {file}: line 2: not valid YAML: expected the node content, but found '<stream end>'",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_an_invalid_web_config_is_refused_with_a_message_naming_the_key(certs: Certs, text: str, message: str) -> None:
    path = write(certs.dir, text.replace("{tls}", "tls_server_config:\n  cert_file: server.crt\n  "
                                         "key_file: server.key\n  "), name="bad.yml")  # fmt: skip
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert str(caught.value) == message.format(dir=certs.dir, file=path)


def test_a_missing_web_config_file_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError) as caught:
        load_web_config(tmp_path / "nope.yml")
    assert str(caught.value) == f"web-config: {tmp_path}/nope.yml: cannot read: No such file or directory"


def test_an_encrypted_key_is_refused_instead_of_prompting_for_a_password(certs: Certs, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(certs.server.key.read_bytes(), None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    ))  # fmt: skip
    path = write(tmp_path, f"tls_server_config:\n  cert_file: {certs.server.cert}\n  key_file: encrypted.key\n")
    with pytest.raises(WebConfigError) as caught:
        load_web_config(path)
    assert str(caught.value) == "web-config: tls_server_config: the key is encrypted; give an unencrypted key"
