"""Shard assignment: every probe owned by exactly one replica, evenly, stably; ``auto/N`` from the pod name."""

from __future__ import annotations

import pytest

from slaprobe.exporter.sharding import ALL, Shard, hostname_ordinal

PROBES = [(f"service-{i // 10}", f"probe-{i % 10}") for i in range(10_000)]


@pytest.mark.parametrize("count", range(1, 9))
def test_every_probe_is_owned_by_exactly_one_shard_and_no_shard_holds_more_than_1_3x_the_mean(count: int) -> None:
    shards = [Shard(i, count) for i in range(count)]
    load = [0] * count
    for service, probe in PROBES:
        owners = [s.index for s in shards if s.owns(service, probe)]
        assert len(owners) == 1, (service, probe, owners)
        load[owners[0]] += 1
    mean = len(PROBES) / count
    assert max(load) <= 1.3 * mean, load


def test_assignment_is_stable_across_processes() -> None:
    # sha256 of "service/probe", not Python's salted hash(): the same probe lands on the same shard everywhere.
    assert [Shard(i, 5).owns("checkout", "home") for i in range(5)] == [True, False, False, False, False]


def test_a_single_replica_owns_everything() -> None:
    assert ALL.owns("any", "probe")
    assert Shard.parse("0/1") == ALL


@pytest.mark.parametrize(
    ("text", "hostname", "expected"),
    [
        ("2/5", None, Shard(2, 5)),
        ("auto/3", "slaprobe-dc1-2", Shard(2, 3)),
        ("auto/3", "slaprobe-0", Shard(0, 3)),
    ],
)
def test_parse_reads_i_of_n_or_the_statefulset_ordinal(text: str, hostname: str | None, expected: Shard) -> None:
    assert Shard.parse(text, hostname=hostname) == expected


def test_auto_reads_the_hostname_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTNAME", "slaprobe-1")
    assert Shard.parse("auto/2") == Shard(1, 2)


@pytest.mark.parametrize(
    ("text", "hostname", "message"),
    [
        ("3", None, "--shard: expected I/N or auto/N such as 0/3, got '3'"),
        ("a/3", None, "--shard: expected I/N or auto/N such as 0/3, got 'a/3'"),
        ("3/3", None, "--shard: index must be in 0..2, got 3 from '3/3'"),
        ("0/0", None, "--shard: N must be at least 1, got '0/0'"),
        ("auto/3", "slaprobe-5", "--shard: index must be in 0..2, got 5 from 'auto/3'"),
        (
            "auto/3",
            "laptop",
            "--shard auto/N: host name 'laptop' does not end in -<ordinal> (run in a StatefulSet, or give I/N)",
        ),
    ],
)
def test_parse_refuses_with_a_usable_message(text: str, hostname: str | None, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Shard.parse(text, hostname=hostname)
    assert str(info.value) == message


def test_hostname_ordinal_takes_the_trailing_number() -> None:
    assert hostname_ordinal("slaprobe-shanghai-12") == 12
