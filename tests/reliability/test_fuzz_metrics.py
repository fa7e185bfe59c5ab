"""Whatever outsiders send, ``/metrics`` of a real ``serve`` stays a page promtool accepts.

Every way text from outside becomes a label value or changes a series, fuzzed on one
``slaprobe serve`` over loopback:

- the Alertmanager webhook: arbitrary JSON bodies, and well-formed notifications whose
  labels hold any text (lone surrogates, newlines, quotes, backslashes, NUL);
- a jsonl log source whose metric takes a label from a line's field;
- a logfmt log source, the same;
- the feedback desk: ticket lines whose service, category, channel and urgency hold any text.

After each example ``/metrics`` must be a whole 200 in valid UTF-8 that
``promtool check metrics`` accepts, the webhook must never answer 5xx, and once every
line has been read the log sources must have counted each one (parsed or not).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaprobe import conventions as c
from tests.support.served import Serve, promtool_accepts

TOKEN = "fuzz-webhook-token"
EXAMPLES = 40  # per property; each example costs one scrape and one promtool run (~40 ms)
SETTINGS: dict[str, Any] = {
    "max_examples": EXAMPLES,
    "deadline": None,
    "database": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}

# Any code point, lone surrogates included (JSON's \\udXXX escapes make them), and the
# characters the exposition format must escape.
ANY_CHAR = st.characters(codec=None, categories=None)
HOSTILE = st.sampled_from(["\\", '"', "\n", "\r", "\x00", "\udcff", "\ud800", "\u2028", "{", "}", "=", ","])
TEXT = st.lists(st.one_of(ANY_CHAR, HOSTILE), max_size=40).map("".join)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


def config(tmp: Path) -> str:
    app = {
        "name": "app",
        "path": str(tmp / "app.jsonl"),
        "format": "jsonl",
        "start": "beginning",
        "metrics": [
            {"name": "fuzz_requests_total", "type": "counter", "labels": {"provider": "psp", "route": "route"}}
        ],
    }
    kv = {
        "name": "kv",
        "path": str(tmp / "app.logfmt"),
        "format": "logfmt",
        "start": "beginning",
        "metrics": [{"name": "fuzz_events_total", "type": "counter", "labels": {"who": "user"}}],
    }
    desk = {"name": "desk", "path": str(tmp / "tickets.jsonl"), "format": "jsonl", "service": "shop"}
    doc = {
        "version": "v1",
        "services": {"shop": {"logs": [app, kv]}},
        "feedback": [desk],
        "alertmanager": {"url": "http://127.0.0.1:9", "webhook_auth": {"bearer_token": TOKEN}},
    }
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = Path(tmp_path_factory.mktemp("fuzz-metrics"))
    (tmp / "slaprobe.yaml").write_text(config(tmp))
    for name in ("app.jsonl", "app.logfmt", "tickets.jsonl"):
        (tmp / name).write_text("")
    serve = Serve(tmp)
    serve.start()
    try:
        yield serve
    finally:
        serve.stop()


def append(serve: Serve, name: str, line: str) -> None:
    """One line, as raw bytes: surrogates become the bytes a broken writer would leave (surrogateescape)."""
    with (serve.tmp / name).open("ab") as out:
        out.write(line.encode("utf-8", "surrogatepass") + b"\n")


def scrape_is_valid(serve: Serve) -> str:
    response = serve.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode("utf-8")  # strict
    promtool_accepts(text)
    return text


def post(serve: Serve, body: bytes) -> int:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    answer = serve.session.post(f"{serve.base}/alertmanager/webhook", data=body, headers=headers, timeout=10)
    return answer.status_code


@settings(**SETTINGS)
@given(body=JSON)
def test_any_json_posted_to_the_webhook_is_refused_or_taken_never_a_5xx(served: Serve, body: Any) -> None:
    assert post(served, json.dumps(body).encode()) < 500
    scrape_is_valid(served)


@settings(**SETTINGS)
@given(labels=st.dictionaries(TEXT, TEXT, max_size=6), status=st.sampled_from(["firing", "resolved", "odd"]))
def test_a_notification_with_any_label_text_leaves_metrics_valid(
    served: Serve, labels: dict[str, str], status: str
) -> None:
    alert = {"status": status, "labels": {"service": "shop", "alertname": "SLAProbeDown", **labels}}
    body = {"version": "4", "status": status, "alerts": [alert]}
    assert post(served, json.dumps(body).encode()) < 500
    scrape_is_valid(served)


@settings(**SETTINGS)
@given(psp=TEXT, route=JSON, user=TEXT)
def test_log_lines_with_any_label_text_leave_metrics_valid(served: Serve, psp: str, route: Any, user: str) -> None:
    append(served, "app.jsonl", json.dumps({"psp": psp, "route": route}))
    quoted = user.replace("\\", "\\\\").replace('"', '\\"')
    append(served, "app.logfmt", f'level=info user="{quoted}"')
    scrape_is_valid(served)


@settings(**SETTINGS)
@given(fields=st.fixed_dictionaries({}, optional={k: TEXT for k in ("service", "category", "channel", "urgency")}))
def test_ticket_lines_with_any_text_in_their_labelled_fields_leave_metrics_valid(
    served: Serve, fields: dict[str, str]
) -> None:
    ticket = {"id": f"t{abs(hash(json.dumps(fields))) % 10**9}", "event": "opened", "time": 1700000000, **fields}
    append(served, "tickets.jsonl", json.dumps(ticket))
    scrape_is_valid(served)


def test_every_fuzzed_line_is_counted_once_read(served: Serve) -> None:
    files = {"app": "app.jsonl", "kv": "app.logfmt"}
    lines = {source: (served.tmp / name).read_bytes().count(b"\n") for source, name in files.items()}

    def counted(text: str, source: str) -> float:
        head = f'{c.LOG_LINES}{{source="{source}"'
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(head))

    def all_read() -> bool:
        text = scrape_is_valid(served)
        seen.update({source: counted(text, source) for source in lines})
        return seen == lines

    seen: dict[str, float] = {}

    try:
        served.until(all_read)
    finally:
        print("lines written", lines, "counted", seen)
