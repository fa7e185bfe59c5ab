"""The spec of each probe kind's check (http, tcp, tls, dns, icmp, heartbeat) and what a flow step extracts.

A spec is a frozen model of what to probe and what a good answer looks like; ``target``
names what it probes and ``with_target`` aims it elsewhere (``/probe?target=``). Which
kinds exist, and which may be flow steps, is the table in ``slaprobe.kinds``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SecretStr, model_validator

from slaprobe.fields import (
    Duration,
    HostPort,
    HttpUrl,
    IpProtocol,
    Model,
    Regex,
    RegexList,
    Size,
    check_host_port,
    check_http_url,
    with_default_port,
)


class TLSConfig(Model):
    """Client TLS settings and certificate assertions."""

    ca_file: str | None = Field(None, description="PEM bundle of CAs to trust instead of the system store")
    cert_file: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: str | None = Field(None, description="client key (PEM) for mutual TLS")
    insecure_skip_verify: bool = Field(False, description="do not verify the server certificate")
    server_name: str | None = Field(None, description="SNI and name to verify, if not the target host")
    min_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None
    max_version: Literal["TLS10", "TLS11", "TLS12", "TLS13"] | None = None
    min_days_left: float | None = Field(
        None, ge=0, description="fail when the leaf certificate expires in fewer days than this"
    )

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class JsonAssertion(Model):
    """An assertion on one value of a JSON body, addressed by a JSONPath such as ``$.a.b[0]``."""

    path: str = Field(pattern=r"^\$", description="JSONPath subset: $.key, $['key'], [index]")
    equals: Any = Field(None, description="the value must equal this (JSON comparison)")
    matches: Regex | None = Field(None, description="the value, as text, must match this regex")
    exists: bool = Field(True, description="false: the path must not exist")


class HeaderAssertion(Model):
    """A regex that a response header must (or must not) match."""

    name: str
    regex: Regex
    negate: bool = Field(False, description="fail when the header matches instead")
    allow_missing: bool = False


class HttpExpect(Model):
    """What a successful HTTP response looks like."""

    status: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="accepted status codes; empty means any 2xx"
    )
    body_regex: RegexList = Field(default_factory=list, description="the body must match each")
    body_not_regex: RegexList = Field(default_factory=list, description="the body must match none")
    json_: list[JsonAssertion] = Field(default_factory=list, alias="json")
    headers: list[HeaderAssertion] = Field(default_factory=list)
    max_duration: Duration | None = Field(None, description="fail when the probe takes longer")
    degraded_duration: Duration | None = Field(None, description="a success slower than this counts as degraded")
    ssl: bool | None = Field(None, description="true: fail unless the final hop used TLS; false: fail if it did")
    cel: str | None = Field(None, description="CEL expression over `body` (the JSON body) that must be true")
    cel_not: str | None = Field(None, description="CEL expression over `body` (the JSON body) that must not be true")
    http_version: list[Literal["HTTP/1.0", "HTTP/1.1", "HTTP/2.0"]] = Field(default_factory=list)


class BasicAuth(Model):
    """HTTP basic-auth credentials (use ${file:...} or ${env:...} for the password)."""

    username: str
    password: str = ""


class HttpHeader(Model):
    """Values of one request header added after ``headers`` (blackbox's ``http_headers``)."""

    values: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list, description="values never shown (use ${env:X} or ${file:P})")
    files: list[str] = Field(default_factory=list, description="files read at each request, surrounding space stripped")


class OAuth2(Model):
    """OAuth 2.0 client credentials: a token is fetched from ``token_url`` before each probe."""

    client_id: str
    client_secret: str = Field("", description="use ${env:X} or ${file:P}")
    token_url: str
    scopes: list[str] = Field(default_factory=list)
    endpoint_params: dict[str, str] = Field(default_factory=dict, description="extra form fields of the token request")


class HttpSpec(Model):
    """An HTTP(S) request and the assertions on its response."""

    url: HttpUrl
    method: str = Field("GET", pattern=r"^[A-Z]+$")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = Field(None, alias="json", description="request body, sent as JSON")
    basic_auth: BasicAuth | None = None
    follow_redirects: bool = True
    max_redirects: int = Field(10, ge=0, le=100)
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    proxy: str | None = Field(None, description="HTTP proxy URL")
    proxy_connect_headers: dict[str, list[str]] = Field(
        default_factory=dict, description="headers of the proxy CONNECT request (https targets)"
    )
    skip_resolve_phase_with_proxy: bool = Field(False, description="with a proxy: let the proxy resolve the target")
    proxy_from_environment: bool = Field(False, description="take the proxy from HTTP_PROXY, HTTPS_PROXY, NO_PROXY")
    no_proxy: str | None = Field(None, description="comma-separated hosts, domains and CIDRs reached without the proxy")
    http_headers: dict[str, HttpHeader] = Field(default_factory=dict, description="headers added after `headers`")
    oauth2: OAuth2 | None = None
    enable_http2: bool = Field(False, description="offer HTTP/2 by ALPN on https (blackbox modules: on by default)")
    source_ip_address: str | None = Field(None, description="local address to connect from")
    tls: TLSConfig = TLSConfig()
    body_size_limit: Size = Field(10 * 1024 * 1024, description="read at most this many body bytes; 0: no limit")
    compression: Literal["gzip", "deflate", "br", "identity"] | None = Field(
        None,
        description="ask for this Content-Encoding and decode the body with it (blackbox's compression);"
        " unset: a body is matched and measured as sent",
    )
    expect: HttpExpect = HttpExpect()

    @model_validator(mode="after")
    def _one_body(self) -> HttpSpec:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give body or json, not both")
        return self

    def with_target(self, target: str) -> HttpSpec:
        """This spec aimed at ``target`` (a URL, or host[:port] meaning http://)."""
        url = target if "://" in target else f"http://{target}"
        return self.model_copy(update={"url": check_http_url(url)})

    @property
    def target(self) -> str:
        return self.url


class TcpStep(Model):
    """One exchange of a TCP dialogue: wait for ``expect`` (or ``expect_bytes``), then ``send``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, ser_json_bytes="base64")

    expect: Regex | None = Field(None, description="regex a received line must match")
    expect_bytes: bytes | None = Field(None, description="bytes the peer must send next, compared exactly")
    labels: dict[str, str] = Field(
        default_factory=dict, description="probe_expect_info labels; values may use expect's groups (${1})"
    )
    send: str | bytes | None = Field(
        None, description="text (or !!binary bytes) to send; ${1} refers to expect's groups"
    )
    starttls: bool = Field(False, description="upgrade the connection to TLS here")


class TcpSpec(Model):
    """A TCP connection, optionally TLS, with an optional send/expect dialogue."""

    address: HostPort
    dialogue: list[TcpStep] = Field(default_factory=list)
    tls: TLSConfig | None = Field(None, description="present: speak TLS from the start")
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = Field(None, description="local address to connect from")

    def with_target(self, target: str) -> TcpSpec:
        """This spec aimed at ``target`` (host:port)."""
        return self.model_copy(update={"address": check_host_port(target)})

    @property
    def target(self) -> str:
        return self.address


class UnixSpec(Model):
    """A unix stream socket, optionally TLS, with an optional send/expect dialogue (as tcp)."""

    path: str = Field(min_length=1, description="the socket's path")
    dialogue: list[TcpStep] = Field(default_factory=list)
    tls: TLSConfig | None = Field(None, description="present: speak TLS from the start")

    def with_target(self, target: str) -> UnixSpec:
        """This spec aimed at the socket ``target``."""
        return self.model_copy(update={"path": target})

    @property
    def target(self) -> str:
        return self.path


class GrpcSpec(Model):
    """A gRPC health check (grpc.health.v1 ``Check``) of ``service`` at ``address``."""

    address: HostPort
    service: str = Field("", description="the service to ask about; empty: the server as a whole")
    tls: TLSConfig | None = Field(None, description="present: connect with TLS")
    metadata: dict[str, list[str]] = Field(default_factory=dict, description="request metadata (headers)")
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True

    def with_target(self, target: str) -> GrpcSpec:
        """This spec aimed at ``target`` (host:port, or a URL whose scheme is dropped, as blackbox)."""
        hostport = target.split("://", 1)[1].split("/", 1)[0] if "://" in target else target
        address = with_default_port(hostport, 443 if self.tls else 80)
        return self.model_copy(update={"address": check_host_port(address)})

    @property
    def target(self) -> str:
        return self.address


class WebsocketSpec(Model):
    """A websocket upgrade at ``url`` (ws:// or wss://), then an expect/send message dialogue."""

    url: str = Field(pattern=r"^wss?://[^/]", description="ws:// or wss:// URL")
    headers: dict[str, list[str]] = Field(default_factory=dict, description="headers of the upgrade request")
    basic_auth: BasicAuth | None = None
    tls: TLSConfig = TLSConfig()
    dialogue: list[TcpStep] = Field(default_factory=list, description="expect matches a whole message")
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True

    def with_target(self, target: str) -> WebsocketSpec:
        """This spec aimed at ``target`` (a ws:// or wss:// URL; host[:port] means ws://)."""
        url = target if "://" in target else f"ws://{target}"
        if not url.startswith(("ws://", "wss://")):
            raise ValueError(f"not a websocket URL: {target!r}")
        return self.model_copy(update={"url": url})

    @property
    def target(self) -> str:
        return self.url


class TlsExpect(Model):
    """Assertions on a TLS handshake beyond a valid certificate."""

    versions: list[Literal["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"]] = Field(default_factory=list)
    cipher_regex: Regex | None = None
    degraded_duration: Duration | None = Field(None, description="a success slower than this counts as degraded")


class TlsSpec(TLSConfig):
    """A TLS handshake: certificate expiry (leaf and chain), version and cipher."""

    address: HostPort
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    expect: TlsExpect = TlsExpect()

    def with_target(self, target: str) -> TlsSpec:
        """This spec aimed at ``target`` (host:port)."""
        return self.model_copy(update={"address": check_host_port(target)})

    @property
    def target(self) -> str:
        return self.address


class DnsRecordAssertion(Model):
    """Regexes over the records of one DNS section (each record as zone-file text)."""

    fail_if_matches_regexp: RegexList = Field(default_factory=list)
    fail_if_all_match_regexp: RegexList = Field(default_factory=list)
    fail_if_not_matches_regexp: RegexList = Field(default_factory=list)
    fail_if_none_matches_regexp: RegexList = Field(default_factory=list)


class DnsExpect(Model):
    """What a successful DNS answer looks like."""

    rcode: list[str] = Field(default_factory=lambda: ["NOERROR"])
    answer: DnsRecordAssertion = DnsRecordAssertion()
    authority: DnsRecordAssertion = DnsRecordAssertion()
    additional: DnsRecordAssertion = DnsRecordAssertion()
    min_answers: int = Field(0, ge=0, description="fail with fewer answer records")
    degraded_duration: Duration | None = Field(None, description="a success slower than this counts as degraded")


class DnsSpec(Model):
    """A DNS query sent to ``server`` over UDP or TCP."""

    query: str
    type: str = Field("A", pattern=r"^[A-Z0-9]+$")
    query_class: str = "IN"
    server: HostPort | None = Field(None, description="host:port; default: first nameserver of resolv.conf")
    transport: Literal["udp", "tcp"] = "udp"
    dns_over_tls: TLSConfig | None = Field(None, description="present: DNS over TLS (tcp transport, port 853)")
    source_ip_address: str | None = Field(None, description="local address to send from")
    recursion_desired: bool = True
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    expect: DnsExpect = DnsExpect()

    def with_target(self, target: str) -> DnsSpec:
        """This spec sent to ``target`` (a server: host or host:port, port 53 by default)."""
        server = with_default_port(target, 53 if self.dns_over_tls is None else 853)
        return self.model_copy(update={"server": check_host_port(server)})

    @property
    def target(self) -> str:
        return self.server or "resolv.conf"


class IcmpExpect(Model):
    """Loss and round-trip limits of an ICMP probe."""

    max_loss_ratio: float = Field(0.99, ge=0, le=1, description="fail when more packets are lost")
    max_rtt: Duration | None = Field(None, description="fail when the average RTT is higher")
    degraded_duration: Duration | None = Field(None, description="a success slower than this counts as degraded")


class IcmpSpec(Model):
    """N ICMP echo requests: loss ratio, min/avg/max RTT and jitter."""

    host: str
    packets: int = Field(3, ge=1, le=100)
    packet_interval: Duration = Field(0.1, description="time between echo requests")
    payload_size: int = Field(56, ge=0, le=65000)
    ttl: int | None = Field(None, ge=1, le=255)
    dont_fragment: bool = Field(False, description="set the DF bit (IPv4)")
    source_ip_address: str | None = Field(None, description="local address to send from")
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    expect: IcmpExpect = IcmpExpect()

    def with_target(self, target: str) -> IcmpSpec:
        """This spec aimed at ``target`` (a host)."""
        return self.model_copy(update={"host": target})

    @property
    def target(self) -> str:
        return self.host


class Extract(Model):
    """Where a flow variable comes from: a JSONPath, a header, or a regex group."""

    json_: str | None = Field(None, alias="json", pattern=r"^\$")
    header: str | None = None
    regex: Regex | None = Field(None, description="first group (or whole match) of the body")

    @model_validator(mode="after")
    def _exactly_one(self) -> Extract:
        if sum(x is not None for x in (self.json_, self.header, self.regex)) != 1:
            raise ValueError("give exactly one of json, header, regex")
        return self


class HeartbeatSpec(Model):
    """A push monitor: a ping expected at ``/push/<service>/<probe>`` every ``every``.

    Each ping is a run (``status=up|down``); no ping within ``every`` + ``grace`` of the last
    one (or of the start) is a failed run, reason ``missed_heartbeat``, and so is each
    further ``every`` without one. The token is a secret: write it as ``${env:X}``.
    """

    every: Duration = Field(gt=0, description="a ping is expected this often")
    grace: Duration = Field(60.0, ge=0, description="how late a ping may be before the period counts as missed")
    token: SecretStr = Field(
        description="pings carry it as Authorization: Bearer <token> (or ?token=); use ${env:X} or ${file:P}"
    )

    @property
    def target(self) -> str:
        return "push"
