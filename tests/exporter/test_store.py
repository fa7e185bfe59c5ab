"""The result store: counters, histogram with SLA bounds, text exposition, reload semantics."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from slaprobe.exporter.store import HISTORY_LENGTH, History, ProbeMeta, ResultStore, scheduled_samples
from slaprobe.probes.result import CertInfo, FailureReason, ProbeResult, Sample, StepResult


def meta(probe: str = "home", **changes: object) -> ProbeMeta:
    fields: dict[str, object] = dict(
        service="shop",
        probe=probe,
        kind="http",
        target="http://x/",
        location="dc1",
        interval=30.0,
        timeout=10.0,
        buckets=(0.1, 0.3, 1.0),
        latency_threshold=0.3,
    )
    fields.update(changes)
    return ProbeMeta(**fields)  # type: ignore[arg-type]


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


LABELS = (("location", "dc1"), ("probe", "home"), ("service", "shop"))


def key(name: str, **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, tuple(sorted((*LABELS, *extra.items()))))


def test_runs_failures_and_compliance_are_counted_from_results() -> None:
    store = ResultStore()
    store.sync([meta()])
    store.record(("shop", "home"), ProbeResult(True, 0.2), now=100)
    store.record(("shop", "home"), ProbeResult(True, 0.5), now=130)  # slower than the 300 ms SLA
    store.record(("shop", "home"), ProbeResult(False, 0.3, FailureReason.HTTP_STATUS, "503"), now=160)
    got = samples(store.render())
    assert got[("slaprobe_probe_runs_total", LABELS)] == 3
    assert got[("slaprobe_probe_within_sla_total", LABELS)] == 1
    assert got[key("slaprobe_probe_failures_total", reason="http_status")] == 1
    assert got[("slaprobe_probe_success", LABELS)] == 0
    assert got[("slaprobe_probe_last_run_timestamp_seconds", LABELS)] == 160


def test_a_duration_equal_to_the_threshold_lands_in_the_threshold_bucket() -> None:
    store = ResultStore()
    store.sync([meta()])
    store.record(("shop", "home"), ProbeResult(True, 0.3), now=1)
    store.record(("shop", "home"), ProbeResult(True, 0.0), now=2)
    got = samples(store.render())
    bucket = "slaprobe_probe_duration_seconds_bucket"
    assert got[key(bucket, le="0.1")] == 1  # a zero counts in the first bucket
    assert got[key(bucket, le="0.3")] == 2
    assert got[key(bucket, le="+Inf")] == 2
    assert got[("slaprobe_probe_duration_seconds_count", LABELS)] == 2


def test_phases_cert_expiry_and_flow_steps_of_the_last_run_are_exported() -> None:
    store = ResultStore()
    store.sync([meta()])
    result = ProbeResult(
        False,
        0.4,
        FailureReason.ASSERTION,
        phases={"connect": 0.01, "tls": 0.02},
        cert=CertInfo(leaf_expiry=2e9, earliest_expiry=2e9),
        steps=(StepResult("login", True, 0.1), StepResult("bill", False, 0.2, FailureReason.ASSERTION)),
    )
    store.record(("shop", "home"), result, now=1)
    got = samples(store.render())
    assert got[key("slaprobe_probe_phase_seconds", phase="tls")] == 0.02
    assert got[("slaprobe_tls_cert_expiry_timestamp_seconds", LABELS)] == 2e9
    assert got[key("slaprobe_flow_step_duration_seconds", step="bill")] == 0.2
    assert got[key("slaprobe_flow_step_failures_total", reason="assertion", step="bill")] == 1


def test_a_reload_drops_removed_probes_and_keeps_counters_of_the_others() -> None:
    store = ResultStore()
    store.sync([meta("home"), meta("gone")])
    store.record(("shop", "home"), ProbeResult(True, 0.1), now=1)
    store.record(("shop", "gone"), ProbeResult(True, 0.1), now=1)
    store.sync([meta("home", target="http://y/", interval=10.0), meta("new")])
    text = store.render()
    assert 'probe="gone"' not in text
    assert samples(text)[("slaprobe_probe_runs_total", LABELS)] == 1
    assert store.get(("shop", "new")) is not None


def test_a_changed_sla_threshold_restarts_the_histogram() -> None:
    store = ResultStore()
    store.sync([meta()])
    store.record(("shop", "home"), ProbeResult(True, 0.1), now=1)
    store.sync([meta(buckets=(0.1, 0.5, 1.0), latency_threshold=0.5)])
    assert samples(store.render()).get(("slaprobe_probe_runs_total", LABELS)) == 0


def test_label_values_are_escaped_in_the_exposition() -> None:
    store = ResultStore()
    store.sync([meta(service='we"ird\\svc')])
    store.record(('we"ird\\svc', "home"), ProbeResult(True, 0.1), now=1)
    families = {f.name: f for f in text_string_to_metric_families(store.render())}
    assert families["slaprobe_probe_runs"].samples[0].labels["service"] == 'we"ird\\svc'


def test_the_history_keeps_the_last_ten_runs_oldest_first() -> None:
    history = History()
    for i in range(13):
        failed = i % 3 == 0
        result = ProbeResult(
            success=not failed,
            duration=i / 100,
            reason=FailureReason.TIMEOUT if failed else None,
            detail=f"no answer within {i}s" if failed else "",
        )
        history.append(1000.0 + i, result, degraded=i == 11)
    entries = list(history)
    assert len(history) == HISTORY_LENGTH == len(entries)
    assert [e.timestamp for e in entries] == [1000.0 + i for i in range(3, 13)]
    assert [e.duration for e in entries] == [i / 100 for i in range(3, 13)]
    assert [e.success for e in entries] == [i % 3 != 0 for i in range(3, 13)]
    assert [e.reason for e in entries] == [FailureReason.TIMEOUT if i % 3 == 0 else None for i in range(3, 13)]
    assert entries[0].detail == "no answer within 3s" and entries[1].detail == ""
    assert [e.degraded for e in entries] == [i == 11 for i in range(3, 13)]


def test_every_failure_reason_survives_the_packed_history() -> None:
    history = History()
    for reason in FailureReason:
        history.append(0.0, ProbeResult(success=False, duration=0.0, reason=reason), degraded=False)
    assert [e.reason for e in history] == list(FailureReason)[-HISTORY_LENGTH:]


def test_probes_that_fail_the_same_way_share_one_copy_of_the_detail() -> None:
    first, second = History(), History()
    text = "connection to target 127.0.0.1 port 80 failed: connection refused"
    first.append(0.0, ProbeResult(success=False, duration=0.0, reason=FailureReason.CONNECT, detail=text), False)
    copy = text.encode().decode()  # an equal string, not the same object
    assert copy is not text
    second.append(0.0, ProbeResult(success=False, duration=0.0, reason=FailureReason.CONNECT, detail=copy), False)
    assert next(iter(first)).detail is next(iter(second)).detail


def test_phase_and_step_durations_are_histograms_with_the_sla_threshold_as_a_bound() -> None:
    store = ResultStore()
    store.sync([meta(phase_histograms=True)])
    for duration in (0.05, 0.3, 0.7):
        result = ProbeResult(
            True,
            duration,
            phases={"connect": duration / 10, "processing": duration},
            steps=(StepResult("login", True, duration),),
        )
        store.record(("shop", "home"), result, now=duration)
    got = samples(store.render())
    phase = "slaprobe_probe_phase_duration_seconds"
    assert got[key(f"{phase}_bucket", phase="processing", le="0.1")] == 1
    assert got[key(f"{phase}_bucket", phase="processing", le="0.3")] == 2  # the SLA threshold: a bound
    assert got[key(f"{phase}_bucket", phase="processing", le="+Inf")] == 3
    assert got[key(f"{phase}_count", phase="connect")] == 3
    assert round(got[key(f"{phase}_sum", phase="connect")], 6) == 0.105
    step = "slaprobe_flow_step_run_duration_seconds"
    assert got[key(f"{step}_bucket", step="login", le="0.3")] == 2
    assert got[key(f"{step}_count", step="login")] == 3
    assert got[key("slaprobe_flow_step_duration_seconds", step="login")] == 0.7  # the last-run gauge stays


def test_phase_histograms_are_off_unless_the_config_asks_and_go_when_it_stops_asking() -> None:
    store = ResultStore()
    store.sync([meta()])
    run = ProbeResult(True, 0.1, phases={"connect": 0.01}, steps=(StepResult("login", True, 0.1),))
    store.record(("shop", "home"), run, now=1)
    assert "slaprobe_probe_phase_duration_seconds" not in store.render()
    assert "slaprobe_flow_step_run_duration_seconds" not in store.render()
    assert "slaprobe_probe_phase_seconds" in store.render()  # the last run's phases, as always
    store.sync([meta(phase_histograms=True)])
    store.record(("shop", "home"), run, now=2)
    assert "slaprobe_probe_phase_duration_seconds_bucket" in store.render()
    store.sync([meta()])
    assert "slaprobe_probe_phase_duration_seconds" not in store.render()
    assert "slaprobe_flow_step_run_duration_seconds" not in store.render()


def test_a_probe_without_phases_or_steps_exports_no_phase_or_step_histogram() -> None:
    store = ResultStore()
    store.sync([meta()])
    store.record(("shop", "home"), ProbeResult(True, 0.1), now=1)
    text = store.render()
    assert "slaprobe_probe_phase_duration_seconds" not in text
    assert "slaprobe_flow_step_run_duration_seconds" not in text


def test_the_histograms_text_is_cached_until_the_next_run() -> None:
    store = ResultStore()
    store.sync([meta(phase_histograms=True)])
    store.record(("shop", "home"), ProbeResult(True, 0.1, phases={"connect": 0.01}), now=1)
    series = store.get(("shop", "home"))
    assert series is not None
    assert series.render() is series.render()
    first = series.render()["slaprobe_probe_phase_duration_seconds"]
    store.record(("shop", "home"), ProbeResult(True, 0.1, phases={"connect": 0.01}), now=2)
    assert series.render()["slaprobe_probe_phase_duration_seconds"] != first


def test_icmp_loss_ratio_and_jitter_of_a_scheduled_run_are_exported() -> None:
    store = ResultStore()
    store.sync([meta(kind="icmp")])
    published = (
        Sample("probe_icmp_duration_seconds", 0.001, (("phase", "rtt"),)),
        Sample("probe_icmp_packet_loss_ratio", 0.25),
        Sample("probe_icmp_rtt_seconds", 0.002, (("stat", "avg"),)),
        Sample("probe_icmp_rtt_seconds", 0.0005, (("stat", "jitter"),)),
    )
    kept = scheduled_samples(published)
    assert [s.name for s in kept] == ["probe_icmp_packet_loss_ratio", "probe_icmp_rtt_seconds"]
    store.record(("shop", "home"), ProbeResult(True, 0.01, samples=kept), now=1)
    got = samples(store.render())
    assert got[("slaprobe_icmp_packet_loss_ratio", LABELS)] == 0.25
    assert got[("slaprobe_icmp_jitter_seconds", LABELS)] == 0.0005


def test_a_series_kept_across_a_reload_is_shown_with_its_new_description() -> None:
    store = ResultStore()
    store.sync([meta()])
    store.record(("shop", "home"), ProbeResult(True, 0.1), now=1)
    kept = store.get(("shop", "home"))
    store.sync([meta(location="dc2", degraded_after=0.05)])
    assert store.get(("shop", "home")) is kept
    text = samples(store.render())
    moved = (("location", "dc2"), ("probe", "home"), ("service", "shop"))
    assert text[("slaprobe_probe_runs_total", moved)] == 1
    assert text[("slaprobe_probe_degraded_total", moved)] == 0
    assert ("slaprobe_probe_runs_total", LABELS) not in text
