"""The SSRF guard of ``/probe``: which targets may be probed and which addresses dialled.

``/probe`` is not an open proxy. A target is allowed when the config names it or the
allow-list (``--probe-allow`` plus ``global.probe_allow``) covers it. The allow-list
holds CIDRs (``10.0.0.0/8``; a bare address means its /32 or /128) and hostname globs
(``*.shop.example``, fnmatch syntax, matched case-insensitively against the whole
name, never against an address).

Two checks, two moments:

``ProbeGuard.check_target(target)`` runs before the probe, on the ``target`` query
parameter (a URL, ``host:port``, ``[v6]:port`` or a bare host). It refuses early, with
the 403 text, what can never pass: an address that would be refused below, or a
hostname that is neither configured nor matched by a glob when the allow-list has no
CIDR (so no address it resolves to could be allowed either). It is a
courtesy; the enforcement is the next check.

``ProbeGuard.address_guard()`` is the ``AddressGuard`` the probes call with
``(hostname, ip)`` for every IP they actually dial, every redirect hop included. The
dial of ``ip`` for ``hostname`` is allowed when

1. ``hostname`` is a hostname named in the config: any IP it resolves to is allowed
   (the operator chose that name and trusts its DNS); otherwise
2. every *view* of ``ip`` must be allowed. The views are the address itself (an
   IPv4-mapped ``::ffff:a.b.c.d`` is the IPv4 address) and the IPv4 address it embeds
   as 6to4 (``2002::/16``), NAT64 (``64:ff9b::/96``), Teredo (client), IPv4-compatible
   (``::a.b.c.d``) or IPv4-translated (``::ffff:0:a.b.c.d``). Each view is judged by the
   first rule that applies:

   a. ``hostname`` is itself an address (an address target, or a redirect to one) and
      the view is an address named in the config: allowed. (A name that merely
      resolves to a configured address gets no such pass.)
   b. the view lies in a *sensitive* range: allowed only if, for every sensitive range
      holding it, a CIDR of the allow-list that lies *inside* that range covers it; so
      ``0.0.0.0/0`` or ``169.254.0.0/16`` never opens the metadata address, only
      ``169.254.169.254/32`` does.
   c. the view lies in a CIDR of the allow-list: allowed, whatever the name.
   d. ``hostname`` (not an address) matches a glob and the view is in no internal
      range: allowed. A glob never opens an internal address; its CIDR does.
   e. anything else is refused.

Sensitive ranges: link-local ``169.254.0.0/16`` and ``fe80::/10``; the cloud metadata
addresses ``169.254.169.254`` (AWS, GCP, Azure, OpenStack, Oracle, ...),
``fd00:ec2::254`` (AWS IPv6), ``100.100.100.200`` (Alibaba Cloud) and
``168.63.129.16`` (Azure host). Internal ranges: ``0.0.0.0/8``, ``10.0.0.0/8``,
``100.64.0.0/10``, ``127.0.0.0/8``, ``172.16.0.0/12``, ``192.0.0.0/24``,
``192.0.2.0/24``, ``192.88.99.0/24``, ``192.168.0.0/16``, ``198.18.0.0/15``,
``198.51.100.0/24``, ``203.0.113.0/24``, ``224.0.0.0/4``, ``240.0.0.0/4``; ``::/128``,
``::1/128``, ``::/64``, ``64:ff9b:1::/48``, ``100::/64``, ``2001::/23``,
``2001:db8::/32``, ``3fff::/20``, ``fc00::/7``, ``fec0::/10``, ``ff00::/8``, plus the
sensitive ones.

Spellings are normalised before any comparison, the way the resolver and yarl would
read them: case, one trailing dot, IDNA (UTS 46, so full-width digits and the
ideographic full stop fold to ASCII), brackets and zone ids around IPv6, IPv4-mapped
IPv6, and every ``inet_aton`` spelling of IPv4 that ``getaddrinfo`` accepts
(``2130706433``, ``0x7f000001``, ``017700000001``, ``127.1``, ``0177.0.0.1``). An
address spelled any of these ways is an address, so a glob never allows it (rule 2d).

DNS rebinding: the check runs on the IP being dialled, each time it is dialled, and the
probes connect to the very IP they passed to the guard (``resolve_host`` returns it);
a name that answered a public address once and ``169.254.169.254`` the next time is
refused the second time, and no second lookup happens between check and connect.

Ports: the check is per host *and* port. A configured URL opens its host at its port
(the scheme's default when it names none), a configured ``host:port`` that port only; a
configured bare host (an ICMP target) opens no port. An allow-list entry may name ports
(``10.0.0.0/8:443``, ``[2001:db8::/32]:53``, ``*.shop.example:80-90``); without them it
opens every port, as before. A dial whose port the probe does not know (ICMP) is judged
by host alone. ``DialGuard.check`` receives the port of every dial, redirect hops included.

slaprobe's own listen address (the local address of the ``/probe`` request, see
``ProbeGuard.for_request``) is never dialled, whatever the config or the allow-list says,
so a target that redirects back into ``/probe`` cannot make it call itself.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import idna

from slaprobe.probes.result import DialGuard, ForbiddenTargetError

log = logging.getLogger("slaprobe.exporter.guard")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
PortRange = tuple[int, int]  # first and last port, inclusive
Ports = tuple[PortRange, ...] | None  # None: every port

_FIX = "or global.probe_allow"


@dataclass(frozen=True, slots=True)
class _Range:
    network: IPNetwork
    label: str  # reads after "is": "a private address", "the cloud metadata address"


def _ranges(*pairs: tuple[str, str]) -> tuple[_Range, ...]:
    return tuple(_Range(ipaddress.ip_network(cidr), label) for cidr, label in pairs)


# Most specific first: the first range holding an address names it in messages.
_SENSITIVE = _ranges(
    ("169.254.169.254/32", "the cloud metadata address"),
    ("fd00:ec2::254/128", "the AWS IPv6 metadata address"),
    ("100.100.100.200/32", "the Alibaba Cloud metadata address"),
    ("168.63.129.16/32", "the Azure host address"),
    ("169.254.0.0/16", "a link-local address"),
    ("fe80::/10", "a link-local address"),
)
_INTERNAL = _ranges(
    ("0.0.0.0/8", "a this-network address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a 6to4 relay address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible address"),
    ("::ffff:0:0:0/96", "an IPv4-translated address"),
    ("::/64", "a reserved address"),
    ("64:ff9b:1::/48", "a local NAT64 address"),
    ("100::/64", "a discard-only address"),
    ("2001:db8::/32", "a documentation address"),
    ("2001::/23", "an IETF protocol address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_HOSTNAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")
_ADDRESS_GLOB = re.compile(r"[0-9.*?\[\]!-]*[0-9][0-9.*?\[\]!-]*")


# ---------------------------------------------------------------------------- spellings


_PARSED: dict[str, IPAddress | None] = {}  # recent spellings: /probe parses the same few each request
_MAX_PARSED = 4096


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an address if the resolver would read it as one (any spelling), else None.

    Brackets, an IPv6 zone id and one trailing dot are dropped; IPv4-mapped IPv6 becomes
    IPv4; ``inet_aton`` forms (``2130706433``, ``0x7f000001``, ``0177.1``) are IPv4.
    """
    try:
        return _PARSED[text]
    except KeyError:
        pass
    parsed = _parse_ip(text)
    if len(_PARSED) < _MAX_PARSED:
        _PARSED[text] = parsed  # addresses are immutable: shared safely
    return parsed


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # zone id (fe80::1%eth0, or %25 as URLs spell it)
    if text.endswith("."):
        text = text[:-1]
    if not text or not text.isascii():
        return None
    try:
        return _unmapped(ipaddress.ip_address(text))
    except ValueError:
        pass
    value = _inet_aton(text)
    return None if value is None else ipaddress.IPv4Address(value)


def _inet_aton(text: str) -> int | None:
    """glibc's ``inet_aton``: 1-4 parts, each decimal, 0x-hex or 0-octal; the last fills the rest."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        try:
            if part[:2].lower() == "0x":
                number = int(part[2:], 16) if part[2:] else 0
            elif len(part) > 1 and part[0] == "0":
                number = int(part[1:], 8)
            else:
                number = int(part, 10)
        except ValueError:
            return None
        if not part.isalnum():  # int() tolerates "_" and signs; inet_aton does not
            return None
        numbers.append(number)
    *head, last = numbers
    if any(n > 0xFF for n in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    value = 0
    for n in head:
        value = value << 8 | n
    return value << (8 * (4 - len(head))) | last


def _unmapped(addr: IPAddress) -> IPAddress:
    if isinstance(addr, ipaddress.IPv6Address):
        addr = ipaddress.IPv6Address(int(addr))  # drops the zone id
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
    return addr


def normalise_hostname(host: str) -> str | None:
    """``host`` as the resolver sees it: lower-case ASCII (IDNA), no trailing dot; None if invalid."""
    host = host.strip()
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            try:  # yarl falls back to IDNA 2003 the same way
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                return None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    return host if _HOSTNAME.fullmatch(host) else None


def target_host(target: str) -> str:
    """The host part of a target: a URL, ``host:port``, ``[v6]:port``, a bare host or address."""
    target = target.strip()
    if "://" in target:
        try:
            return urlsplit(target).hostname or ""
        except ValueError:
            return ""
    if target.startswith("["):
        return target[1 : target.find("]")] if "]" in target else target
    if target.count(":") == 1:
        return target.split(":", 1)[0]
    return target


_SCHEME_PORTS = {"http": 80, "https": 443}


def target_port(target: str) -> int | None:
    """The port a target names: a URL's (or its scheme's default), ``host:port``'s; None for a bare host."""
    target = target.strip()
    if "://" in target:
        try:
            parts = urlsplit(target)
            return parts.port or _SCHEME_PORTS.get(parts.scheme.lower())
        except ValueError:
            return None
    if target.startswith("["):
        _, _, rest = target.partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif target.count(":") == 1:
        port = target.split(":", 1)[1]
    else:
        return None
    return int(port) if port.isdigit() and 0 < int(port) < 65536 else None


def _parse_ports(text: str, entry: str) -> PortRange:
    """``443`` or ``80-90`` as a port range; ValueError naming ``entry`` otherwise."""
    first, dash, last = text.partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise ValueError(f"probe_allow: not a port or port range: {entry!r} (443 or 80-90)")
    low, high = int(first), int(last) if dash else int(first)
    if not 0 < low <= high < 65536:
        raise ValueError(f"probe_allow: not a port or port range: {entry!r} (443 or 80-90)")
    return low, high


def _split_ports(entry: str) -> tuple[str, PortRange | None]:
    """An allow-list entry as (host part, its port range or None for every port)."""
    if entry.startswith("["):
        inside, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"probe_allow: not a CIDR: {entry!r}")
        return inside, _parse_ports(rest[1:], entry) if rest else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, _parse_ports(port, entry)
    return entry, None


def _admits(ports: Ports, port: int | None) -> bool:
    """Whether ``ports`` let ``port`` through (None: a dial without a port, judged by host)."""
    return ports is None or port is None or any(low <= port <= high for low, high in ports)


def _views(addr: IPAddress) -> list[IPAddress]:
    """The address and the IPv4 address it embeds (6to4, NAT64, Teredo, IPv4-compatible or -translated)."""
    views: list[IPAddress] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.sixtofour is not None:
            views.append(addr.sixtofour)
        if addr.teredo is not None:
            views.append(addr.teredo[1])
        if addr in _NAT64 or addr in _IPV4_TRANSLATED or (addr in _IPV4_COMPATIBLE and int(addr) > 1):
            views.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return views


def _first(ranges: tuple[_Range, ...], addr: IPAddress) -> _Range | None:
    return next((r for r in ranges if addr in r.network), None)


def _host_cidr(addr: IPAddress) -> str:
    return f"{addr}/{addr.max_prefixlen}"


# ---------------------------------------------------------------------------- allow-list


@dataclass(frozen=True, slots=True)
class AllowList:
    """CIDRs and hostname globs that open ``/probe`` to targets outside the config."""

    networks: tuple[IPNetwork, ...] = ()
    globs: tuple[str, ...] = ()
    ports: dict[IPNetwork | str, Ports] = field(default_factory=dict)  # per network or glob; absent: every port

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        """Read ``--probe-allow``/``global.probe_allow`` entries; raise ValueError naming a bad one."""
        ports: dict[IPNetwork | str, Ports] = {}
        for raw in entries:
            for entry in (e.strip() for e in raw.split(",")):
                if not entry:
                    continue
                host, port_range = _split_ports(entry)
                key: IPNetwork | str
                if "/" in host:
                    try:
                        network = ipaddress.ip_network(host, strict=False)
                    except ValueError:
                        raise ValueError(f"probe_allow: not a CIDR: {entry!r}") from None
                    key = _unmapped_network(network)
                elif (addr := parse_ip(host)) is not None:
                    key = ipaddress.ip_network(_host_cidr(addr))
                else:
                    key = _check_glob(host, entry)
                known = ports.get(key, ())
                if port_range is None or known is None:
                    ports[key] = None  # every port
                else:
                    ports[key] = (*known, port_range)
        networks = tuple(k for k in ports if not isinstance(k, str))
        globs = tuple(k for k in ports if isinstance(k, str))
        return cls(networks, globs, {k: v for k, v in ports.items() if v is not None})

    def _admits(self, key: IPNetwork | str, port: int | None) -> bool:
        return _admits(self.ports.get(key), port)

    def matches_hostname(self, hostname: str, port: int | None = None) -> str | None:
        """The first glob matching the normalised ``hostname`` (at ``port``), or None."""
        return next((g for g in self.globs if fnmatch.fnmatchcase(hostname, g) and self._admits(g, port)), None)

    def network_for(self, addr: IPAddress, port: int | None = None) -> IPNetwork | None:
        """The first CIDR holding ``addr`` (at ``port``), or None."""
        return next((n for n in self.networks if addr in n and self._admits(n, port)), None)

    def network_inside(self, addr: IPAddress, outer: IPNetwork, port: int | None = None) -> IPNetwork | None:
        """The first CIDR holding ``addr`` (at ``port``) that lies inside ``outer`` (an explicit allowance)."""
        for network in self.networks:
            if addr in network and _inside(network, outer) and self._admits(network, port):
                return network
        return None


def _inside(inner: IPNetwork, outer: IPNetwork) -> bool:
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner.subnet_of(outer)
    return False


def _unmapped_network(network: IPNetwork) -> IPNetwork:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_MAPPED):
        base = ipaddress.IPv4Address(int(network.network_address) & 0xFFFFFFFF)
        return ipaddress.IPv4Network(f"{base}/{network.prefixlen - 96}")
    return network


def _check_glob(host: str, entry: str) -> str:
    if ":" in host or "[" in entry:
        raise ValueError(f"probe_allow: a hostname glob has one port at most: {entry!r} (IPv6 needs a CIDR)")
    if _ADDRESS_GLOB.fullmatch(host):
        raise ValueError(f"probe_allow: globs match hostnames, not addresses: {entry!r} (use a CIDR)")
    glob = host.lower().removesuffix(".")
    if not glob or not glob.isascii():
        raise ValueError(f"probe_allow: not a CIDR or hostname glob: {entry!r}")
    return glob


# ---------------------------------------------------------------------------- the guard


class ProbeGuard:
    """Decides which ``/probe`` targets may be probed and which addresses and ports dialled."""

    def __init__(self, configured: Iterable[str], allow: AllowList) -> None:
        """``configured``: hosts, addresses, ``host:port`` or URLs named in the config."""
        self.allow = allow
        hostnames: dict[str, set[int | None]] = {}
        addresses: dict[IPAddress, set[int | None]] = {}
        for entry in configured:
            kind = _classify(target_host(entry))
            port = target_port(entry)
            if isinstance(kind, str):
                hostnames.setdefault(kind, set()).add(port)
            elif kind is not None:
                addresses.setdefault(kind, set()).add(port)
            else:
                log.debug("not a host, ignored by the /probe guard: %r", entry)
        self.hostnames: frozenset[str] = frozenset(hostnames)
        self.addresses: frozenset[IPAddress] = frozenset(addresses)
        # The ports each configured host opens (None in a set: a bare host, no port).
        self.host_ports: dict[str, frozenset[int | None]] = {h: frozenset(p) for h, p in hostnames.items()}
        self.address_ports: dict[IPAddress, frozenset[int | None]] = {a: frozenset(p) for a, p in addresses.items()}
        self.own: tuple[IPAddress, int] | None = None  # slaprobe's own listen address, never dialled

    def for_request(self, sockname: object) -> ProbeGuard:
        """This guard for one ``/probe`` request: ``sockname`` (the local address the request
        came in on, ``transport.get_extra_info("sockname")``) is slaprobe itself, never a target."""
        own = None
        if isinstance(sockname, tuple) and len(sockname) >= 2 and isinstance(sockname[1], int):
            addr = parse_ip(str(sockname[0]))
            own = (addr, sockname[1]) if addr is not None else None
        guard = object.__new__(ProbeGuard)
        for name in ("allow", "hostnames", "addresses", "host_ports", "address_ports"):
            setattr(guard, name, getattr(self, name))
        guard.own = own
        return guard

    def check_target(self, target: str) -> None:
        """Raise ForbiddenTargetError (the 403 text) if ``target`` can never be probed."""
        host = target_host(target)
        port = target_port(target)
        kind = _classify(host)
        if kind is None:
            raise ForbiddenTargetError(f"target {target!r} names no valid host")
        if not isinstance(kind, str):
            self._decide(host, kind, port)
            return
        if self._configured_name(kind, port) or self.allow.matches_hostname(kind, port) or self.allow.networks:
            return  # the address it resolves to is checked when dialled
        named = kind if port is None or not self._allowed_elsewhere(kind, None) else _join(kind, port)
        if kind in self.hostnames:
            raise ForbiddenTargetError(
                f"target {named}: the config names {kind} at {_port_list(self.host_ports[kind])} only; "
                f"add it with --probe-allow {named} {_FIX}"
            )
        raise ForbiddenTargetError(
            f"target {named} is not in the config or the allow-list; add it with --probe-allow {named} {_FIX}"
        )

    def check_address(self, hostname: str, ip: str, port: int | None = None) -> None:
        """Raise ForbiddenTargetError unless ``ip`` may be dialled (at ``port``) for ``hostname``."""
        self._decide(hostname, ip, port)

    def address_guard(self, note: Callable[[str], None] | None = None) -> DialGuard:
        """The check the probes call for every IP (and port) they dial; ``note`` hears each grant."""
        return _Dial(self, note)

    def _configured_name(self, host: str, port: int | None) -> bool:
        ports = self.host_ports.get(host)
        return ports is not None and (port is None or port in ports)

    def _decide(self, hostname: str, ip: str | IPAddress, port: int | None = None) -> str:
        """Why dialling ``ip`` (at ``port``) for ``hostname`` is allowed; raise ForbiddenTargetError if not."""
        hostname = hostname or str(ip)
        host = _classify(target_host(hostname))
        addr = ip if not isinstance(ip, str) else parse_ip(ip)
        if addr is not None and port is not None and self._is_own(addr, port):
            raise ForbiddenTargetError(
                f"target {_join(str(addr), port)} is slaprobe's own listen address; /probe never probes itself"
            )
        if isinstance(host, str) and self._configured_name(host, port):
            return "hostname named in the config"
        if addr is None:
            raise ForbiddenTargetError(f"target {hostname!r} resolved to {ip!r}, which is not an address")
        glob = self.allow.matches_hostname(host, port) if isinstance(host, str) else None
        literal = host is not None and not isinstance(host, str)
        reasons = []
        for view in _views(addr):
            reason, problem = self._view(view, glob, port, literal=literal)
            if problem is not None:
                # The port is named when it is what decided: the host is allowed at other ports.
                shown = port if self._allowed_elsewhere(host, view) else None
                if shown is None:
                    problem = self._view(view, glob, None, literal=literal)[1] or problem
                raise ForbiddenTargetError(f"{_subject(hostname, host, ip, addr, view, shown)} {problem}")
            reasons.append(reason)
        return "; ".join(dict.fromkeys(reasons))

    def _allowed_elsewhere(self, host: IPAddress | str | None, view: IPAddress | None) -> bool:
        """Whether the config or the allow-list opens ``host``/``view`` at some port."""
        if isinstance(host, str) and (
            host in self.hostnames or any(fnmatch.fnmatchcase(host, g) for g in self.allow.globs)
        ):
            return True
        return view is not None and (view in self.addresses or any(view in n for n in self.allow.networks))

    def _is_own(self, addr: IPAddress, port: int) -> bool:
        """Whether ``addr:port`` reaches this slaprobe: its address, or any loopback or
        unspecified address at its port when it was reached over loopback."""
        if self.own is None or port != self.own[1]:
            return False
        own = self.own[0]
        views = _views(addr)
        if own in views or any(v.is_unspecified for v in views):
            return True
        return own.is_loopback and any(v.is_loopback for v in views)

    def _view(self, view: IPAddress, glob: str | None, port: int | None, *, literal: bool) -> tuple[str, str | None]:
        """(why allowed, None) or ("", the refusal's predicate) for one view of the address."""
        cidr = _host_cidr(view) if port is None else f"{_join(_host_cidr(view), port)}"
        fix = f"add it with --probe-allow {cidr} {_FIX}"
        if literal and view in self.addresses:
            ports = self.address_ports[view]
            if port is None or port in ports:
                return "address named in the config", None
            if self.allow.network_for(view, port) is None:
                return "", f"is named in the config at {_port_list(ports)} only; {fix}"
        sensitive = [r for r in _SENSITIVE if view in r.network]
        for r in sensitive:
            if self.allow.network_inside(view, r.network, port) is None:
                return "", f"is {r.label}, refused unless a CIDR inside {r.network} allows it; {fix}"
        if (network := self.allow.network_for(view, port)) is not None:
            return f"in allowed CIDR {network}", None
        if glob is None:
            return "", f"is not in the config or the allow-list; {fix}"
        if (internal := _first(_INTERNAL, view)) is not None:
            return "", f"is {internal.label}, not allowed by a hostname glob; {fix}"
        return f"hostname matches {glob} and the address is public", None


class _Dial(DialGuard):
    """``ProbeGuard``'s check as the probes call it, with the port when they know it."""

    def __init__(self, guard: ProbeGuard, note: Callable[[str], None] | None) -> None:
        self.guard = guard
        self.note = note

    def check(self, hostname: str, ip: str, port: int | None) -> None:
        why = self.guard._decide(hostname, ip, port)
        if self.note is not None:
            at = "" if port is None else f" port {port}"
            self.note(f"guard: {ip}{at} allowed for {hostname}: {why}")


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _port_list(ports: frozenset[int | None]) -> str:
    numbers = sorted(p for p in ports if p is not None)
    if not numbers:
        return "no port (ICMP)"
    return ("port " if len(numbers) == 1 else "ports ") + ", ".join(map(str, numbers))


def _classify(host: str) -> IPAddress | str | None:
    """An address, a normalised hostname, or None for neither."""
    addr = parse_ip(host)
    if addr is not None:
        return addr
    name = normalise_hostname(host)
    if name is None:
        return None
    folded = parse_ip(name)  # full-width digits fold to an address under IDNA
    return name if folded is None else folded


def _subject(
    hostname: str,
    host: IPAddress | str | None,
    ip: str | IPAddress,
    addr: IPAddress,
    view: IPAddress,
    port: int | None = None,
) -> str:
    """The start of a refusal: ``target 10.0.0.1`` or ``target db.example resolved to 10.0.0.1, which``."""
    if port is not None:
        return _with_port(_subject(hostname, host, ip, addr, view), port)
    if host is not None and not isinstance(host, str) and host == addr:
        shown = target_host(hostname).strip()
        if not shown.isprintable() or " " in shown:
            shown = str(addr)
        subject = f"target {shown}" if shown == str(addr) else f"target {shown} ({addr})"
        which = ""
    else:
        name = str(host) if host is not None else repr(hostname)
        shown_ip = str(ip) if str(ip).isprintable() else repr(str(ip))
        subject = f"target {name} resolved to {shown_ip}"
        if str(addr) != str(ip):
            subject += f" ({addr})"
        which = ", which"
    if view != addr:
        return f"{subject}, embedding {view}, which"
    return subject + which


def _with_port(subject: str, port: int) -> str:
    """``target 10.0.0.1`` -> ``target 10.0.0.1 port 22`` (before any ``, which``)."""
    head, sep, tail = subject.partition(",")
    return f"{head} port {port}{sep}{tail}"
