"""``slaprobe push``: report one run of a heartbeat probe from a script (cron job, batch job, remote agent).

The token comes from an environment variable (``SLAPROBE_PUSH_TOKEN`` by default) or a file,
never from the command line (where ``ps`` and shell history would show it), and is sent as
``Authorization: Bearer``. Nothing printed carries it: the URL is shown without its query
and credentials, and the server's answer is cut to one line.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from slaprobe.units import parse_duration

TOKEN_ENV = "SLAPROBE_PUSH_TOKEN"
TIMEOUT = 10.0  # seconds


class PushError(Exception):
    """The run could not be reported: no token, a bad argument, the server unreachable or refusing."""


@dataclass(frozen=True, slots=True)
class Run:
    """What one push reports."""

    success: bool = True
    duration: float | None = None  # seconds
    message: str = ""
    location: str | None = None  # a remote agent's location: sent as a JSON result
    reason: str | None = None  # a failure reason (with success False), JSON only


def read_token(env: str = TOKEN_ENV, file: str | None = None) -> str:
    """The token from ``file`` (first line) or the environment variable ``env``."""
    if file is not None:
        try:
            token = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise PushError(f"cannot read the token file {file}: {exc.strerror or exc}") from None
        if not token:
            raise PushError(f"the token file {file} is empty")
        return token
    token = os.environ.get(env, "").strip()
    if not token:
        raise PushError(f"no token: set {env} (or give --token-env NAME or --token-file PATH)")
    return token


def seconds_of(text: str) -> float:
    """``--duration``: seconds (``1.5``) or a Prometheus duration (``1500ms``)."""
    try:
        value = float(text)
    except ValueError:
        try:
            value = parse_duration(text)
        except ValueError:
            raise PushError(f"--duration: not a duration: {text!r} (e.g. 1.5 or 1500ms)") from None
    if not math.isfinite(value) or value < 0:
        raise PushError("--duration: must be a non-negative number of seconds")
    return value


def shown(url: str) -> str:
    """The URL for messages: scheme, host, port and path; no credentials, no query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def push(url: str, token: str, run: Run, *, session: requests.Session | None = None, timeout: float = TIMEOUT) -> str:
    """Report ``run`` to ``url`` (``.../push/<service>/<probe>``); the server's one-line answer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushError(f"not an http(s) URL: {shown(url)!r}")
    headers = {"Authorization": f"Bearer {token}"}
    http = session or requests.Session()
    try:
        if run.location is not None or run.reason is not None:
            body: dict[str, object] = {"success": run.success}
            if run.duration is not None:
                body["duration"] = run.duration
            body.update(
                {k: v for k, v in (("msg", run.message), ("location", run.location), ("reason", run.reason)) if v}
            )
            headers["Content-Type"] = "application/json"
            response = http.post(url, data=json.dumps(body), headers=headers, timeout=timeout)
        else:
            params = {"status": "up" if run.success else "down"}
            if run.duration is not None:
                params["duration"] = f"{run.duration:g}"
            if run.message:
                params["msg"] = run.message
            response = http.post(url, params=params, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise PushError(f"cannot reach {shown(url)}: {type(exc).__name__}") from None
    answer = " ".join(response.text.split())[:200].replace(token, "<secret>")
    if response.status_code != 200:
        raise PushError(f"{shown(url)}: HTTP {response.status_code}: {answer}")
    return answer
