"""``/probe?module=<service>/<probe>&debug=true`` dumps the probe's config as YAML without its secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from slaprobe.exporter.app import make_app
from slaprobe.exporter.runtime import Exporter, Sources
from tests.conftest import free_port

# Long, tabbed and with a line separator: YAML folds, escapes and quotes it past a text redaction.
SECRET = "key-part-one\tkey-part-two " * 6 + "\u2028key-part-three"


@pytest.mark.parametrize("where", ["header", "body"])
async def test_the_debug_dump_of_a_configured_probe_shows_no_part_of_a_secret(tmp_path: Path, where: str) -> None:
    secret_file = tmp_path / "key"
    secret_file.write_text(SECRET + "\n")
    spec = (
        f"headers: {{X-Key: 'Key ${{file:{secret_file}}}'}}"
        if where == "header"
        else f"body: '${{file:{secret_file}}}'"
    )
    config = tmp_path / "slaprobe.yaml"
    config.write_text(
        "version: v1\nservices:\n  shop:\n    probes:\n"
        f"      - {{name: home, http: {{url: 'http://127.0.0.1:{free_port()}/', {spec}}}}}\n"
    )
    exporter = Exporter(Sources(config=str(config)))
    assert exporter.reload().successful
    client = TestClient(TestServer(make_app(exporter), host="127.0.0.1"))
    await client.start_server()
    try:
        response = await client.get("/probe", params={"module": "shop/home", "debug": "true"})
        text = await response.text()
    finally:
        await client.close()
    assert "Probe configuration (shop):" in text and "<secret>" in text
    for part in ("key-part-one", "key-part-two", "key-part-three"):
        assert part not in text
