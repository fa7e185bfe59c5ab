"""Text UTF-8 cannot encode (a lone surrogate from a JSON ``\\udcff``) never reaches ``/metrics``.

On a real ``slaprobe serve`` over loopback, each of the three ways in: a webhook
notification, a jsonl log line on a source with labels, a ticket line. ``/metrics``
stays a whole 200 that ``promtool check metrics`` accepts, also after a restart (the
ticket comes back from the state dir).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slaprobe import conventions as c
from tests.support.served import Serve, promtool_accepts

# Raw JSON text: the escapes reach the exporter as written, and json.loads makes lone surrogates of them.
LOG_LINE = '{"route": "/checkout", "status": 503, "psp": "\\udcff"}\n'
TICKET_LINE = '{"id": "t1", "event": "opened", "time": 1700000000, "category": "\\ud800"}\n'
WEBHOOK = (
    '{"version": "4", "status": "firing", "alerts": [{"status": "firing", '
    '"labels": {"service": "shop", "alertname": "SLAProbeDown", "priority": "\\udcff"}, '
    '"startsAt": "2023-11-14T22:13:20Z"}]}'
)


WEBHOOK_TOKEN = "unencodable-token"


def slaprobe_config(tmp: Path) -> str:
    log = {
        "name": "app",
        "path": str(tmp / "app.jsonl"),
        "format": "jsonl",
        "start": "beginning",
        "metrics": [
            {
                "name": "checkout_errors_total",
                "type": "counter",
                "match": {"route": "/checkout"},
                "labels": {"provider": "psp"},
            }
        ],
    }
    desk = {"name": "desk", "path": str(tmp / "tickets.jsonl"), "format": "jsonl", "service": "shop"}
    doc = {
        "version": "v1",
        "services": {"shop": {"logs": [log]}},
        "feedback": [desk],
        "alertmanager": {"url": "http://127.0.0.1:9", "webhook_auth": {"bearer_token": WEBHOOK_TOKEN}},
    }
    return yaml.safe_dump(doc)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    tmp = Path(tmp_path_factory.mktemp("unencodable"))
    (tmp / "slaprobe.yaml").write_text(slaprobe_config(tmp))
    (tmp / "app.jsonl").write_text(LOG_LINE)
    (tmp / "tickets.jsonl").write_text(TICKET_LINE)
    serve = Serve(tmp)
    serve.start()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    posted = serve.session.post(f"{serve.base}/alertmanager/webhook", data=WEBHOOK, headers=headers, timeout=10)
    assert posted.status_code == 422, posted.text  # no such priority: refused, whatever its characters
    try:
        yield serve
    finally:
        serve.stop()


def scrape(serve: Serve, wanted: str) -> str:
    """``/metrics`` once it holds a line starting with ``wanted``: a whole 200, valid UTF-8."""
    got: dict[str, Any] = {}

    def has_it() -> bool:
        response = serve.get("/metrics")
        assert response.status_code == 200
        got["text"] = response.content.decode("utf-8")  # strict: raises on anything UTF-8 would refuse
        return any(line.startswith(wanted) for line in got["text"].splitlines())

    serve.until(has_it)
    return str(got["text"])


def test_a_webhook_priority_with_a_lone_surrogate_is_refused_and_counted(served: Serve) -> None:
    text = scrape(served, f'{c.ALERTMANAGER_WEBHOOK_REFUSED}{{reason="invalid_labels"}} 1')
    promtool_accepts(text)


def test_a_jsonl_label_value_with_a_lone_surrogate_is_exported_as_the_replacement_character(served: Serve) -> None:
    text = scrape(served, 'checkout_errors_total{service="shop",provider="\ufffd"} 1')
    promtool_accepts(text)


def test_a_ticket_category_with_a_lone_surrogate_is_exported_as_the_replacement_character(served: Serve) -> None:
    text = scrape(served, f'{c.FEEDBACK_TICKETS}{{source="desk",service="shop",category="\ufffd"')
    promtool_accepts(text)


def test_after_a_restart_the_reread_line_and_the_restored_ticket_still_scrape_whole(served: Serve) -> None:
    scrape(served, f'{c.FEEDBACK_TICKETS}{{source="desk",service="shop",category="\ufffd"')
    served.stop()
    served.start()
    text = scrape(served, f'{c.FEEDBACK_OPEN_TICKETS}{{source="desk",category="\ufffd"')
    promtool_accepts(text)
