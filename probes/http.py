"""The HTTP(S) probe: one request (following redirects), timed by phase, checked against ``expect``.

Each hop's request and response go through one of two transports, chosen once per probe:
aiohttp (the default), or ``httpwire``, a lean HTTP/1.1 client on httptools, when
``LEAN_TRANSPORT`` or ``ctx.extras[HTTP_TRANSPORT]`` asks for it and the probe needs nothing
it lacks: no proxy, no configured Transfer-Encoding, Content-Length, TE, Expect or Upgrade
header, no Accept-Encoding beyond gzip and deflate (``_HttpProbe.lean``). Resolution, the
guard, redirects, cookies, assertions, certificates and samples are the same code for both.

Every hop is resolved by ``resolve_host`` (family preference, fallback, the SSRF guard) and
the connection goes to exactly that address: a custom aiohttp connector dials the IP the
guard saw, so DNS rebinding between the check and the connect cannot slip past it. The
same connector splits TCP connect from the TLS handshake for the ``connect`` and ``tls``
phases. Connections are never reused between probes, like blackbox_exporter.

Phases (seconds, summed over redirects, as blackbox names them): ``resolve``, ``connect``,
``tls``, ``processing`` (connection ready -> response headers) and ``transfer`` (response
headers -> body read). Unlike blackbox, ``tls`` is the handshake alone, not TCP + TLS.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import functools
import ipaddress
import json
import re
import socket
import ssl
import time
import urllib.request
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from slaprobe import __version__
from slaprobe import conventions as names
from slaprobe.config import HeaderAssertion, HttpSpec, JsonAssertion
from slaprobe.jsonpath import JsonPathError, find, json_equal
from slaprobe.probes import httpwire, tlsutil
from slaprobe.probes.celmatch import evaluate_cel
from slaprobe.probes.reasons import first_line, os_reason, ssl_cause
from slaprobe.probes.resolve import ResolveError, address_samples, resolve_host, unresolved_samples
from slaprobe.probes.result import (
    CertInfo,
    FailureReason,
    ProbeContext,
    ProbeResult,
    ProbeTrace,
    Sample,
)

PHASES = ("resolve", "connect", "tls", "processing", "transfer")

COOKIE_JAR = "http_cookie_jar"
"""``ctx.extras`` key: an ``aiohttp.abc.AbstractCookieJar`` to use instead of a fresh one
per probe (flow steps share cookies this way)."""

RESPONSE_CAPTURE = "http_response_capture"
"""``ctx.extras`` key: a ``ResponseCapture`` that the probe fills with the final response
(flow steps extract variables from it)."""

LEAN_TRANSPORT = True
"""Use ``httpwire`` for the probes it supports; False: aiohttp for every probe.

On: measured client CPU per probe against loopback nginx was 1.35-1.6x lower with httpwire
(262 vs 353 us sequential, 221 vs 318 us with 32 in flight) and 1.41x lower in scheduled mode
(451 vs 637 us; 2220 vs 1571 probes per CPU-second, blackbox 1874 in the same run). Both
transports pass the same tests (tests/probes/test_httpwire.py runs test_http.py on the other)."""

HTTP_TRANSPORT = "http_transport"
"""``ctx.extras`` key: "wire" or "aiohttp" chooses the transport for this probe, overriding
``LEAN_TRANSPORT`` (a probe httpwire does not support still goes through aiohttp)."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_USER_AGENT = f"slaprobe/{__version__}"
_SKIP_AUTO_HEADERS = frozenset({"Accept-Encoding", "Content-Type"})
# Headers that must not follow a redirect to another host (Go's http client drops them too);
# so does every header holding one of ``ProbeContext.secrets``.
_CREDENTIAL_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
# Bytes of body held in memory for matching when body_size_limit is 0 ("no limit", blackbox's
# default): a body that must be matched is read whole, so without this one target could make
# a probe hold gigabytes. Bodies that need no matching are streamed and counted, never held.
MAX_HELD_BODY = 10 * 1024 * 1024


if TYPE_CHECKING:  # http2 (httpcore, h2) is imported by the first probe with enable_http2: 0.09 s at start
    from slaprobe.probes import http2

    _Response = aiohttp.ClientResponse | httpwire.WireResponse | http2.H2Response  # one hop's response, by transport


class _Failed(Exception):
    """A target fault found mid-probe; ``probe_http`` turns it into a failed result."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class ResponseCapture:
    """The final response's headers and body, kept for the caller when the body has been read."""

    keep_body: bool = True  # False: headers only, the body is not held in memory
    headers: CIMultiDictProxy[str] | None = None  # None until a response was read in full
    body: bytes = b""
    charset: str | None = None


# ---------------------------------------------------------------------------- the probe


async def probe_http(spec: HttpSpec, ctx: ProbeContext) -> ProbeResult:
    """Request ``spec.url``, follow redirects, read the body and check ``spec.expect``."""
    probe = _HttpProbe(spec, ctx)
    try:
        return await probe.run()
    except BaseException:
        # Cancelled by the runner's deadline (or refused by the guard): keep what we know.
        probe.publish_samples()
        raise


class _HttpProbe:
    """The state of one probe run: what was learned so far, turned into samples at the end."""

    def __init__(self, spec: HttpSpec, ctx: ProbeContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.trace = ctx.trace
        self.debug = ctx.trace.debug
        self.status = 0
        self.version: tuple[int, int] | None = None
        self.content_length = 0.0  # blackbox's value until a response came
        self.body_length = 0
        self.redirects = 0
        self.final_ssl = False
        self.last_modified: float | None = None
        self.failed_due_to_regex = False
        self.failed_due_to_cel = False
        self.cert: CertInfo | None = None
        self.tls_samples: tuple[Sample, ...] = ()
        self.published = False
        self.jar: aiohttp.abc.AbstractCookieJar | None = ctx.extras.get(COOKIE_JAR)  # lean transport only
        self.h2_open: list[http2.H2Response] = []  # closed when the probe ends
        for phase in PHASES:
            self.trace.phases.setdefault(phase, 0.0)

    def lean(self) -> bool:
        """Whether this probe's hops go through ``httpwire`` (else through aiohttp)."""
        choice = self.ctx.extras.get(HTTP_TRANSPORT)
        wanted = LEAN_TRANSPORT if choice is None else choice == "wire"
        return (
            wanted
            and httpwire.AVAILABLE
            and not self.spec.proxy
            and not self.spec.proxy_from_environment
            and not self.spec.source_ip_address  # httpwire binds no local address
            and self.spec.compression != "br"  # httpwire decodes gzip and deflate only
            and httpwire.supports_headers(self.spec.headers)
        )

    def decode(self) -> bool:
        """Whether a compressed body is decoded: only when ``compression`` asks for a coding (as blackbox)."""
        return self.spec.compression not in (None, "identity")

    async def run(self) -> ProbeResult:
        """The whole probe; target faults come back as a failed result."""
        session: aiohttp.ClientSession | None = None
        if not self.lean():
            session = aiohttp.ClientSession(
                connector=_connector(),
                connector_owner=False,
                cookie_jar=aiohttp.CookieJar(unsafe=True) if self.jar is None else self.jar,
                auto_decompress=self.decode(),
                skip_auto_headers=_SKIP_AUTO_HEADERS,
                timeout=aiohttp.ClientTimeout(total=None),  # the caller owns the deadline
            )
            # aiohttp retries an idempotent request once when the server drops the connection;
            # a probe must see that failure, not hide it behind a second attempt.
            session._retry_connection = False
        try:
            response = await self.request(session)
            if self.ctx.want_samples:  # only blackbox's last-modified sample needs it
                self.last_modified = _last_modified(response)
            try:
                body = await self.read_body(response)
            finally:
                response.close()
            if (capture := self.ctx.extras.get(RESPONSE_CAPTURE)) is not None:
                capture.headers, capture.body, capture.charset = response.headers, body, response.charset
            self.check(response, body)
        except _Failed as failure:
            if self.debug:
                self.trace.log(f"failed ({failure.reason}): {failure.detail}")
            return self.result(failure.reason, failure.detail)
        finally:
            if session is not None:
                await session.close()
            for open_response in self.h2_open:
                await open_response.aclose()
        return self.result(None, "")

    # ------------------------------------------------------------------------ request

    async def request(self, session: aiohttp.ClientSession | None) -> _Response:
        """Send the request hop by hop (``session`` None: over httpwire); the final response
        with its body still unread."""
        spec = self.spec
        url = _parsed_url(spec.url)
        origin_host = url.raw_host
        method = spec.method
        headers = self.base_headers()
        if spec.oauth2 is not None:
            headers["Authorization"] = await self.oauth2_token()
        if url.raw_user is not None:  # user:password@ in the URL is basic auth, unless given apart
            if "Authorization" not in headers:
                headers["Authorization"] = _basic_auth(url.user or "", url.password or "")
            url = url.with_user(None)
        body = _request_body(spec)
        while True:
            same_host = url.raw_host == origin_host
            response = await self.send(session, method, url, headers, body, same_host)
            location = response.headers.get("Location")
            if not (response.status in _REDIRECTS and location):
                return response
            # Counted as blackbox counts them: every redirect received, followed or not (so
            # 1 with follow_redirects off, max_redirects + 1 on a loop).
            self.redirects += 1
            if not spec.follow_redirects:
                return response
            response.close()
            if self.redirects > spec.max_redirects:
                raise _Failed(FailureReason.REDIRECTS, f"more than {spec.max_redirects} redirects")
            target = _redirect_target(url, location)
            if self.debug:
                self.trace.log(f"redirect {response.status} to {_loggable(target)}")
            if (response.status == 303 and method != "HEAD") or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers.popall("Content-Type", None)
            if target.raw_host != url.raw_host or (
                target.scheme != url.scheme and not (url.scheme == "http" and target.scheme == "https")
            ):
                _drop_credentials(headers, self.ctx.secrets)
            url = target

    def base_headers(self) -> CIMultiDict[str]:
        """The request headers of the first hop (user headers, auth, user agent, body type)."""
        spec = self.spec
        headers: CIMultiDict[str] = CIMultiDict(spec.headers)
        headers.setdefault("User-Agent", _USER_AGENT)
        if spec.compression is not None:
            headers.setdefault("Accept-Encoding", spec.compression)
        if spec.basic_auth is not None:
            headers["Authorization"] = _basic_auth(spec.basic_auth.username, spec.basic_auth.password)
        if spec.json_body is not None:
            headers.setdefault("Content-Type", "application/json")
        for name, header in spec.http_headers.items():  # added after headers, as prometheus/common does
            for value in (*header.values, *header.secrets):
                headers.add(name, value)
            for path in header.files:  # read at each request
                try:
                    headers.add(name, Path(path).read_text(encoding="utf-8").strip())
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    raise _Failed(FailureReason.PERMISSION, f"unable to read headers file {path}: {reason}") from None
        return headers

    async def oauth2_token(self) -> str:
        """``Authorization`` for this probe: a client-credentials token fetched from ``token_url``.

        As golang.org/x/oauth2's clientcredentials: the client id and secret go in a basic-auth
        header first; a 400 or 401 answer is retried once with them in the form instead.
        """
        oauth = self.spec.oauth2
        assert oauth is not None
        form = {"grant_type": "client_credentials", **oauth.endpoint_params}
        if oauth.scopes:
            form["scope"] = " ".join(oauth.scopes)
        started = time.monotonic()
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
                auth = {"Authorization": _basic_auth(_quote_form(oauth.client_id), _quote_form(oauth.client_secret))}
                async with session.post(oauth.token_url, data=form, headers=auth) as response:
                    status, payload = response.status, await response.read()
                if status in (400, 401):
                    in_form = {**form, "client_id": oauth.client_id, "client_secret": oauth.client_secret}
                    async with session.post(oauth.token_url, data=in_form) as response:
                        status, payload = response.status, await response.read()
        except (aiohttp.ClientError, OSError) as exc:
            raise _Failed(FailureReason.CONNECT, f"oauth2 token request failed: {first_line(str(exc))}") from None
        finally:
            if self.debug:
                self.trace.log(f"oauth2 token request took {time.monotonic() - started:.3f}s")
        if not 200 <= status < 300:
            raise _Failed(FailureReason.HTTP_STATUS, f"oauth2 token endpoint answered {status}")
        try:
            token = json.loads(payload)
            access, kind = token["access_token"], str(token.get("token_type") or "Bearer")
            if not isinstance(access, str) or not access:
                raise ValueError("no access_token")
        except (ValueError, KeyError, TypeError) as exc:
            raise _Failed(FailureReason.PROTOCOL, f"oauth2 token endpoint answered no token: {exc}") from None
        kind = {"bearer": "Bearer", "mac": "MAC", "basic": "Basic"}.get(kind.lower(), kind)  # oauth2.Token.Type
        self.ctx.secrets |= {access}
        return f"{kind} {access}"

    async def send(
        self,
        session: aiohttp.ClientSession | None,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        same_host: bool,
    ) -> _Response:
        """One hop: resolve and guard, dial exactly that address, return the response head."""
        spec, ctx, trace = self.spec, self.ctx, self.trace
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        proxy = _proxy_for(spec, url)
        if proxy is not None and spec.skip_resolve_phase_with_proxy and ctx.guard is None:
            # The proxy resolves the target (blackbox reports no resolve samples then). Under
            # the /probe guard the target is still resolved, for the guard to judge its address.
            ip, family = host, 0
        else:
            ip, family = await self.resolve(host, ctx, first=self.redirects == 0, port=port)
        if proxy is not None:
            # The proxy comes from the config, not from the target: it is not guarded.
            proxy_host = proxy.raw_host or ""
            unguarded = ProbeContext(timeout=ctx.timeout, trace=trace, lookup=ctx.lookup)
            proxy_ip, proxy_family = await self.resolve(proxy_host, unguarded, first=False)
            dial = _Dial(proxy_host, proxy_ip, proxy_family, proxy.port or 80, trace, via_proxy=True)
        else:
            dial = _Dial(host, ip, family, port, trace)
        dial.source = spec.source_ip_address
        hop_headers = headers
        if not same_host and "Host" in headers:
            hop_headers = headers.copy()  # a Host override names the first host only
            hop_headers.popall("Host")
        elif same_host and ctx.hostname:
            hop_headers = headers.copy()
            hop_headers["Host"] = ctx.hostname
        if (unsafe := _unsafe_header(hop_headers)) is not None:
            # aiohttp refuses to send it (it would split the request); say so as a result, not a bug.
            raise _Failed(FailureReason.PROTOCOL, f"request header {unsafe} holds CR, LF or NUL; not sent")
        server_name: str | None = None
        tls = url.scheme == "https"
        ssl_context: ssl.SSLContext | bool = True
        if tls:
            # As blackbox: the hostname= override, else a configured Host header, names the
            # first host (SNI and the name verified); a redirect elsewhere uses its own host.
            override = (ctx.hostname or _host_without_port(spec.headers)) if same_host else None
            server_name = tlsutil.server_hostname(spec.tls, host, override)
            ssl_context = self.ssl_context()
        if self.debug:
            via = f" via proxy {dial.ip} port {dial.port}" if proxy is not None else ""
            trace.log(f"{method} {_loggable(url)}: dialling {ip} port {port}{via}")
        if tls and spec.enable_http2 and proxy is None:
            response: _Response = await self.exchange_h2(method, url, hop_headers, body, dial, server_name)
        elif session is None:
            wire_tls = ssl_context if isinstance(ssl_context, ssl.SSLContext) else None
            response = await self.exchange_wire(method, url, hop_headers, body, dial, wire_tls, server_name)
        else:
            response = await self.exchange_aiohttp(
                session, method, url, hop_headers, body, dial, ssl_context, server_name, proxy
            )
        self.status = response.status
        self.content_length = _content_length(response, method)
        self.version = (response.version[0], response.version[1]) if response.version else None
        self.final_ssl = tls
        if dial.handshake is not None:
            self.keep_handshake(dial.handshake)
        if self.debug:
            trace.log(f"response {response.status} {response.reason or ''} HTTP/{_version_text(self.version)}")
        return response

    async def exchange_wire(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        dial: _Dial,
        ssl_context: ssl.SSLContext | None,
        server_name: str | None,
    ) -> httpwire.WireResponse:
        """One hop's request and response head over httpwire (the lean transport)."""
        cookie = None
        if self.jar is not None and (cookies := self.jar.filter_cookies(url)):
            cookie = cookies.output(header="", sep=";").strip()  # as aiohttp writes it
        try:
            request = httpwire.build_request(method, url, headers, body, cookie)
            response = await httpwire.exchange(
                ip=dial.ip,
                family=dial.family,
                port=dial.port,
                request=request,
                head_only=method == "HEAD",
                trace=self.trace,
                ssl_context=ssl_context,
                server_hostname=server_name,
                decode=self.decode(),
            )
        except httpwire.WireError as exc:
            if exc.reason is FailureReason.TLS and server_name is not None:
                if exc.handshake is not None:  # refused after the handshake (TLS 1.3 client auth)
                    self.keep_handshake(exc.handshake)
                else:
                    await self.read_unverified_cert(dial, dial.ip, dial.port, server_name)
            raise _Failed(exc.reason, exc.detail) from exc
        dial.handshake = response.handshake
        if set_cookies := response.headers.getall("Set-Cookie", ()):
            if self.jar is None:
                self.jar = aiohttp.CookieJar(unsafe=True)
            _store_cookies(self.jar, set_cookies, url)
        return response

    async def exchange_h2(
        self,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        dial: _Dial,
        server_name: str | None,
    ) -> http2.H2Response:
        """One https hop offering h2 and http/1.1 by ALPN (``enable_http2``), over httpcore."""
        from slaprobe.probes import http2

        try:
            context = tlsutil.client_context(self.spec.tls, alpn=http2.ALPN)
        except tlsutil.TLSSettingsError as exc:
            raise _Failed(FailureReason.TLS, str(exc)) from exc
        hop_headers = headers.copy()
        if self.jar is not None and (cookies := self.jar.filter_cookies(url)):
            hop_headers["Cookie"] = cookies.output(header="", sep=";").strip()
        if "Host" in hop_headers:  # HTTP/2 names the host in :authority; httpcore takes it from Host
            hop_headers["Host"] = hop_headers.popall("Host")[-1]
        else:
            hop_headers["Host"] = url.raw_authority
        try:
            response = await http2.exchange(
                method=method,
                url=url,
                headers=hop_headers,
                body=body,
                ip=dial.ip,
                trace=self.trace,
                ssl_context=context,
                server_hostname=server_name,
                source=dial.source,
                decode=self.decode(),
            )
        except http2.Http2Error as exc:
            if exc.reason is FailureReason.TLS and server_name is not None:
                if exc.handshake is not None:
                    self.keep_handshake(exc.handshake)
                else:
                    await self.read_unverified_cert(dial, dial.ip, dial.port, server_name)
            raise _Failed(exc.reason, exc.detail) from exc
        self.h2_open.append(response)
        dial.handshake = response.handshake
        if set_cookies := response.headers.getall("Set-Cookie", ()):
            if self.jar is None:
                self.jar = aiohttp.CookieJar(unsafe=True)
            _store_cookies(self.jar, set_cookies, url)
        return response

    async def exchange_aiohttp(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: CIMultiDict[str],
        body: bytes | None,
        dial: _Dial,
        ssl_context: ssl.SSLContext | bool,
        server_name: str | None,
        proxy: URL | None,
    ) -> aiohttp.ClientResponse:
        """One hop's request and response head over aiohttp (through ``_ProbeConnector``)."""
        token = _DIAL.set(dial)
        proxy_headers = None
        if proxy is not None and url.scheme == "https" and self.spec.proxy_connect_headers:
            proxy_headers = CIMultiDict(
                (name, value) for name, values in self.spec.proxy_connect_headers.items() for value in values
            )
        try:
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body,
                allow_redirects=False,
                ssl=ssl_context,
                server_hostname=server_name,
                proxy=proxy,
                proxy_headers=proxy_headers,
            )
        except (aiohttp.ClientError, OSError) as exc:
            dial.end_processing()
            failure = _failure(exc, dial)
            if failure.reason is FailureReason.TLS and server_name is not None:
                if dial.handshake is not None:  # refused after the handshake (TLS 1.3 client auth)
                    self.keep_handshake(dial.handshake)
                else:
                    await self.read_unverified_cert(dial, dial.ip, dial.port, server_name)
            raise failure from exc
        finally:
            _DIAL.reset(token)
            dial.end_processing()
        return response

    async def resolve(self, host: str, ctx: ProbeContext, *, first: bool, port: int | None = None) -> tuple[str, int]:
        """Resolve ``host`` (guarded by ``ctx.guard``); the first hop also sets the address samples."""
        started = time.monotonic()
        try:
            ip, family = await resolve_host(
                host,
                ctx,
                preferred=self.spec.preferred_ip_protocol,
                fallback=self.spec.ip_protocol_fallback,
                port=port,
            )
        except ResolveError as exc:
            if first and self.ctx.want_samples:
                self.trace.samples += unresolved_samples(time.monotonic() - started)
            raise _Failed(FailureReason.DNS, str(exc)) from exc
        if first and self.ctx.want_samples:
            self.trace.samples += address_samples(ip, family, time.monotonic() - started)
        return ip, family

    def ssl_context(self) -> ssl.SSLContext:
        """The client SSLContext of ``spec.tls`` (cached by tlsutil)."""
        try:
            return tlsutil.client_context(self.spec.tls)
        except tlsutil.TLSSettingsError as exc:
            raise _Failed(FailureReason.TLS, str(exc)) from exc

    def keep_handshake(self, handshake: tlsutil.Handshake) -> None:
        """Keep the certificate and TLS samples of the latest handshake."""
        self.cert, self.tls_samples = handshake.cert, handshake.samples
        if self.debug:
            subject = handshake.cert.subject if handshake.cert else "none"
            self.trace.log(f"{handshake.version} {handshake.cipher}, certificate {subject}")

    async def read_unverified_cert(self, dial: _Dial, ip: str, port: int, server_name: str) -> None:
        """After a failed handshake, read the certificate without verifying it (blackbox cannot)."""
        if dial.via_proxy:
            return  # a second handshake would bypass the proxy; report the failure alone
        left = self.ctx.timeout - self.trace.elapsed() - 0.05
        handshake = await tlsutil.handshake_unverified(
            ip, port, self.spec.tls, server_name=server_name, timeout=min(left, 5.0)
        )
        if handshake is not None:
            self.cert = handshake.cert
            self.tls_samples = tuple(
                s for s in handshake.samples if s.name not in (names.BB_TLS_VERSION, names.BB_TLS_CIPHER)
            )

    # ------------------------------------------------------------------------ response

    async def read_body(self, response: _Response) -> bytes:
        """Stream the body, failing with body_limit as soon as it passes ``body_size_limit``
        (or, without one, as soon as a body held for matching passes ``MAX_HELD_BODY``)."""
        expect = self.spec.expect
        capture = self.ctx.extras.get(RESPONSE_CAPTURE)
        captured = capture is not None and capture.keep_body
        keep = bool(
            expect.body_regex or expect.body_not_regex or expect.json_ or expect.cel or expect.cel_not or captured
        )
        limit = self.spec.body_size_limit or (MAX_HELD_BODY if keep else 0)
        too_large = f"body larger than body_size_limit {limit} bytes"
        if not self.spec.body_size_limit:
            too_large = f"body larger than {limit} bytes, the most held for matching when body_size_limit is 0"
        chunks: list[bytes] = []
        total = 0
        started = time.monotonic()
        read = response.readany if not isinstance(response, aiohttp.ClientResponse) else response.content.readany
        try:
            while chunk := await read():
                total += len(chunk)
                if limit and total > limit:
                    self.body_length = limit
                    if self.status_failure() is not None:
                        break  # the status says more than the size does
                    raise _Failed(FailureReason.BODY_LIMIT, too_large)
                if keep:
                    chunks.append(chunk)
            else:
                self.body_length = total
        except (aiohttp.ClientError, OSError) as exc:
            raise _failure(exc, None) from exc
        except httpwire.WireError as exc:  # http2.Http2Error too
            raise _Failed(exc.reason, exc.detail) from exc
        finally:
            self.trace.add_phase("transfer", time.monotonic() - started)
        if self.debug:
            self.trace.log(f"read {total} body bytes")
        return b"".join(chunks)

    def status_failure(self) -> _Failed | None:
        """The http_status failure of the final response, if its status is not accepted."""
        accepted = self.spec.expect.status
        if accepted and self.status not in accepted:
            return _Failed(FailureReason.HTTP_STATUS, f"status {self.status} not in {accepted}")
        if not accepted and not 200 <= self.status < 300:
            return _Failed(FailureReason.HTTP_STATUS, f"status {self.status} is not 2xx")
        return None

    def check(self, response: _Response, body: bytes) -> None:
        """Raise ``_Failed`` for the first expectation the response does not meet."""
        expect = self.spec.expect
        if failure := self.status_failure():
            raise failure
        if expect.ssl is not None and expect.ssl != self.final_ssl:
            said = "was not" if expect.ssl else "was"
            raise _Failed(FailureReason.ASSERTION, f"final response {said} over TLS")
        version = f"HTTP/{_version_text(self.version)}"
        if expect.http_version and version not in expect.http_version:
            raise _Failed(FailureReason.ASSERTION, f"{version} not in {expect.http_version}")
        for assertion in expect.headers:
            if detail := _check_header(response.headers, assertion):
                self.failed_due_to_regex = True
                raise _Failed(FailureReason.ASSERTION, detail)
        if expect.body_regex or expect.body_not_regex:
            text = _text(body, response.charset)
            for pattern in expect.body_regex:
                if not re.search(pattern, text):
                    self.failed_due_to_regex = True
                    raise _Failed(FailureReason.ASSERTION, f"body does not match {pattern!r}")
            for pattern in expect.body_not_regex:
                if re.search(pattern, text):
                    self.failed_due_to_regex = True
                    raise _Failed(FailureReason.ASSERTION, f"body matches {pattern!r}")
        if expect.cel is not None or expect.cel_not is not None:
            self.check_cel(body)
        if expect.json_:
            _check_json(body, expect.json_)
        if detail := tlsutil.check_min_days_left(self.cert, self.spec.tls):
            raise _Failed(FailureReason.CERT_EXPIRY, detail)
        elapsed = self.trace.elapsed()
        if expect.max_duration is not None and elapsed > expect.max_duration:
            raise _Failed(FailureReason.SLOW, f"took {elapsed:.3f}s, more than max_duration {expect.max_duration:g}s")

    def check_cel(self, body: bytes) -> None:
        """blackbox's CEL matching: the JSON body must (``cel``) or must not (``cel_not``) match."""
        expect = self.spec.expect
        for expression, wanted in ((expect.cel_not, False), (expect.cel, True)):
            if expression is None:
                continue
            result, problem = evaluate_cel(expression, body)
            if result is None or result is not wanted:
                self.failed_due_to_cel = True
                said = "matches" if result else "does not match"
                raise _Failed(FailureReason.ASSERTION, problem or f"body {said} CEL expression {expression!r}")

    # ------------------------------------------------------------------------ result

    def publish_samples(self) -> None:
        """Append the HTTP samples to the trace (once), so a timed-out run keeps them too."""
        if self.published or not self.ctx.want_samples:
            return
        self.published = True
        trace = self.trace
        samples = trace.samples
        samples += [
            Sample(names.BB_HTTP_DURATION, trace.phases.get(phase, 0.0), (("phase", phase),)) for phase in PHASES
        ]
        samples += [
            Sample(names.BB_HTTP_STATUS, self.status),
            Sample(names.BB_HTTP_CONTENT_LENGTH, self.content_length),
            Sample(names.BB_HTTP_BODY_LENGTH, self.body_length),
            Sample(names.BB_HTTP_REDIRECTS, self.redirects),
            Sample(names.BB_HTTP_SSL, 1 if self.final_ssl else 0),
            Sample(names.BB_HTTP_VERSION, _version_number(self.version)),
            Sample(names.BB_FAILED_DUE_TO_REGEX, 1 if self.failed_due_to_regex else 0),
        ]
        if self.spec.expect.cel is not None or self.spec.expect.cel_not is not None:
            samples.append(Sample(names.BB_FAILED_DUE_TO_CEL, 1 if self.failed_due_to_cel else 0))
        if self.last_modified is not None:
            samples.append(Sample(names.BB_HTTP_LAST_MODIFIED, self.last_modified))
        samples += self.tls_samples

    def result(self, reason: FailureReason | None, detail: str) -> ProbeResult:
        """The probe's result: failed with ``reason``, or a success when it is None."""
        self.publish_samples()
        return self.trace.result(reason, detail, cert=self.cert)


# ---------------------------------------------------------------------------- assertions


def _check_header(headers: CIMultiDictProxy[str], assertion: HeaderAssertion) -> str | None:
    """A failure detail for one header assertion, or None. Never quotes the header's value."""
    values = headers.getall(assertion.name, [])
    if not values:
        return None if assertion.allow_missing else f"header {assertion.name} is missing"
    matched = any(re.search(assertion.regex, value) for value in values)
    if assertion.negate and matched:
        return f"header {assertion.name} matches {assertion.regex!r}"
    if not assertion.negate and not matched:
        return f"header {assertion.name} does not match {assertion.regex!r}"
    return None


def _check_json(body: bytes, assertions: list[JsonAssertion]) -> None:
    """Raise ``_Failed`` for the first JSON assertion the body does not meet.

    A path with ``[*]`` may address several values: ``equals`` and ``matches`` must then
    hold for every one of them, and ``exists`` needs at least one.
    """
    try:
        document = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _Failed(FailureReason.ASSERTION, f"body is not JSON: {exc}") from None
    for assertion in assertions:
        try:
            values = find(document, assertion.path)
        except JsonPathError as exc:
            raise _Failed(FailureReason.ASSERTION, str(exc)) from None
        path = assertion.path
        if not assertion.exists:
            if values:
                raise _Failed(FailureReason.ASSERTION, f"{path} exists")
            continue
        if not values:
            raise _Failed(FailureReason.ASSERTION, f"{path} does not exist")
        if "equals" in assertion.model_fields_set:
            for value in values:
                if not json_equal(value, assertion.equals):
                    raise _Failed(
                        FailureReason.ASSERTION,
                        f"{path} is {_short_json(value)}, not {_short_json(assertion.equals)}",
                    )
        if assertion.matches is not None:
            for value in values:
                text = value if isinstance(value, str) else json.dumps(value)
                if not re.search(assertion.matches, text):
                    raise _Failed(FailureReason.ASSERTION, f"{path} does not match {assertion.matches!r}")


def _short_json(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------- helpers


def _host_without_port(headers: Mapping[str, str]) -> str | None:
    """The configured Host header without a port (``shop.example:8443`` names shop.example)."""
    value = next((v for k, v in headers.items() if k.lower() == "host"), None)
    if not value:
        return None
    return URL(f"//{value}").raw_host or value


def _content_length(response: _Response, method: str) -> float:
    """``probe_http_content_length`` as Go's client gives it: 0 for a status that has no body
    (1xx, 204, 304), the Content-Length header otherwise, -1 when it is unknown (chunked)."""
    if response.status in (204, 304) or 100 <= response.status < 200:
        return 0.0
    return -1.0 if response.content_length is None else float(response.content_length)


def _last_modified(response: _Response) -> float | None:
    """The Last-Modified header in unix seconds; None when absent or unparseable (as blackbox)."""
    header = response.headers.get("Last-Modified")
    return _http_date(header) if header else None


@functools.lru_cache(maxsize=1024)  # keyed by the header text: targets repeat the same dates
def _http_date(header: str) -> float | None:
    with contextlib.suppress(TypeError, ValueError):
        return email.utils.parsedate_to_datetime(header).timestamp()
    return None


def _text(body: bytes, charset: str | None) -> str:
    """The body as text in its declared charset (UTF-8 if none or unknown)."""
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _unsafe_header(headers: CIMultiDict[str]) -> str | None:
    """The name (quoted) of the first header with CR, LF or NUL in its name or value, else None.

    A flow variable extracted from a response, or a configured value, may hold them.
    The value is never quoted: it may be a secret.
    """
    for name, value in headers.items():
        if any(char in name or char in value for char in "\r\n\x00"):
            return repr(name)[:64]
    return None


def _store_cookies(jar: aiohttp.abc.AbstractCookieJar, headers: list[str], url: URL) -> None:
    """Store a response's Set-Cookie fields in ``jar``, as aiohttp's session does."""
    update = getattr(jar, "update_cookies_from_headers", None)  # aiohttp >= 3.12
    if update is not None:
        update(headers, url)
        return
    cookies: SimpleCookie = SimpleCookie()
    for header in headers:
        with contextlib.suppress(CookieError):
            cookies.load(header)
    jar.update_cookies(cookies, url)


@functools.lru_cache(maxsize=16384)  # URLs are immutable; a scheduled probe parses the same one every run
def _parsed_url(text: str) -> URL:
    return URL(text)


def _quote_form(text: str) -> str:
    """x/oauth2 form-encodes the client id and secret inside the basic-auth header."""
    return urllib.parse.quote_plus(text)


def _proxy_for(spec: HttpSpec, url: URL) -> URL | None:
    """The proxy for ``url``: ``proxy``, or the environment's (``proxy_from_environment``),
    unless ``no_proxy`` (or NO_PROXY) names the host."""
    host = url.raw_host or ""
    if spec.proxy_from_environment:
        proxies = urllib.request.getproxies_environment()
        chosen = proxies.get(url.scheme)
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        if not chosen or bypass(host, proxies):
            return None
        return _parsed_url(chosen if "://" in chosen else f"http://{chosen}")
    if not spec.proxy:
        return None
    if spec.no_proxy and _bypasses(spec.no_proxy, host, url.port):
        return None
    return _parsed_url(spec.proxy)


def _bypasses(no_proxy: str, host: str, port: int | None) -> bool:
    """Whether ``host`` is in a Go-style NO_PROXY list (IPs, CIDRs, domains, each with an optional port)."""
    host = host.strip("[]").lower().rstrip(".")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and port is not None and entry_port != str(port):
            continue
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name.strip("[]"), strict=False):
                return True
            continue
        except ValueError:
            pass
        name = name.lstrip("*").rstrip(".")
        if host == name.lstrip(".") or (name and host.endswith(name if name.startswith(".") else f".{name}")):
            return True
    return False


def _drop_credentials(headers: CIMultiDict[str], secrets: frozenset[str]) -> None:
    """Remove what only the first host may see: credential headers and every header whose
    value holds a secret (a configured ``${env:}``/``${file:}`` value, as ``X-Api-Key``)."""
    for name in _CREDENTIAL_HEADERS:
        headers.popall(name, None)
    if secrets:
        for name in {name for name, value in headers.items() if any(secret in value for secret in secrets)}:
            headers.popall(name, None)


def _basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _request_body(spec: HttpSpec) -> bytes | None:
    if spec.json_body is not None:
        return json.dumps(spec.json_body, separators=(",", ":")).encode()
    return spec.body.encode() if spec.body is not None else None


def _redirect_target(url: URL, location: str) -> URL:
    """The absolute URL a Location header points to; protocol failure if it is not http(s)."""
    try:
        target = url.join(URL(location))
    except ValueError:
        raise _Failed(FailureReason.PROTOCOL, "redirect to an invalid Location") from None
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise _Failed(FailureReason.PROTOCOL, f"redirect to unsupported URL {_loggable(target)}")
    return target.with_user(None)  # credentials in a Location are not ours to send


def _loggable(url: URL) -> str:
    """The URL without credentials and query (either may hold secrets)."""
    if not url.absolute:  # a hostless Location (javascript:, mailto:) has no credentials to drop
        return str(url.with_query(None).with_fragment(None))
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _version_text(version: tuple[int, int] | None) -> str:
    return f"{version[0]}.{version[1]}" if version else "?"


def _version_number(version: tuple[int, int] | None) -> float:
    return float(f"{version[0]}.{version[1]}") if version else 0.0


def _failure(exc: BaseException, dial: _Dial | None) -> _Failed:
    """The failure reason and one-line detail for an exception raised by aiohttp."""
    where = f" {dial.ip} port {dial.port}" if dial is not None else ""
    peer = ("proxy" if dial.via_proxy else "target") if dial is not None else "peer"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return _Failed(FailureReason.TLS, tlsutil.describe_tls_error(exc.certificate_error))
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return _Failed(FailureReason.TLS, tlsutil.describe_tls_error(exc.os_error))
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        return _Failed(FailureReason.CONNECT, f"proxy refused the tunnel: {exc.status} {exc.message}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return _Failed(FailureReason.CONNECT, f"cannot connect to {peer}{where}: {os_reason(exc.os_error)}")
    if (tls_error := ssl_cause(exc)) is not None:
        return _Failed(FailureReason.TLS, tlsutil.describe_tls_error(tls_error))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return _Failed(FailureReason.CONNECT, f"{peer} closed the connection without responding")
    if isinstance(exc, aiohttp.ClientResponseError):
        return _Failed(FailureReason.PROTOCOL, f"invalid HTTP response: {first_line(exc.message)}")
    if isinstance(exc, aiohttp.ClientPayloadError) and "ConnectionResetError" in str(exc):
        # A reset mid-body reaches the reader either as ClientOSError or as this, by timing;
        # aiohttp keeps the reset only in the message. Either way it is connect, as httpwire says.
        return _Failed(FailureReason.CONNECT, f"connection to {peer}{where} failed: connection reset by peer")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _Failed(FailureReason.PROTOCOL, f"invalid HTTP body: {first_line(str(exc))}")
    if isinstance(exc, aiohttp.InvalidURL):
        return _Failed(FailureReason.PROTOCOL, f"invalid URL: {exc}")
    if isinstance(exc, OSError):
        return _Failed(FailureReason.CONNECT, f"connection to {peer}{where} failed: {os_reason(exc)}")
    return _Failed(FailureReason.CONNECT, f"connection to {peer}{where} failed: {first_line(str(exc))}")


# ---------------------------------------------------------------------------- the connector


@dataclass(slots=True)
class _Dial:
    """The one address the connector must dial for the request in flight."""

    host: str  # the name aiohttp asks the connector to resolve (the target's or the proxy's)
    ip: str
    family: int
    port: int
    trace: ProbeTrace
    via_proxy: bool = False
    source: str | None = None  # local address to bind before connecting
    connected: float = 0.0  # monotonic time the connection (TLS included) became usable
    handshake: tlsutil.Handshake | None = None  # read as soon as TLS is up, while it can be

    def record_handshake(self, transport: asyncio.BaseTransport) -> None:
        """Describe the TLS handshake of ``transport`` (verified unless verification was off)."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            verified = ssl_object.context.verify_mode != ssl.CERT_NONE
            self.handshake = tlsutil.describe_handshake(ssl_object, verified=verified)

    def end_processing(self) -> None:
        """Add the time since the connection became usable to ``processing`` (once)."""
        if self.connected:
            self.trace.add_phase("processing", time.monotonic() - self.connected)
            self.connected = 0.0


# Set by probe_http around each request; read by the connector in the same task.
_DIAL: ContextVar[_Dial] = ContextVar("slaprobe_http_dial")


class _ProbeConnector(aiohttp.TCPConnector):
    """A TCPConnector that dials only the address ``probe_http`` resolved and guarded.

    Private aiohttp hooks overridden (checked against aiohttp 3.14): ``_resolve_host``
    (answer with the guarded IP instead of resolving again), ``_wrap_create_connection``
    (connect the socket, then handshake TLS, timing each) and ``_start_tls_connection``
    (time the handshake through a CONNECT proxy). Everything else is stock aiohttp.
    """

    def __init__(self) -> None:
        super().__init__(
            force_close=True,  # a fresh connection per request, like blackbox
            limit=0,  # the scheduler bounds concurrency, not the connector
            use_dns_cache=False,
            resolver=aiohttp.ThreadedResolver(),  # never used: _resolve_host answers
        )

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[Any]:
        dial = _DIAL.get(None)
        if dial is None or host.rstrip(".") != dial.host.rstrip("."):
            # Fail closed: nothing but probe_http's guarded address may be dialled.
            raise RuntimeError(f"slaprobe http connector asked to dial {host!r} outside a probe")
        return [{"hostname": host, "host": dial.ip, "port": port, "family": dial.family, "proto": 0, "flags": 0}]

    async def _wrap_create_connection(
        self,
        *args: Any,
        addr_infos: list[Any],
        req: Any,
        timeout: Any,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
        **kwargs: Any,
    ) -> tuple[asyncio.Transport, Any]:
        dial = _DIAL.get()
        family, kind, proto, _, address = addr_infos[0]
        sock = socket.socket(family, kind, proto)
        started = time.monotonic()
        try:
            sock.setblocking(False)
            if dial.source:
                sock.bind((dial.source, 0))
            await self._loop.sock_connect(sock, address)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, OSError):
                raise client_error(req.connection_key, exc) from exc
            raise
        finally:
            dial.trace.add_phase("connect", time.monotonic() - started)
        tls = kwargs.get("ssl") is not None
        started = time.monotonic()
        try:
            transport, protocol = await self._loop.create_connection(*args, sock=sock, **kwargs)
        except ssl.CertificateError as exc:
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except OSError as exc:  # ssl.SSLError included; a reset mid-handshake is a TLS failure too
            if tls:
                raise aiohttp.ClientConnectorSSLError(req.connection_key, exc) from exc
            raise client_error(req.connection_key, exc) from exc
        finally:
            if tls:
                dial.trace.add_phase("tls", time.monotonic() - started)
        dial.connected = time.monotonic()
        if tls:
            dial.record_handshake(transport)
        return transport, protocol

    async def _start_tls_connection(
        self,
        underlying_transport: asyncio.Transport,
        req: Any,
        timeout: Any,
        client_error: type[Exception] = aiohttp.ClientConnectorError,
    ) -> tuple[asyncio.BaseTransport, Any]:
        dial = _DIAL.get()
        dial.connected = 0.0  # the CONNECT exchange is not processing time
        started = time.monotonic()
        try:
            connection = await super()._start_tls_connection(underlying_transport, req, timeout, client_error)
        finally:
            dial.trace.add_phase("tls", time.monotonic() - started)
        dial.connected = time.monotonic()
        dial.record_handshake(connection[0])
        return connection


_CONNECTORS: dict[asyncio.AbstractEventLoop, _ProbeConnector] = {}


def _connector() -> _ProbeConnector:
    """The connector of the running loop (one per loop; it holds no idle connections)."""
    loop = asyncio.get_running_loop()
    connector = _CONNECTORS.get(loop)
    if connector is None or connector.closed:
        for old in [old for old in _CONNECTORS if old.is_closed()]:
            del _CONNECTORS[old]
        connector = _CONNECTORS[loop] = _ProbeConnector()
    return connector
