"""``${env:X}`` and ``${file:P}`` in config text: replaced at load, and remembered as secrets."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

_INTERPOLATION = re.compile(r"\$\{(env|file):([^}]*)\}")


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
                secret = Path(ref).read_text().rstrip("\r\n")
            except OSError as exc:
                if issues is not None:
                    issues.append((path, f"cannot read {ref}: {exc.strerror or exc}"))
                return ""
        if secret:
            secrets.add(secret)
        return secret

    return _INTERPOLATION.sub(substitute, value)
