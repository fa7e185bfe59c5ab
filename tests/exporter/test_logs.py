"""The log pipeline on real files: access-log SLIs, user mappings, reloads, restarts, tickets."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from slaprobe import conventions as c
from slaprobe.config import Config, parse_config
from slaprobe.demo.shop import CYCLE_SECONDS, ticket_events_between
from slaprobe.exporter.exposition import format_labels
from slaprobe.exporter.logs import LogPipeline, state_file_name
from slaprobe.probes.feedback import TicketTracker
from slaprobe.probes.parsers import parse_jsonl

HOUR = 3600.0
T0 = 1_700_000_000.0
DEMO_CONFIG = Path(__file__).resolve().parents[2] / "demo" / "demo.yaml"


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def nginx(status: int, request_time: str = "0.120", path: str = "/", method: str = "GET") -> str:
    return (
        f'10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] "{method} {path} HTTP/1.1" {status} 512 "-" "curl/8.5" '
        f"{request_time}\n"
    )


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.write("".join(lines))


def config(tmp_path: Path, logs: list[dict[str, Any]] | None = None, **extra: Any) -> Config:
    doc: dict[str, Any] = {
        "version": "v1",
        "services": {
            "shop": {
                "sla": {"latency": {"threshold": "250ms", "target": 99}},
                "logs": logs
                if logs is not None
                else [{"name": "shop-access", "path": str(tmp_path / "access.log"), "format": "nginx_combined"}],
            }
        },
        **extra,
    }
    return parse_config(yaml.safe_dump(doc, allow_unicode=True))


def series(pipeline: LogPipeline) -> dict[str, float]:
    """Every sample of the rendered text, by its name and labels."""
    out = {}
    for line in pipeline.render().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


@pytest.fixture
def access_log(tmp_path: Path) -> Path:
    path = tmp_path / "access.log"
    path.write_text("")
    return path


def started(pipeline: LogPipeline, cfg: Config) -> LogPipeline:
    """Apply ``cfg`` and poll once, so tailers that start at the end are positioned."""
    pipeline.apply(cfg)
    pipeline.poll_now()
    return pipeline


def test_access_log_requests_are_counted_by_service_and_code(tmp_path: Path, access_log: Path) -> None:
    pipeline = started(LogPipeline(None), config(tmp_path))
    append(access_log, nginx(200), nginx(200), nginx(503), nginx(404))
    pipeline.poll_now()
    s = series(pipeline)
    assert s['slaprobe_http_requests_total{service="shop",code="200"}'] == 2
    assert s['slaprobe_http_requests_total{service="shop",code="503"}'] == 1
    assert s['slaprobe_http_requests_total{service="shop",code="404"}'] == 1
    assert s['slaprobe_log_lines_total{source="shop-access",result="parsed"}'] == 4
    assert s['slaprobe_log_bytes_read_total{source="shop-access"}'] == len(nginx(200)) * 4
    assert s['slaprobe_log_lag_bytes{source="shop-access"}'] == 0


def test_the_duration_histogram_has_the_sla_threshold_as_a_bound_and_zero_in_the_first_bucket(
    tmp_path: Path, access_log: Path
) -> None:
    pipeline = started(LogPipeline(None), config(tmp_path))
    append(access_log, nginx(200, "0.000"), nginx(200, "0.250"), nginx(200, "0.251"), nginx(200, "12.5"))
    pipeline.poll_now()
    s = series(pipeline)
    bucket = 'slaprobe_http_request_duration_seconds_bucket{service="shop",le="%s"}'
    assert s[bucket % "0.005"] == 1  # the 0.000 of a cached response
    assert s[bucket % "0.25"] == 2  # the threshold itself is within it
    assert s[bucket % "0.5"] == 3
    assert s[bucket % "10"] == 3 and s[bucket % "+Inf"] == 4
    assert s['slaprobe_http_request_duration_seconds_count{service="shop"}'] == 4
    assert s['slaprobe_http_request_duration_seconds_sum{service="shop"}'] == pytest.approx(13.001)


def test_a_service_with_an_access_log_has_a_duration_histogram_before_any_request(
    tmp_path: Path, access_log: Path
) -> None:
    s = series(started(LogPipeline(None), config(tmp_path)))
    assert s['slaprobe_http_request_duration_seconds_count{service="shop"}'] == 0
    assert s['slaprobe_log_lines_total{source="shop-access",result="unparsed"}'] == 0


def test_unparsable_and_over_long_lines_are_counted_and_skipped(tmp_path: Path, access_log: Path) -> None:
    pipeline = started(LogPipeline(None), config(tmp_path))
    append(access_log, "garbage\n", nginx(200), "x" * 100_000 + "\n", "\n", nginx(500))
    pipeline.poll_now()
    s = series(pipeline)
    assert s['slaprobe_log_lines_total{source="shop-access",result="parsed"}'] == 2
    assert s['slaprobe_log_lines_total{source="shop-access",result="unparsed"}'] == 2
    assert s['slaprobe_log_lines_total{source="shop-access",result="too_long"}'] == 1
    assert s['slaprobe_http_requests_total{service="shop",code="500"}'] == 1


def requests_by_code(pipeline: LogPipeline) -> dict[str, float]:
    return {k: v for k, v in series(pipeline).items() if k.startswith("slaprobe_http_request")}


@pytest.mark.parametrize("wrapper", ["none", "auto", "cri"])
def test_a_long_batch_with_odd_lines_here_and_there_counts_as_line_by_line(
    tmp_path: Path, access_log: Path, wrapper: str
) -> None:
    # The same lines through a source that feeds a user metric too (parsed line by line) and
    # through one that feeds only the HTTP metrics (tallied in blocks, odd parts line by line).
    cri = wrapper == "cri"
    lines = [nginx(200 + i % 7, f"0.{i % 1000:03d}") for i in range(5000)]
    lines[10] = "garbage\n"
    lines[2500] = nginx(404).replace("curl", 'cu\\"rl')  # an escaped quote
    lines[4000] = "\n"
    lines[4999] = nginx(500, "-")
    if cri:
        lines = [f"2023-11-14T22:13:20.000000001Z stdout F {line}" for line in lines]
        lines[3000:3001] = ["2023-11-14T22:13:20.000000001Z stdout P " + nginx(201)[:30] + "\n",
                            "2023-11-14T22:13:20.000000001Z stderr F " + nginx(202),
                            "2023-11-14T22:13:20.000000001Z stdout F " + nginx(201)[30:]]  # fmt: skip
    counted = []
    for metrics in ([], [{"name": "all_total", "type": "counter"}]):
        (tmp_path / "access.log").write_text("")
        source = {"name": "shop-access", "path": str(access_log), "format": "nginx_combined", "wrapper": wrapper}
        pipeline = started(LogPipeline(None), config(tmp_path, [{**source, "metrics": metrics}]))
        assert (pipeline._sources["shop-access"].tally is None) == bool(metrics)
        append(access_log, *lines)
        pipeline.poll_now()
        s = series(pipeline)
        assert s['slaprobe_log_lines_total{source="shop-access",result="unparsed"}'] == 2  # garbage, the blank line
        counted.append(
            (requests_by_code(pipeline), s['slaprobe_log_lines_total{source="shop-access",result="parsed"}'])
        )
        pipeline.close()
    total = 'slaprobe_http_request_duration_seconds_sum{service="shop"}'
    sums = [requests.pop(total) for requests, _ in counted]  # added in another order: the last digit may differ
    assert sums[0] == pytest.approx(sums[1], rel=1e-12)
    assert counted[0] == counted[1]
    assert counted[0][1] == len(lines) - 2 - cri  # CRI: two chunks made one line


def test_a_reload_between_a_read_and_its_count_feeds_the_new_user_metric_too(tmp_path: Path, access_log: Path) -> None:
    pipeline = started(LogPipeline(None), config(tmp_path))
    append(access_log, nginx(200), nginx(503))
    src = pipeline._sources["shop-access"]
    batch = pipeline._read(src)  # tallied: the HTTP metrics were all the source fed
    assert batch.tallied and not batch.events
    metric = {"name": "errors_total", "type": "counter", "match": {"status": {"ge": 500}}}
    source = {"name": "shop-access", "path": str(access_log), "format": "nginx_combined", "metrics": [metric]}
    pipeline.apply(config(tmp_path, [source]))
    pipeline._count(src, batch)
    s = series(pipeline)
    assert s['errors_total{service="shop"}'] == 1
    assert s['slaprobe_http_requests_total{service="shop",code="503"}'] == 1


def test_a_log_present_before_the_start_is_read_from_its_end_unless_configured(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(nginx(200) * 3)
    tail = started(LogPipeline(None), config(tmp_path))
    assert 'slaprobe_http_requests_total{service="shop",code="200"}' not in series(tail)
    whole = config(tmp_path, [{"name": "a", "path": str(log), "format": "nginx_combined", "start": "beginning"}])
    assert series(started(LogPipeline(None), whole))['slaprobe_http_requests_total{service="shop",code="200"}'] == 3


def test_a_renamed_and_recreated_log_loses_no_line_and_counts_a_rotation(tmp_path: Path, access_log: Path) -> None:
    pipeline = started(
        LogPipeline(None),
        config(tmp_path, [{"name": "a", "path": str(tmp_path / "access.log*"), "format": "nginx_combined"}]),
    )
    append(access_log, nginx(200))
    pipeline.poll_now()
    append(access_log, nginx(201))  # written before the rotation, not read yet
    os.rename(access_log, tmp_path / "access.log.1")
    append(access_log, nginx(202))
    pipeline.poll_now()
    s = series(pipeline)
    assert [s[f'slaprobe_http_requests_total{{service="shop",code="{code}"}}'] for code in (200, 201, 202)] == [1, 1, 1]
    assert s['slaprobe_log_rotations_total{source="a"}'] == 1


USER_METRICS: list[dict[str, Any]] = [
    {
        "name": "checkout_errors_total",
        "type": "counter",
        "help": "Failed checkouts by payment provider.",
        "match": {"route": "/checkout", "status": {"ge": 500}},
        "labels": {"provider": "psp"},
        "values": {"provider": ["alipay", "wechat"]},
    },
    {
        "name": "checkout_upstream_seconds",
        "type": "histogram",
        "match": {"route": {"regex": "^/check"}},
        "value": {"field": "upstream_us", "unit": "µs"},
        "buckets": [0.001, 0.01],
    },
    {"name": "queue_depth", "type": "gauge", "value": "queue"},
    {"name": "tenant_requests_total", "type": "counter", "labels": ["tenant"], "max_label_values": 2},
]


def app_log_config(tmp_path: Path, metrics: list[dict[str, Any]] | None = None) -> Config:
    source = {
        "name": "app",
        "path": str(tmp_path / "app.jsonl"),
        "format": "jsonl",
        "metrics": USER_METRICS if metrics is None else metrics,
    }
    return config(tmp_path, [source])


def jsonl(**fields: Any) -> str:
    return json.dumps(fields) + "\n"


def test_jsonl_user_metrics_count_the_same_tallied_in_blocks_as_line_by_line(tmp_path: Path) -> None:
    # Without a gauge the source's lines are tallied by field combination; with one, parsed line
    # by line. Shapes change, odd lines come and go, the tenant cap overflows: the same counts.
    lines = []
    for i in range(3000):
        fields = {
            "route": ["/checkout", "/home"][i % 2],
            "status": 200 + 100 * (i % 4),
            "psp": ["alipay", "x"][i % 3 % 2],
        }
        fields |= {"upstream_us": i % 700, "tenant": f"t{i % 5}", "queue": i}
        if 1000 <= i < 1500:
            fields = dict(reversed(fields.items()))  # another key order
        lines.append(json.dumps(fields, separators=(",", ":")) + "\n")
    lines[10], lines[2000], lines[2500] = "garbage\n", jsonl(route="/checkout", status=500, psp="w\u00e9"), "\n"
    app = tmp_path / "app.jsonl"
    counted = []
    no_gauge = [m for m in USER_METRICS if m["type"] != "gauge"]
    for metrics in (no_gauge, USER_METRICS):
        app.write_text("")
        pipeline = started(LogPipeline(None), app_log_config(tmp_path, metrics))
        assert (pipeline._sources["app"].field_tally is None) == (metrics is USER_METRICS)
        append(app, *lines)
        pipeline.poll_now()
        s = series(pipeline)
        assert s['slaprobe_log_lines_total{source="app",result="unparsed"}'] == 2
        counted.append(
            {
                k: v
                for k, v in s.items()
                if not k.startswith(("queue", "slaprobe_log_bytes", "slaprobe_log_source_last"))
            }
        )
    total = 'checkout_upstream_seconds_sum{service="shop"}'
    assert counted[0].pop(total) == pytest.approx(counted[1].pop(total), rel=1e-12)
    assert counted[0] == counted[1]
    assert counted[0]['tenant_requests_total{service="shop",tenant="__other__"}'] > 0


def test_user_metrics_match_label_convert_units_and_cap(tmp_path: Path) -> None:
    app = tmp_path / "app.jsonl"
    app.write_text("")
    pipeline = started(LogPipeline(None), app_log_config(tmp_path))
    before = series(pipeline)
    assert before['checkout_errors_total{service="shop",provider="alipay"}'] == 0  # known values: 0 from the start
    assert before['checkout_errors_total{service="shop",provider="wechat"}'] == 0
    assert 'queue_depth{service="shop"}' not in before
    append(
        app,
        jsonl(route="/checkout", status=502, psp="alipay", upstream_us=500, queue=3, tenant="a"),
        jsonl(route="/checkout", status=200, psp="alipay", upstream_us=5000, queue=4, tenant="b"),
        jsonl(route="/checkout", status=503, psp="paypal", upstream_us=50000, tenant="c"),
        jsonl(route="/home", status=500, psp="alipay", upstream_us=1, tenant="a"),
    )
    pipeline.poll_now()
    s = series(pipeline)
    assert s['checkout_errors_total{service="shop",provider="alipay"}'] == 1
    assert s['checkout_errors_total{service="shop",provider="wechat"}'] == 0
    assert s['checkout_errors_total{service="shop",provider="paypal"}'] == 1
    assert s['checkout_upstream_seconds_bucket{service="shop",le="0.001"}'] == 1
    assert s['checkout_upstream_seconds_bucket{service="shop",le="0.01"}'] == 2
    assert s['checkout_upstream_seconds_count{service="shop"}'] == 3
    assert s['checkout_upstream_seconds_sum{service="shop"}'] == pytest.approx(0.0555)
    assert s['queue_depth{service="shop"}'] == 4
    assert s['tenant_requests_total{service="shop",tenant="a"}'] == 2
    assert s['tenant_requests_total{service="shop",tenant="b"}'] == 1
    assert s['tenant_requests_total{service="shop",tenant="__other__"}'] == 1
    assert "# HELP checkout_errors_total Failed checkouts by payment provider.\n" in pipeline.render()
    assert "# TYPE checkout_upstream_seconds histogram\n" in pipeline.render()
    assert 'slaprobe_http_requests_total{service="shop"' not in pipeline.render()  # jsonl: no access-log SLIs


def test_a_reload_keeps_the_counters_of_what_did_not_change(tmp_path: Path, access_log: Path) -> None:
    app = tmp_path / "app.jsonl"
    app.write_text("")
    both: list[dict[str, Any]] = [
        {"name": "shop-access", "path": str(access_log), "format": "nginx_combined"},
        {"name": "app", "path": str(app), "format": "jsonl", "metrics": USER_METRICS},
    ]
    pipeline = started(LogPipeline(None), config(tmp_path, both))
    append(access_log, nginx(200), nginx(500))
    append(app, jsonl(route="/checkout", status=500, psp="alipay", tenant="a", queue=1))
    pipeline.poll_now()

    changed = [dict(m) for m in USER_METRICS]
    changed[3] = {**changed[3], "max_label_values": 5}  # only tenant_requests_total changes
    pipeline.apply(config(tmp_path, [both[0], {**both[1], "metrics": changed}]))
    pipeline.poll_now()
    s = series(pipeline)
    assert s['slaprobe_http_requests_total{service="shop",code="500"}'] == 1
    assert s['slaprobe_log_lines_total{source="shop-access",result="parsed"}'] == 2
    assert s['checkout_errors_total{service="shop",provider="alipay"}'] == 1
    assert s['slaprobe_log_lines_total{source="app",result="parsed"}'] == 1
    assert 'tenant_requests_total{service="shop",tenant="a"}' not in s  # redefined: starts again

    pipeline.apply(config(tmp_path, [both[0]]))  # the app log is gone: so are its series
    s = series(pipeline)
    assert not any("app" in name or name.startswith("checkout") for name in s)
    assert s['slaprobe_http_requests_total{service="shop",code="200"}'] == 1

    pipeline.apply(config(tmp_path, [{**both[0], "path": str(tmp_path / "other.log")}]))
    s = series(pipeline)
    assert s['slaprobe_http_requests_total{service="shop",code="200"}'] == 1  # per service, not per file
    assert s['slaprobe_log_lines_total{source="shop-access",result="parsed"}'] == 0  # a new file


def test_a_restart_with_a_state_dir_resumes_without_double_counting(tmp_path: Path, access_log: Path) -> None:
    state = tmp_path / "state"
    cfg = config(tmp_path)
    first = started(LogPipeline(state), cfg)
    append(access_log, nginx(200), nginx(200), nginx(200))
    first.poll_now()
    assert series(first)['slaprobe_http_requests_total{service="shop",code="200"}'] == 3
    first.close()
    append(access_log, nginx(500), nginx(200))  # written while stopped

    second = LogPipeline(state)
    second.apply(cfg)
    second.poll_now()
    s = series(second)
    assert s['slaprobe_http_requests_total{service="shop",code="200"}'] == 1
    assert s['slaprobe_http_requests_total{service="shop",code="500"}'] == 1
    assert s['slaprobe_log_lines_total{source="shop-access",result="parsed"}'] == 2


async def test_the_run_loop_counts_new_lines_and_saves_on_cancel(tmp_path: Path, access_log: Path) -> None:
    state = tmp_path / "state"
    pipeline = LogPipeline(state, poll_interval=0.01)
    pipeline.apply(config(tmp_path))
    task = asyncio.create_task(pipeline.run())
    key = 'slaprobe_http_requests_total{service="shop",code="200"}'
    try:
        await until(lambda: pipeline.polls > 0)  # the tailer stands at the end of the log
        append(access_log, nginx(200), nginx(200))
        await until(lambda: series(pipeline).get(key) == 2)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    append(access_log, nginx(200))
    again = LogPipeline(state)
    again.apply(config(tmp_path))
    again.poll_now()
    assert series(again)[key] == 1


async def test_a_reload_while_the_loop_runs_moves_to_the_new_file(tmp_path: Path, access_log: Path) -> None:
    pipeline = LogPipeline(tmp_path / "state", poll_interval=0.01)
    pipeline.apply(config(tmp_path))
    task = asyncio.create_task(pipeline.run())
    key = 'slaprobe_http_requests_total{service="shop",code="%d"}'
    moved = tmp_path / "moved.log"
    moved.write_text("")
    try:
        await until(lambda: pipeline.polls > 0)
        append(access_log, nginx(200))
        await until(lambda: series(pipeline).get(key % 200) == 1)
        pipeline.apply(config(tmp_path, [{"name": "shop-access", "path": str(moved), "format": "nginx_combined"}]))
        polls = pipeline.polls
        await until(lambda: pipeline.polls > polls + 1)  # the new tailer stands at the end of moved.log
        append(moved, nginx(404))
        append(access_log, nginx(500))  # no longer followed
        await until(lambda: series(pipeline).get(key % 404) == 1)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    s = series(pipeline)
    assert s[key % 200] == 1 and key % 500 not in s


class CommitBlocked(LogPipeline):
    """A pipeline whose first commit waits until the test releases it (a slow disk at shutdown)."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, poll_interval=0.01)
        self.committing = threading.Event()
        self.release = threading.Event()

    def _persist(self, src: Any, snapshot: bytes | None, *, force: bool = False) -> None:
        if not self.committing.is_set():
            self.committing.set()
            self.release.wait(10)
        super()._persist(src, snapshot, force=force)


class CommitNeverStarted(LogPipeline):
    """A pipeline cancelled after counting a batch and before its commit reached the worker thread."""

    async def _in_worker(self, fn: Any, *args: Any) -> Any:
        if fn == self._persist:
            raise asyncio.CancelledError
        return await super()._in_worker(fn, *args)


def lines_counted(pipeline: LogPipeline) -> float:
    """parsed + unparsed lines of the source shop-access."""
    s = series(pipeline)
    return sum(s[f'slaprobe_log_lines_total{{source="shop-access",result="{r}"}}'] for r in ("parsed", "unparsed"))


async def test_a_run_cancelled_while_its_commit_runs_waits_for_it_and_counts_nothing_twice(
    tmp_path: Path, access_log: Path
) -> None:
    state = tmp_path / "state"
    append(access_log, nginx(200) * 5)
    pipeline = CommitBlocked(state)
    pipeline.apply(config(tmp_path, [{"name": "shop-access", "path": str(access_log), "format": "nginx_combined",
                                      "start": "beginning"}]))  # fmt: skip
    task = asyncio.create_task(pipeline.run())
    await until(pipeline.committing.is_set)  # the 5 lines are counted; their commit is under way
    task.cancel()
    threading.Timer(0.2, pipeline.release.set).start()  # the commit ends after the cancellation
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lines_counted(pipeline) == 5
    append(access_log, nginx(500))
    again = started(LogPipeline(state), config(tmp_path))
    assert lines_counted(again) == 1


async def test_a_run_cancelled_after_counting_and_before_committing_commits_on_close(
    tmp_path: Path, access_log: Path
) -> None:
    state = tmp_path / "state"
    append(access_log, nginx(200) * 5)
    pipeline = CommitNeverStarted(state, poll_interval=0.01)
    pipeline.apply(config(tmp_path, [{"name": "shop-access", "path": str(access_log), "format": "nginx_combined",
                                      "start": "beginning"}]))  # fmt: skip
    with pytest.raises(asyncio.CancelledError):
        await pipeline.run()
    assert lines_counted(pipeline) == 5
    append(access_log, nginx(500))
    again = started(LogPipeline(state), config(tmp_path))
    assert lines_counted(again) == 1


def test_closing_logs_what_each_source_counted_since_it_started(
    tmp_path: Path, access_log: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pipeline = started(LogPipeline(tmp_path / "state"), config(tmp_path))
    append(access_log, nginx(200), "garbage\n", nginx(503), "x" * 100_000 + "\n")
    pipeline.poll_now()
    with caplog.at_level(logging.INFO, logger="slaprobe.logs"):
        pipeline.close()
    assert [r.getMessage() for r in caplog.records] == [
        "log source 'shop-access' closed: 3 lines counted since the source started (2 parsed, 1 unparsed), "
        "1 too long skipped, 0 rotations, 0 bytes unread at the last poll; offsets saved"
    ]


async def until(condition: Any, timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds, failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------- tickets


def ticket_config(tmp_path: Path, **feedback: Any) -> Config:
    source = {
        "name": "desk",
        "path": str(tmp_path / "tickets.jsonl"),
        "format": "jsonl",
        "service": "shop",
        "quality_categories": ["technical"],
        **feedback,
    }
    return config(tmp_path, [], feedback=[source])


def desk(name: str, **labels: str) -> str:
    """A series name of the feedback source ``desk``."""
    return f"{name}{{{format_labels((('source', 'desk'), *labels.items()))}}}"


def ticket(ticket_id: str, event: str, hours: float, **fields: str) -> str:
    return jsonl(id=ticket_id, event=event, time=T0 + hours * HOUR, **fields)


def test_a_ticket_deadline_passing_while_open_is_a_breach(tmp_path: Path) -> None:
    clock = FakeClock(T0 + 1 * HOUR)
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(ticket("T-1", "opened", 0, category="operations", urgency="urgent", channel="phone"))
    pipeline = started(LogPipeline(None, clock), ticket_config(tmp_path))  # feedback: start at the beginning
    breach = desk(c.FEEDBACK_SLA_BREACHES, category="operations", urgency="urgent", stage="first_response")
    s = series(pipeline)
    assert s[breach] == 0
    assert s[desk(c.FEEDBACK_TICKETS, service="shop", category="operations", urgency="urgent")] == 1
    assert s[desk(c.FEEDBACK_OPEN_TICKETS, category="operations", urgency="urgent")] == 1
    assert s[desk(c.FEEDBACK_OLDEST_OPEN_AGE)] == HOUR
    assert s[desk(c.FEEDBACK_TICKETS_BY_CHANNEL, channel="phone")] == 1
    assert s['slaprobe_log_lines_total{source="desk",result="parsed"}'] == 1

    clock.now = T0 + 12 * HOUR + 1
    pipeline.poll_now()
    assert series(pipeline)[breach] == 1
    append(tickets, ticket("T-1", "first_response", 13), ticket("T-1", "resolved", 14))
    pipeline.poll_now()
    s = series(pipeline)
    assert s[breach] == 1  # the late response does not count it again
    assert s[desk(c.FEEDBACK_OPEN_TICKETS, category="operations", urgency="urgent")] == 0
    assert s[desk(c.FEEDBACK_RESOLUTION + "_sum", category="operations", urgency="urgent")] == 14 * HOUR
    assert s[desk(c.FEEDBACK_FIRST_RESPONSE + "_bucket", category="operations", urgency="urgent", le="43200")] == 0


def test_open_tickets_survive_a_restart_and_breach_afterwards(tmp_path: Path) -> None:
    clock = FakeClock(T0 + HOUR)
    state = tmp_path / "state"
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        ticket("A", "opened", 0, category="technical")
        + ticket("B", "opened", 0, category="service")
        + ticket("B", "resolved", 0.5)
    )
    first = started(LogPipeline(state, clock), ticket_config(tmp_path))
    assert series(first)[desk(c.FEEDBACK_QUALITY_TICKETS, service="shop")] == 1
    first.close()

    clock.now = T0 + 25 * HOUR
    second = started(LogPipeline(state, clock), ticket_config(tmp_path))
    s = series(second)
    assert s[desk(c.FEEDBACK_OPEN_TICKETS, category="technical", urgency="general")] == 1
    assert s[desk(c.FEEDBACK_SLA_BREACHES, category="technical", urgency="general", stage="first_response")] == 1
    assert s[desk(c.FEEDBACK_TICKETS, service="shop", category="technical", urgency="general")] == 0  # not re-read
    assert s[desk(c.FEEDBACK_OLDEST_OPEN_AGE)] == 25 * HOUR
    append(tickets, ticket("A", "resolved", 26))
    clock.now = T0 + 26 * HOUR
    second.poll_now()
    s = series(second)
    assert s[desk(c.FEEDBACK_RESOLUTION + "_count", category="technical", urgency="general")] == 1
    assert s[desk(c.FEEDBACK_OLDEST_OPEN_AGE)] == 0


def test_feedback_repeats_reopens_and_auto_closes_carry_across_a_restart(tmp_path: Path) -> None:
    clock = FakeClock(T0 + HOUR)
    state = tmp_path / "state"
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(
        ticket("A", "opened", 0, category="technical", channel="app", customer="alice@example.com")
        + ticket("A", "resolved", 0.5)
        + ticket("B", "opened", 0.5, category="technical", channel="app")
        + ticket("B", "resolved", 0.7)
    )
    first = started(LogPipeline(state, clock), ticket_config(tmp_path))
    first.close()
    assert not any(b"alice" in path.read_bytes() for path in state.iterdir())

    second = started(LogPipeline(state, clock), ticket_config(tmp_path))
    append(
        tickets,
        ticket("A", "reopened", 2),
        ticket("C", "opened", 3, category="technical", channel="app", customer="alice@example.com"),
    )
    second.poll_now()
    key = {"service": "shop", "category": "technical", "channel": "app"}
    s = series(second)
    assert s[desk(c.FEEDBACK_REOPENED, **key)] == 1  # A was resolved before the restart
    assert s[desk(c.FEEDBACK_REPEATS, **key)] == 1  # alice again, within the window across the restart
    clock.now = T0 + 8 * 24 * HOUR
    second.poll_now()
    assert series(second)[desk(c.FEEDBACK_CLOSED, **key, outcome=c.CLOSED_AUTO)] == 1  # B, resolved before
    second.close()


def test_a_reload_that_changes_deadlines_keeps_the_open_tickets(tmp_path: Path) -> None:
    clock = FakeClock(T0 + HOUR)
    (tmp_path / "tickets.jsonl").write_text(ticket("A", "opened", 0, category="technical"))
    pipeline = started(LogPipeline(None, clock), ticket_config(tmp_path))
    pipeline.apply(ticket_config(tmp_path, sla={"technical": {"first_response": "2h"}}))
    clock.now = T0 + 2 * HOUR + 1
    pipeline.poll_now()
    s = series(pipeline)
    assert s[desk(c.FEEDBACK_SLA_BREACHES, category="technical", urgency="general", stage="first_response")] == 1
    assert s[desk(c.FEEDBACK_OPEN_TICKETS, category="technical", urgency="general")] == 1


def test_ticket_events_with_odd_input_are_counted_by_result(tmp_path: Path) -> None:
    (tmp_path / "tickets.jsonl").write_text(
        ticket("A", "opened", 0) + ticket("A", "opened", 0) + jsonl(event="opened") + "not json\n"
    )
    s = series(started(LogPipeline(None, FakeClock()), ticket_config(tmp_path)))
    assert s[desk(c.FEEDBACK_EVENTS, result=c.EVENT_APPLIED)] == 1
    assert s[desk(c.FEEDBACK_EVENTS, result=c.EVENT_DUPLICATE)] == 1
    assert s[desk(c.FEEDBACK_EVENTS, result=c.EVENT_INVALID)] == 1
    assert s['slaprobe_log_lines_total{source="desk",result="unparsed"}'] == 1


def test_one_cycle_of_the_demo_ticket_desk_breaches_as_its_script_says() -> None:
    cfg = parse_config(DEMO_CONFIG.read_text())
    assert cfg.feedback and cfg.feedback[0].path.endswith("/tickets.jsonl")
    clock = FakeClock(1000 * CYCLE_SECONDS)
    tracker = TicketTracker(cfg.feedback[0], clock)
    for second in range(1, int(CYCLE_SECONDS) + 1):  # as the exporter would see it, second by second
        clock.now = 1000 * CYCLE_SECONDS + second
        for event in ticket_events_between(clock.now - 1, clock.now):
            tracker.consume(event)
        tracker.tick()
    assert tracker.breaches == {
        ("operations", "general", c.STAGE_FIRST_RESPONSE): 1,  # B, passed while open
        ("service", "general", c.STAGE_FIRST_RESPONSE): 1,  # C, 25 h old on arrival
        ("service", "general", c.STAGE_RESOLUTION): 1,
    }
    assert tracker.tickets[("billing", "billing", "urgent")] == 1  # F, routed by its text
    assert tracker.tickets[("shop", "operations", "general")] == 2  # B, and G routed by its text
    assert sum(tracker.tickets.values()) == 7 and sum(tracker.quality.values()) == 2
    assert tracker.open == {} and tracker.events[c.EVENT_DUPLICATE] == 1


def test_the_demo_config_scrapes_the_access_log_and_the_ticket_log() -> None:
    cfg = parse_config(DEMO_CONFIG.read_text())
    pipeline = LogPipeline(None)
    pipeline.apply(cfg)
    assert set(pipeline.sources()) >= {"shop-access", cfg.feedback[0].name}
    assert any(m.type == "histogram" for m in cfg.services["shop"].logs[0].metrics)


def test_a_jsonl_line_with_a_lone_surrogate_gives_the_replacement_character_in_its_fields() -> None:
    event = parse_jsonl(b'{"psp": "\\udcff", "ok": "\\ud83d\\ude00", "nested": {"k": "\\ud800"}}\n')
    assert event is not None
    assert event.fields["psp"] == "\ufffd"
    assert event.fields["ok"] == "\U0001f600"  # a surrogate pair is one code point, kept
    assert event.fields["nested"] == '{"k":"\ufffd"}'


@pytest.mark.parametrize("saved", [b"[1, 2, 3]", b'"tickets"', b"{not json", b'{"version": 1, "open": 5}'])
def test_a_ticket_state_file_that_holds_no_ticket_state_is_moved_aside_with_a_warning(
    tmp_path: Path, saved: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / state_file_name("tickets", "desk")
    path.write_bytes(saved)
    (tmp_path / "tickets.jsonl").write_text(ticket("A", "opened", 0, category="technical"))
    with caplog.at_level(logging.WARNING, logger="slaprobe.logs"):
        pipeline = started(LogPipeline(state, FakeClock(T0 + HOUR)), ticket_config(tmp_path))
    assert "is not valid" in caplog.text and "moved aside" in caplog.text
    assert [p.read_bytes() for p in state.glob(f"{path.name}.corrupt-*")] == [saved]
    assert series(pipeline)[desk(c.FEEDBACK_OPEN_TICKETS, category="technical", urgency="general")] == 1
    pipeline.close()
    assert json.loads(path.read_bytes())["open"]  # a fresh state written in its place


def test_a_failed_state_save_is_counted_and_the_offsets_wait_for_the_tickets(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    in_the_way = state / state_file_name("tickets", "desk")
    in_the_way.mkdir()  # the rename onto it fails
    (tmp_path / "tickets.jsonl").write_text(ticket("A", "opened", 0, category="technical"))
    first = started(LogPipeline(state, FakeClock(T0 + HOUR)), ticket_config(tmp_path))
    assert series(first)['slaprobe_state_save_failures_total{source="desk"}'] >= 1
    first.close()
    in_the_way.rmdir()
    second = started(LogPipeline(state, FakeClock(T0 + HOUR)), ticket_config(tmp_path))
    # The offsets were not committed past the unsaved tickets: the line is read again, nothing lost.
    assert series(second)[desk(c.FEEDBACK_TICKETS, service="shop", category="technical", urgency="general")] == 1
    assert series(second)['slaprobe_state_save_failures_total{source="desk"}'] == 0


def test_a_symlink_planted_at_the_temporary_name_of_a_state_save_is_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    path = state / state_file_name("tickets", "desk")
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (state / f".{path.name}.{os.getpid()}.tmp").symlink_to(victim)
    (tmp_path / "tickets.jsonl").write_text(ticket("A", "opened", 0, category="technical"))
    pipeline = started(LogPipeline(state, FakeClock(T0 + HOUR)), ticket_config(tmp_path))
    pipeline.close()
    assert victim.read_text() == "untouched"
    assert json.loads(path.read_bytes())["open"]
    assert series(pipeline)['slaprobe_state_save_failures_total{source="desk"}'] == 0
