"""A config written to hurt: alias bombs, endless or blocking ``${file:}``, secrets that escape redaction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from slaprobe.cli import main
from slaprobe.config import ConfigError, parse_config
from slaprobe.exporter.blackbox import parse_modules
from slaprobe.redact import Redactor


def alias_bomb(size: int = 395) -> str:
    """A "billion laughs" document of ``size`` bytes: nine levels of nine aliases each (387 million nodes)."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level, previous in zip("bcdefghi", "abcdefgh", strict=True):
        lines.append(f"{level}: &{level} [" + ",".join([f"*{previous}"] * 9) + "]")
    text = "\n".join(lines) + "\n"
    return f"# {'x' * (size - len(text) - 3)}\n" + text


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [str(issue) for issue in caught.value.issues]


def test_check_refuses_a_395_byte_alias_bomb_naming_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert path.stat().st_size == 395
    assert main(["check", "--config", str(path)]) == 1
    assert "aliases add more than 250,000 nodes to the document (an alias bomb?)" in capsys.readouterr().err


def test_a_blackbox_module_file_that_is_an_alias_bomb_is_refused() -> None:
    with pytest.raises(ConfigError, match="an alias bomb"):
        parse_modules("modules:\n  x: {prober: http}\n" + alias_bomb())


def test_an_alias_that_contains_itself_is_refused() -> None:
    assert issues_of("version: v1\nreceivers: &r {x: *r}\n") == [
        "<root>: invalid YAML: an alias refers to a node that contains it (line 2)"
    ]


def test_nesting_deeper_than_a_config_needs_is_refused() -> None:
    assert issues_of("version: v1\nx: " + "[" * 120 + "]" * 120 + "\n") == [
        "<root>: invalid YAML: nested more than 100 levels deep (line 2)"
    ]


def test_a_config_may_share_blocks_through_aliases() -> None:
    text = (
        "version: v1\nservices:\n  s:\n    probes:\n"
        "      - {name: a, http: {url: 'http://127.0.0.1/', expect: &ok {status: [200], body_regex: ok}}}\n"
        "      - {name: b, http: {url: 'http://127.0.0.2/', expect: *ok}}\n"
    )
    probes = parse_config(text).services["s"].probes
    assert probes[1].http is not None and probes[1].http.expect.body_regex == ["ok"]


def file_config(path: Path | str) -> str:
    return f"version: v1\nreceivers: {{r: {{x: '${{file:{path}}}'}}}}\n"


def test_a_secret_file_that_is_a_device_is_refused_unread() -> None:
    assert issues_of(file_config("/dev/zero")) == [
        "receivers.r.x: cannot read /dev/zero: not a regular file (a character device) (line 2)"
    ]


def test_a_secret_file_that_is_a_fifo_without_writer_is_refused_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "pw"
    os.mkfifo(fifo)
    assert issues_of(file_config(fifo)) == [f"receivers.r.x: cannot read {fifo}: not a regular file (a FIFO) (line 2)"]


def test_a_secret_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "pw"
    big.write_bytes(b"x" * (1024 * 1024 + 1))
    assert issues_of(file_config(big)) == [f"receivers.r.x: cannot read {big}: larger than 1 MiB (line 2)"]


def test_a_secret_file_is_read_as_text_without_its_final_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"s3cret\r\n")
    assert parse_config(file_config(secret)).receivers == {"r": {"x": "s3cret"}}


# ---------------------------------------------------------------------------- secrets in every form

AWKWARD_SECRETS = [
    "multi\nline\tsecret-1234",
    'it\'s a "quoted"\tsecret',
    "a long secret " * 12 + "\u2028with a line separator",
]


@pytest.mark.parametrize("secret", AWKWARD_SECRETS)
def test_a_secret_is_redacted_from_repr_and_json_whatever_it_holds(secret: str) -> None:
    redact = Redactor([secret])
    for text in (
        repr({"Authorization": f"Bearer {secret}"}),
        repr([f"x'{secret}"]),  # repr picks the other quote style for a text holding '
        f"not an http(s) URL: {'ftp://' + secret!r}",
        json.dumps({"header": secret}),
        json.dumps({"header": secret}, ensure_ascii=False),
    ):
        redacted = redact(text)
        assert "<secret>" in redacted and "secret-1234" not in redacted and "a long secret" not in redacted, text
        assert "quoted" not in redacted and "line separator" not in redacted, text


@pytest.mark.parametrize("secret", AWKWARD_SECRETS)
def test_data_redacted_before_a_yaml_dump_shows_no_part_of_a_secret(secret: str) -> None:
    data = {"http": {"url": "http://127.0.0.1/", "headers": {"X-Key": f"Key {secret}"}, "body": secret}}
    dumped = yaml.safe_dump(Redactor([secret]).data(data), allow_unicode=True)
    assert yaml.safe_load(dumped)["http"]["headers"] == {"X-Key": "Key <secret>"}
    for word in ("secret-1234", "quoted", "long secret", "separator"):
        assert word not in dumped


def test_an_error_that_quotes_a_tabbed_secret_file_shows_it_redacted(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("multi\nline\tsecret-1234\n")
    text = (
        f"version: v1\nservices:\n  s:\n    probes:\n      - {{name: p, http: {{url: 'ftp://${{file:{secret}}}/'}}}}\n"
    )
    assert issues_of(text) == ["services.s.probes[0].http.url: not an http(s) URL: 'ftp://<secret>/' (line 5)"]


@pytest.mark.parametrize("password", ["Zq@Xv9Kw", "Zq/Xv9Kw", "Zq#Xv9Kw", "/ZqXv9Kw"])
def test_a_url_whose_password_breaks_its_user_info_is_an_error_showing_no_part_of_it(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("DIAL_PASSWORD", password)
    text = (
        "version: v1\nservices:\n  s:\n    probes:\n"
        "      - {name: p, http: {url: 'http://dialer:${env:DIAL_PASSWORD}@127.0.0.1/'}}\n"
    )
    [issue] = issues_of(text)
    assert issue.startswith("services.s.probes[0].http.url: the URL's user:password@host:port does not parse")
    assert "percent-encode @ : / ? # in a user name or password" in issue
    assert "Zq" not in issue and "Xv9" not in issue and "Kw" not in issue and "dialer" not in issue


def test_a_percent_encoded_password_in_a_url_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIAL_PASSWORD", "Zq%40Xv9Kw")
    text = "version: v1\nalertmanager: {url: 'http://dialer:${env:DIAL_PASSWORD}@127.0.0.1:9093/'}\n"
    cfg = parse_config(text)
    assert cfg.alertmanager is not None and cfg.alertmanager.url == "http://dialer:Zq%40Xv9Kw@127.0.0.1:9093/"
