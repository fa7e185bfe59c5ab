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

Ports are not part of the decision: the config and the allow-list name hosts.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna

from slaprobe.probes.result import AddressGuard, ForbiddenTargetError

log = logging.getLogger("slaprobe.exporter.guard")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

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


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an address if the resolver would read it as one (any spelling), else None.

    Brackets, an IPv6 zone id and one trailing dot are dropped; IPv4-mapped IPv6 becomes
    IPv4; ``inet_aton`` forms (``2130706433``, ``0x7f000001``, ``0177.1``) are IPv4.
    """
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

    @classmethod
    def parse(cls, entries: Sequence[str]) -> AllowList:
        """Read ``--probe-allow``/``global.probe_allow`` entries; raise ValueError naming a bad one."""
        networks: list[IPNetwork] = []
        globs: list[str] = []
        for raw in entries:
            for entry in (e.strip() for e in raw.split(",")):
                if not entry:
                    continue
                if "/" in entry:
                    try:
                        network = ipaddress.ip_network(entry, strict=False)
                    except ValueError:
                        raise ValueError(f"probe_allow: not a CIDR: {entry!r}") from None
                    networks.append(_unmapped_network(network))
                elif (addr := parse_ip(entry)) is not None:
                    networks.append(ipaddress.ip_network(_host_cidr(addr)))
                else:
                    globs.append(_check_glob(entry))
        return cls(tuple(dict.fromkeys(networks)), tuple(dict.fromkeys(globs)))

    def matches_hostname(self, hostname: str) -> str | None:
        """The first glob matching the normalised ``hostname``, or None."""
        return next((g for g in self.globs if fnmatch.fnmatchcase(hostname, g)), None)

    def network_for(self, addr: IPAddress) -> IPNetwork | None:
        """The first CIDR holding ``addr``, or None."""
        return next((n for n in self.networks if addr in n), None)

    def network_inside(self, addr: IPAddress, outer: IPNetwork) -> IPNetwork | None:
        """The first CIDR holding ``addr`` that lies inside ``outer`` (an explicit allowance)."""
        for network in self.networks:
            if addr in network and _inside(network, outer):
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


def _check_glob(entry: str) -> str:
    if ":" in entry:
        raise ValueError(f"probe_allow: a hostname glob has no port or colon: {entry!r} (IPv6 needs a CIDR)")
    if _ADDRESS_GLOB.fullmatch(entry):
        raise ValueError(f"probe_allow: globs match hostnames, not addresses: {entry!r} (use a CIDR)")
    glob = entry.lower().removesuffix(".")
    if not glob or not glob.isascii():
        raise ValueError(f"probe_allow: not a CIDR or hostname glob: {entry!r}")
    return glob


# ---------------------------------------------------------------------------- the guard


class ProbeGuard:
    """Decides which ``/probe`` targets may be probed and which addresses dialled."""

    def __init__(self, configured: Iterable[str], allow: AllowList) -> None:
        """``configured``: hosts, addresses, ``host:port`` or URLs named in the config."""
        self.allow = allow
        hostnames: set[str] = set()
        addresses: set[IPAddress] = set()
        for entry in configured:
            kind = _classify(target_host(entry))
            if isinstance(kind, str):
                hostnames.add(kind)
            elif kind is not None:
                addresses.add(kind)
            else:
                log.debug("not a host, ignored by the /probe guard: %r", entry)
        self.hostnames: frozenset[str] = frozenset(hostnames)
        self.addresses: frozenset[IPAddress] = frozenset(addresses)

    def check_target(self, target: str) -> None:
        """Raise ForbiddenTargetError (the 403 text) if ``target`` can never be probed."""
        host = target_host(target)
        kind = _classify(host)
        if kind is None:
            raise ForbiddenTargetError(f"target {target!r} names no valid host")
        if not isinstance(kind, str):
            self._decide(host, kind)
            return
        if kind in self.hostnames or self.allow.matches_hostname(kind) or self.allow.networks:
            return  # the address it resolves to is checked when dialled
        raise ForbiddenTargetError(
            f"target {kind} is not in the config or the allow-list; add it with --probe-allow {kind} {_FIX}"
        )

    def check_address(self, hostname: str, ip: str) -> None:
        """Raise ForbiddenTargetError unless ``ip`` may be dialled for ``hostname``."""
        self._decide(hostname, ip)

    def address_guard(self, note: Callable[[str], None] | None = None) -> AddressGuard:
        """The ``(hostname, ip)`` check the probes call for every IP they dial; ``note`` hears each grant."""

        def guard(hostname: str, ip: str) -> None:
            why = self._decide(hostname, ip)
            if note is not None:
                note(f"guard: {ip} allowed for {hostname}: {why}")

        return guard

    def _decide(self, hostname: str, ip: str | IPAddress) -> str:
        """Why dialling ``ip`` for ``hostname`` is allowed; raise ForbiddenTargetError if it is not."""
        hostname = hostname or str(ip)
        host = _classify(target_host(hostname))
        if isinstance(host, str) and host in self.hostnames:
            return "hostname named in the config"
        addr = ip if not isinstance(ip, str) else parse_ip(ip)
        if addr is None:
            raise ForbiddenTargetError(f"target {hostname!r} resolved to {ip!r}, which is not an address")
        glob = self.allow.matches_hostname(host) if isinstance(host, str) else None
        literal = host is not None and not isinstance(host, str)
        reasons = []
        for view in _views(addr):
            reason, problem = self._view(view, glob, literal=literal)
            if problem is not None:
                raise ForbiddenTargetError(f"{_subject(hostname, host, ip, addr, view)} {problem}")
            reasons.append(reason)
        return "; ".join(dict.fromkeys(reasons))

    def _view(self, view: IPAddress, glob: str | None, *, literal: bool) -> tuple[str, str | None]:
        """(why allowed, None) or ("", the refusal's predicate) for one view of the address."""
        fix = f"add it with --probe-allow {_host_cidr(view)} {_FIX}"
        if literal and view in self.addresses:
            return "address named in the config", None
        sensitive = [r for r in _SENSITIVE if view in r.network]
        for r in sensitive:
            if self.allow.network_inside(view, r.network) is None:
                return "", f"is {r.label}, refused unless a CIDR inside {r.network} allows it; {fix}"
        if (network := self.allow.network_for(view)) is not None:
            return f"in allowed CIDR {network}", None
        if glob is None:
            return "", f"is not in the config or the allow-list; {fix}"
        if (internal := _first(_INTERNAL, view)) is not None:
            return "", f"is {internal.label}, not allowed by a hostname glob; {fix}"
        return f"hostname matches {glob} and the address is public", None


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


def _subject(hostname: str, host: IPAddress | str | None, ip: str | IPAddress, addr: IPAddress, view: IPAddress) -> str:
    """The start of a refusal: ``target 10.0.0.1`` or ``target db.example resolved to 10.0.0.1, which``."""
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
