"""A config written to hurt: alias bombs, endless or blocking ``${file:}``, secrets that escape redaction."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slaprobe.cli import main
from slaprobe.config import ConfigError, parse_config
from slaprobe.exporter.blackbox import parse_modules


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
