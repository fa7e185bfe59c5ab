"""``${env:X}`` and ``${file:P}`` in config text: replaced at load, and remembered as secrets."""

from __future__ import annotations

import os
import re
import stat
from typing import Any

_INTERPOLATION = re.compile(r"\$\{(env|file):([^}]*)\}")
MAX_FILE_BYTES = 1024 * 1024
"""A ``${file:}`` larger than this is refused (secrets are short; /dev/zero is endless)."""
_LIMIT_TEXT = "1 MiB"


def interpolate(
    value: Any,
    path: tuple[str | int, ...],
    secrets: set[str],
    issues: list[tuple[tuple[str | int, ...], str]] | None,
) -> Any:
    """Replace ``${env:X}``/``${file:P}`` in every string; other ``${...}`` stay (flow variables).

    ``issues`` None: a secret that cannot be read becomes "" without complaint (generators
    need the SLAs, not the credentials, and run where the secrets are not mounted).
    """
    if isinstance(value, dict):
        return {k: interpolate(v, (*path, k), secrets, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, (*path, i), secrets, issues) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        kind, ref = match.group(1), match.group(2)
        if kind == "env":
            if ref not in os.environ:
                if issues is not None:
                    issues.append((path, f"environment variable {ref} is not set"))
                return ""
            secret = os.environ[ref]
        else:
            try:
                secret = read_secret_file(ref)
            except OSError as exc:
                if issues is not None:
                    issues.append((path, f"cannot read {ref}: {exc.strerror or exc}"))
                return ""
        if secret:
            secrets.add(secret)
        return secret

    return _INTERPOLATION.sub(substitute, value)


def read_secret_file(path: str) -> str:
    """The text of a ``${file:}``: a regular file of at most ``MAX_FILE_BYTES``, final newlines dropped.

    Opened without blocking (a FIFO with no writer would wait forever) and checked on the
    open descriptor, so a device, a FIFO or a directory is refused, never read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > MAX_FILE_BYTES:
            raise OSError(f"larger than {_LIMIT_TEXT}")
        chunks, left = [], MAX_FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_FILE_BYTES:  # it grew since fstat
        raise OSError(f"larger than {_LIMIT_TEXT}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OSError("not UTF-8 text") from None
    # As text mode reads it: universal newlines.
    return text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a file"
