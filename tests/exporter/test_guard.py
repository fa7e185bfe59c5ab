"""The /probe SSRF guard: a table of (allow-list, config, hostname, ip) and what it decides."""

from __future__ import annotations

import ipaddress

import pytest

from slaprobe.exporter.guard import AllowList, ProbeGuard, parse_ip, target_host
from slaprobe.probes.result import ForbiddenTargetError, ProbeContext, ProbeTrace

OK = None
CONFIG = ("https://shop.example/", "db.internal:5432", "10.0.0.2:53", "[fd00::5]:80", "Kasse.example")
FIX = "or global.probe_allow"


def refused_not_listed(subject: str, cidr: str) -> str:
    return f"{subject} is not in the config or the allow-list; add it with --probe-allow {cidr} {FIX}"


# (allow-list, hostname as the probe dialled it, ip as getaddrinfo gave it, expected refusal or OK)
DIALS = [
    # Rule 1: a hostname named in the config may be dialled at any address.
    ([], "shop.example", "10.9.9.9", OK),
    ([], "SHOP.Example.", "127.0.0.1", OK),
    ([], "db.internal", "169.254.169.254", OK),
    ([], "kasse.example", "192.168.1.1", OK),
    # IDNA: the Unicode spelling of a configured name is that name.
    ([], "ＳＨＯＰ。example", "10.9.9.9", OK),
    # Rule 2a: an address named in the config, whatever the spelling.
    ([], "10.0.0.2", "10.0.0.2", OK),
    ([], "0x0a000002", "10.0.0.2", OK),
    ([], "[fd00::5]", "fd00::5", OK),
    ([], "::ffff:10.0.0.2", "::ffff:10.0.0.2", OK),
    ([], "１０.０.０.２", "10.0.0.2", OK),
    # ... but only as an address: another name that resolves there needs a CIDR.
    (
        [],
        "alias.example",
        "10.0.0.2",
        refused_not_listed("target alias.example resolved to 10.0.0.2, which", "10.0.0.2/32"),
    ),
    # Rule 2c: CIDRs (and bare addresses) open addresses, whatever name leads there.
    (["192.168.10.0/24"], "anything.example", "192.168.10.5", OK),
    (["192.168.10.0/24"], "192.168.10.7", "192.168.10.7", OK),
    (["10.1.2.3"], "10.1.2.3", "10.1.2.3", OK),
    (["::ffff:10.1.0.0/112"], "10.1.9.9", "10.1.9.9", OK),
    (["2001:db8::/32"], "v6.example", "2001:db8::1", OK),
    # Rule 2d: a glob opens a hostname, at public addresses only.
    (["*.public.example"], "www.public.example", "93.184.216.34", OK),
    (["*.public.example"], "WWW.Public.Example.", "93.184.216.34", OK),
    (["*.public.example"], "www.public.example", "2606:2800:220:1::1", OK),
    (["*.public.example"], "www.public.example", "64:ff9b::808:808", OK),  # DNS64 of 8.8.8.8
    (["*"], "any.example", "1.1.1.1", OK),
    # Refusals: nothing in the config or the allow-list covers the address.
    ([], "10.1.2.3", "10.1.2.3", refused_not_listed("target 10.1.2.3", "10.1.2.3/32")),
    ([], "evil.example", "8.8.8.8", refused_not_listed("target evil.example resolved to 8.8.8.8, which", "8.8.8.8/32")),
    (
        ["192.168.10.0/24"],
        "evil.example",
        "192.168.11.1",
        refused_not_listed("target evil.example resolved to 192.168.11.1, which", "192.168.11.1/32"),
    ),
    ([], "::1", "::1", refused_not_listed("target ::1", "::1/128")),
    # Bypass spellings of 127.0.0.1: every one is an address, so a glob cannot open it.
    (["*"], "0x7f000001", "127.0.0.1", refused_not_listed("target 0x7f000001 (127.0.0.1)", "127.0.0.1/32")),
    (["*"], "2130706433", "127.0.0.1", refused_not_listed("target 2130706433 (127.0.0.1)", "127.0.0.1/32")),
    (["*"], "017700000001", "127.0.0.1", refused_not_listed("target 017700000001 (127.0.0.1)", "127.0.0.1/32")),
    (["*"], "127.1", "127.0.0.1", refused_not_listed("target 127.1 (127.0.0.1)", "127.0.0.1/32")),
    (["*"], "0177.0.0.1", "127.0.0.1", refused_not_listed("target 0177.0.0.1 (127.0.0.1)", "127.0.0.1/32")),
    (["*"], "127.0.0.1.", "127.0.0.1", refused_not_listed("target 127.0.0.1. (127.0.0.1)", "127.0.0.1/32")),
    (["*"], "１２７.０.０.１", "127.0.0.1", refused_not_listed("target １２７.０.０.１ (127.0.0.1)", "127.0.0.1/32")),
    (
        ["*"],
        "[::ffff:127.0.0.1]",
        "::ffff:127.0.0.1",
        refused_not_listed("target ::ffff:127.0.0.1 (127.0.0.1)", "127.0.0.1/32"),
    ),
    # A glob-allowed name that resolves inside: IPv4-mapped, 6to4, NAT64 and Teredo embeddings too.
    (
        ["*.public.example"],
        "in.public.example",
        "10.0.0.9",
        "target in.public.example resolved to 10.0.0.9, which is a private address, not allowed by a hostname glob; "
        f"add it with --probe-allow 10.0.0.9/32 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "::ffff:10.0.0.1",
        "target in.public.example resolved to ::ffff:10.0.0.1 (10.0.0.1), which is a private address, not allowed by "
        f"a hostname glob; add it with --probe-allow 10.0.0.1/32 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "2002:7f00:1::",
        "target in.public.example resolved to 2002:7f00:1::, embedding 127.0.0.1, which is a loopback address, not "
        f"allowed by a hostname glob; add it with --probe-allow 127.0.0.1/32 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "64:ff9b::a00:1",
        "target in.public.example resolved to 64:ff9b::a00:1, embedding 10.0.0.1, which is a private address, not "
        f"allowed by a hostname glob; add it with --probe-allow 10.0.0.1/32 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo client 10.0.0.1
        "target in.public.example resolved to 2001:0:4136:e378:8000:63bf:f5ff:fffe, which is an IETF protocol "
        "address, not allowed by a hostname glob; add it with --probe-allow "
        f"2001:0:4136:e378:8000:63bf:f5ff:fffe/128 {FIX}",
    ),
    (
        ["::/0"],
        "::ffff:0:7f00:1",
        "::ffff:0:7f00:1",
        refused_not_listed("target ::ffff:0:7f00:1, embedding 127.0.0.1, which", "127.0.0.1/32"),
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "::7f00:1",
        "target in.public.example resolved to ::7f00:1, which is an IPv4-compatible address, not allowed by a "
        f"hostname glob; add it with --probe-allow ::7f00:1/128 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "fc00::1",
        "target in.public.example resolved to fc00::1, which is a unique-local address, not allowed by a hostname "
        f"glob; add it with --probe-allow fc00::1/128 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "0.0.0.0",
        "target in.public.example resolved to 0.0.0.0, which is a this-network address, not allowed by a hostname "
        f"glob; add it with --probe-allow 0.0.0.0/32 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "224.0.0.1",
        "target in.public.example resolved to 224.0.0.1, which is a multicast address, not allowed by a hostname "
        f"glob; add it with --probe-allow 224.0.0.1/32 {FIX}",
    ),
    (
        ["*.public.example"],
        "in.public.example",
        "100.64.0.1",
        "target in.public.example resolved to 100.64.0.1, which is a shared (CGNAT) address, not allowed by a "
        f"hostname glob; add it with --probe-allow 100.64.0.1/32 {FIX}",
    ),
    # A wide CIDR opens private ranges but not the sensitive ones.
    (["0.0.0.0/0"], "10.5.5.5", "10.5.5.5", OK),
    (
        ["0.0.0.0/0"],
        "169.254.169.254",
        "169.254.169.254",
        "target 169.254.169.254 is the cloud metadata address, refused unless a CIDR inside 169.254.169.254/32 "
        f"allows it; add it with --probe-allow 169.254.169.254/32 {FIX}",
    ),
    (
        ["169.254.0.0/16"],
        "169.254.169.254",
        "169.254.169.254",
        "target 169.254.169.254 is the cloud metadata address, refused unless a CIDR inside 169.254.169.254/32 "
        f"allows it; add it with --probe-allow 169.254.169.254/32 {FIX}",
    ),
    (["169.254.0.0/16"], "169.254.1.1", "169.254.1.1", OK),
    (["169.254.169.254/32"], "169.254.169.254", "169.254.169.254", OK),
    (
        ["0.0.0.0/0"],
        "169.254.1.1",
        "169.254.1.1",
        "target 169.254.1.1 is a link-local address, refused unless a CIDR inside 169.254.0.0/16 allows it; "
        f"add it with --probe-allow 169.254.1.1/32 {FIX}",
    ),
    (
        ["::/0"],
        "fd00:ec2::254",
        "fd00:ec2::254",
        "target fd00:ec2::254 is the AWS IPv6 metadata address, refused unless a CIDR inside fd00:ec2::254/128 "
        f"allows it; add it with --probe-allow fd00:ec2::254/128 {FIX}",
    ),
    (
        ["::/0"],
        "fe80::1",
        "fe80::1%eth0",
        f"target fe80::1 is a link-local address, refused unless a CIDR inside fe80::/10 allows it; add it with "
        f"--probe-allow fe80::1/128 {FIX}",
    ),
    (
        ["0.0.0.0/0"],
        "100.100.100.200",
        "100.100.100.200",
        "target 100.100.100.200 is the Alibaba Cloud metadata address, refused unless a CIDR inside "
        f"100.100.100.200/32 allows it; add it with --probe-allow 100.100.100.200/32 {FIX}",
    ),
    # The metadata address through every disguise, for a glob-allowed name and under ::/0.
    (
        ["*.public.example"],
        "meta.public.example",
        "169.254.169.254",
        "target meta.public.example resolved to 169.254.169.254, which is the cloud metadata address, refused "
        f"unless a CIDR inside 169.254.169.254/32 allows it; add it with --probe-allow 169.254.169.254/32 {FIX}",
    ),
    (
        ["*.public.example", "::/0"],
        "meta.public.example",
        "::ffff:169.254.169.254",
        "target meta.public.example resolved to ::ffff:169.254.169.254 (169.254.169.254), which is the cloud metadata "
        f"address, refused unless a CIDR inside 169.254.169.254/32 allows it; add it with --probe-allow "
        f"169.254.169.254/32 {FIX}",
    ),
    (
        ["::/0"],
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::a9fe:a9fe",
        "target 64:ff9b::a9fe:a9fe, embedding 169.254.169.254, which is the cloud metadata address, refused unless a "
        f"CIDR inside 169.254.169.254/32 allows it; add it with --probe-allow 169.254.169.254/32 {FIX}",
    ),
    (
        ["*"],
        "0xa9fea9fe",
        "169.254.169.254",
        "target 0xa9fea9fe (169.254.169.254) is the cloud metadata address, refused unless a CIDR inside "
        f"169.254.169.254/32 allows it; add it with --probe-allow 169.254.169.254/32 {FIX}",
    ),
    (
        ["*"],
        "2852039166",
        "169.254.169.254",
        "target 2852039166 (169.254.169.254) is the cloud metadata address, refused unless a CIDR inside "
        f"169.254.169.254/32 allows it; add it with --probe-allow 169.254.169.254/32 {FIX}",
    ),
    # A wide v6 CIDR does not open what a v6 address embeds.
    (
        ["2002::/16"],
        "2002:a00:1::",
        "2002:a00:1::",
        refused_not_listed("target 2002:a00:1::, embedding 10.0.0.1, which", "10.0.0.1/32"),
    ),
    (["2002::/16", "10.0.0.0/8"], "2002:a00:1::", "2002:a00:1::", OK),
]


@pytest.mark.parametrize(("allow", "hostname", "ip", "refusal"), DIALS)
def test_each_dialled_address_is_allowed_or_refused_with_a_reason_that_says_how_to_allow_it(
    allow: list[str], hostname: str, ip: str, refusal: str | None
) -> None:
    guard = ProbeGuard(CONFIG, AllowList.parse(allow)).address_guard()
    if refusal is None:
        guard(hostname, ip)
    else:
        with pytest.raises(ForbiddenTargetError) as caught:
            guard(hostname, ip)
        assert str(caught.value) == refusal
        assert "\n" not in refusal


TARGETS = [
    ([], "https://shop.example/cart", OK),
    ([], "shop.example:8443", OK),
    ([], "10.0.0.2:53", OK),
    ([], "[fd00::5]:8080", OK),
    ([], "http://10.1.2.3/", refused_not_listed("target 10.1.2.3", "10.1.2.3/32")),
    ([], "10.1.2.3", refused_not_listed("target 10.1.2.3", "10.1.2.3/32")),
    ([], "http://shop.example@10.1.2.3/", refused_not_listed("target 10.1.2.3", "10.1.2.3/32")),
    ([], "http://0x7f000001:8080/", refused_not_listed("target 0x7f000001 (127.0.0.1)", "127.0.0.1/32")),
    ([], "2001:db8::1", refused_not_listed("target 2001:db8::1", "2001:db8::1/128")),
    (["*.public.example"], "https://a.public.example/", OK),
    (
        ["*.public.example"],
        "https://a.public.example.evil.example/",
        f"target a.public.example.evil.example is not in the config or the allow-list; add it with --probe-allow "
        f"a.public.example.evil.example {FIX}",
    ),
    # With a CIDR in the allow-list any name may be tried: its address decides when dialled.
    (["10.0.0.0/8"], "http://intranet.example/", OK),
    (["*.public.example"], "file:///etc/passwd", "target 'file:///etc/passwd' names no valid host"),
    (["*.public.example"], "bad host", "target 'bad host' names no valid host"),
    # Per port: a configured host:port or URL opens that port, not the host's others.
    (
        [],
        "http://shop.example:22/",
        f"target shop.example:22: the config names shop.example at ports 443, 8443 only; add it with --probe-allow "
        f"shop.example:22 {FIX}",
    ),
    (
        [],
        "10.0.0.2:22",
        f"target 10.0.0.2 port 22 is named in the config at port 53 only; add it with "
        f"--probe-allow 10.0.0.2/32:22 {FIX}",
    ),
    (["10.0.0.2:22"], "10.0.0.2:22", OK),
    (["10.0.0.0/8:20-30"], "10.0.0.2:22", OK),
    (["*.shop.example:443"], "https://a.shop.example/", OK),
    (
        ["*.shop.example:443"],
        "http://a.shop.example/",
        f"target a.shop.example:80 is not in the config or the allow-list; add it with --probe-allow a.shop.example:80 "
        f"{FIX}",
    ),
]


@pytest.mark.parametrize(("allow", "target", "refusal"), TARGETS)
def test_a_target_that_can_never_pass_is_refused_before_probing(
    allow: list[str], target: str, refusal: str | None
) -> None:
    guard = ProbeGuard({"https://shop.example/", "shop.example:8443", "10.0.0.2:53", "[fd00::5]:8080"},
                       AllowList.parse(allow))  # fmt: skip
    if refusal is None:
        guard.check_target(target)
    else:
        with pytest.raises(ForbiddenTargetError) as caught:
            guard.check_target(target)
        assert str(caught.value) == refusal


def test_a_hostname_outside_the_config_is_refused_with_how_to_allow_it() -> None:
    guard = ProbeGuard({"shop.example"}, AllowList.parse([]))
    with pytest.raises(ForbiddenTargetError) as caught:
        guard.check_target("http://evil.example/")
    assert str(caught.value) == (
        "target evil.example is not in the config or the allow-list; add it with --probe-allow evil.example "
        "or global.probe_allow"
    )


def test_dns_rebinding_is_refused_because_each_dialled_address_is_checked() -> None:
    guard = ProbeGuard({"shop.example"}, AllowList.parse(["*.rebind.example"])).address_guard()
    guard("x.rebind.example", "93.184.216.34")  # first answer: public
    with pytest.raises(ForbiddenTargetError) as caught:
        guard("x.rebind.example", "169.254.169.254")  # second answer: the metadata address
    assert str(caught.value).startswith(
        "target x.rebind.example resolved to 169.254.169.254, which is the cloud metadata address"
    )


def test_a_redirect_to_an_internal_address_is_refused_at_the_hop() -> None:
    guard = ProbeGuard({"shop.example"}, AllowList.parse(["*.public.example"])).address_guard()
    guard("www.public.example", "93.184.216.34")
    with pytest.raises(ForbiddenTargetError):
        guard("127.0.0.1", "127.0.0.1")
    guard("shop.example", "10.0.0.7")  # a redirect back to a configured name is fine


async def test_resolve_host_calls_the_guard_with_the_address_it_will_dial() -> None:
    from slaprobe.probes.resolve import resolve_host

    notes: list[str] = []
    guard = ProbeGuard({"localhost"}, AllowList.parse([]))
    ctx = ProbeContext(timeout=5, trace=ProbeTrace(debug=True), guard=guard.address_guard(notes.append))
    ip, _ = await resolve_host("localhost", ctx)
    assert notes == [f"guard: {ip} allowed for localhost: hostname named in the config"]

    ctx = ProbeContext(timeout=5, guard=ProbeGuard((), AllowList.parse(["*"])).address_guard())
    with pytest.raises(ForbiddenTargetError):
        await resolve_host("localhost", ctx)  # a glob never opens loopback


def test_the_grant_note_says_why_an_address_was_allowed() -> None:
    notes: list[str] = []
    guard = ProbeGuard((), AllowList.parse(["*.public.example", "10.0.0.0/8"])).address_guard(notes.append)
    guard("a.public.example", "8.8.8.8")
    guard("b.example", "10.1.1.1")
    assert notes == [
        "guard: 8.8.8.8 allowed for a.public.example: hostname matches *.public.example and the address is public",
        "guard: 10.1.1.1 allowed for b.example: in allowed CIDR 10.0.0.0/8",
    ]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (["10.0.0.0/33"], "probe_allow: not a CIDR: '10.0.0.0/33'"),
        (["10.0.0.*"], "probe_allow: globs match hostnames, not addresses: '10.0.0.*' (use a CIDR)"),
        (["*.example:4:43"], "probe_allow: a hostname glob has one port at most: '*.example:4:43' (IPv6 needs a CIDR)"),
        (["10.0.0.0/8:0"], "probe_allow: not a port or port range: '10.0.0.0/8:0' (443 or 80-90)"),
        (["10.0.0.0/8:90-80"], "probe_allow: not a port or port range: '10.0.0.0/8:90-80' (443 or 80-90)"),
        (["*.example:http"], "probe_allow: not a port or port range: '*.example:http' (443 or 80-90)"),
        (["[2001:db8::/32"], "probe_allow: not a CIDR: '[2001:db8::/32'"),
        (["bücher.example"], "probe_allow: not a CIDR or hostname glob: 'bücher.example'"),
    ],
)
def test_a_bad_allow_list_entry_is_refused_by_name(entries: list[str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        AllowList.parse(entries)
    assert str(caught.value) == message


def test_the_allow_list_reads_cidrs_addresses_and_globs_in_any_case_and_comma_lists() -> None:
    allow = AllowList.parse(["10.0.0.0/8, *.Shop.Example.", "192.168.1.1", "::ffff:172.16.0.0/108"])
    assert allow.networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),
        ipaddress.ip_network("172.16.0.0/12"),
    )
    assert allow.globs == ("*.shop.example",)


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("fe80::1%25eth0", "fe80::1"),
        ("256.0.0.1", None),
        ("08.0.0.1", None),
        ("1_0.0.0.1", None),
        ("+1.0.0.1", None),
        ("4294967296", None),
        ("shop.example", None),
        ("", None),
    ],
)
def test_every_spelling_of_an_address_that_the_resolver_accepts_is_read_as_that_address(
    spelling: str, address: str | None
) -> None:
    parsed = parse_ip(spelling)
    assert (str(parsed) if parsed is not None else None) == address


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("https://user:pw@Shop.Example:8443/x?y#z", "shop.example"),
        ("shop.example:80", "shop.example"),
        ("[::1]:53", "::1"),
        ("::1", "::1"),
        ("10.0.0.1", "10.0.0.1"),
    ],
)
def test_the_host_of_a_target_is_found_in_urls_host_port_and_bare_hosts(target: str, host: str) -> None:
    assert target_host(target) == host


PORT_DIALS = [
    # (allow-list, hostname, ip, port, refusal or OK): the config is CONFIG.
    ([], "shop.example", "10.9.9.9", 443, OK),
    (
        [],
        "shop.example",
        "10.9.9.9",
        22,
        "target shop.example resolved to 10.9.9.9 port 22, which is not in the "
        f"config or the allow-list; add it with --probe-allow 10.9.9.9/32:22 {FIX}",
    ),
    ([], "db.internal", "10.1.1.1", 5432, OK),
    ([], "10.0.0.2", "10.0.0.2", 53, OK),
    (
        [],
        "10.0.0.2",
        "10.0.0.2",
        8080,
        f"target 10.0.0.2 port 8080 is named in the config at port 53 only; add it "
        f"with --probe-allow 10.0.0.2/32:8080 {FIX}",
    ),
    ([], "[fd00::5]", "fd00::5", 80, OK),
    (
        [],
        "[fd00::5]",
        "fd00::5",
        81,
        f"target fd00::5 port 81 is named in the config at port 80 only; add it with "
        f"--probe-allow [fd00::5/128]:81 {FIX}",
    ),
    # A port-less dial (ICMP) is judged by host, as before.
    ([], "10.0.0.2", "10.0.0.2", None, OK),
    # Allow-list entries with ports open those ports only; without, every port.
    (["10.0.0.0/8:443"], "10.1.2.3", "10.1.2.3", 443, OK),
    (
        ["10.0.0.0/8:443"],
        "10.1.2.3",
        "10.1.2.3",
        444,
        f"target 10.1.2.3 port 444 is not in the config or the "
        f"allow-list; add it with --probe-allow 10.1.2.3/32:444 {FIX}",
    ),
    (["10.0.0.0/8"], "10.1.2.3", "10.1.2.3", 22, OK),
    (["10.0.0.0/8:443", "10.0.0.0/8"], "10.1.2.3", "10.1.2.3", 22, OK),
    (["[2001:db8::/32]:53"], "v6.example", "2001:db8::1", 53, OK),
    (
        ["[2001:db8::/32]:53"],
        "v6.example",
        "2001:db8::1",
        54,
        "target v6.example resolved to 2001:db8::1 port 54, "
        f"which is not in the config or the allow-list; add it with --probe-allow [2001:db8::1/128]:54 {FIX}",
    ),
    (["*.public.example:80-90"], "www.public.example", "93.184.216.34", 85, OK),
    (
        ["*.public.example:80-90"],
        "www.public.example",
        "93.184.216.34",
        91,
        "target www.public.example resolved "
        f"to 93.184.216.34 port 91, which is not in the config or the allow-list; add it with --probe-allow "
        f"93.184.216.34/32:91 {FIX}",
    ),
    (["169.254.169.254/32:80"], "169.254.169.254", "169.254.169.254", 80, OK),
    (
        ["169.254.169.254/32:80"],
        "169.254.169.254",
        "169.254.169.254",
        81,
        "target 169.254.169.254 port 81 is the "
        "cloud metadata address, refused unless a CIDR inside 169.254.169.254/32 allows it; add it with "
        f"--probe-allow 169.254.169.254/32:81 {FIX}",
    ),
]


@pytest.mark.parametrize(("allow", "hostname", "ip", "port", "refusal"), PORT_DIALS)
def test_each_dial_is_judged_by_host_and_port(
    allow: list[str], hostname: str, ip: str, port: int | None, refusal: str | None
) -> None:
    guard = ProbeGuard(CONFIG, AllowList.parse(allow)).address_guard()
    if refusal is None:
        guard.check(hostname, ip, port)
    else:
        with pytest.raises(ForbiddenTargetError) as caught:
            guard.check(hostname, ip, port)
        assert str(caught.value) == refusal


def test_allow_list_ports_are_kept_per_entry_and_every_port_wins() -> None:
    allow = AllowList.parse(["10.0.0.0/8:443", "10.0.0.0/8:80-90", "*.shop.example:443", "*.shop.example"])
    assert allow.networks == (ipaddress.ip_network("10.0.0.0/8"),)
    assert allow.ports == {ipaddress.ip_network("10.0.0.0/8"): ((443, 443), (80, 90))}
    assert allow.globs == ("*.shop.example",)


@pytest.mark.parametrize(
    ("sockname", "ip", "port"),
    [
        (("127.0.0.1", 9799), "127.0.0.1", 9799),
        (("127.0.0.1", 9799), "127.0.0.2", 9799),  # a wildcard bind answers on all of 127/8
        (("127.0.0.1", 9799), "0.0.0.0", 9799),  # connecting to 0.0.0.0 reaches this host
        (("::1", 9799, 0, 0), "::ffff:127.0.0.1", 9799),
        (("::ffff:10.0.0.5", 9799, 0, 0), "10.0.0.5", 9799),
    ],
)
def test_slaprobes_own_listen_address_is_never_dialled_whatever_allows_it(
    sockname: tuple[object, ...], ip: str, port: int
) -> None:
    guard = ProbeGuard({f"{ip}:{port}"}, AllowList.parse(["0.0.0.0/0", "::/0"])).for_request(sockname)
    with pytest.raises(ForbiddenTargetError) as caught:
        guard.address_guard().check(ip, ip, port)
    assert "is slaprobe's own listen address; /probe never probes itself" in str(caught.value)
    guard.address_guard().check(ip, ip, port + 1)  # its other ports stay as the config says
