"""``POST /alertmanager/webhook``: who may post, what a post may hold, and the count of refused posts.

The webhook changes what managers read (open incidents, time to acknowledge and to resolve),
so it takes posts from the configured Alertmanager only and only what the generated rules
can send. In order, a post is refused:

- 403 ``cross_site`` when a browser sent it from another origin (an ``Origin`` that is not
  this server's, or ``Sec-Fetch-Site: cross-site|same-site``); Alertmanager sends neither;
- 403 ``not_configured`` when the config has no ``alertmanager.webhook_auth``;
- 401 ``unauthenticated`` without the configured bearer token or basic-auth pair (their
  hashes compared, ``heartbeats.token_matches``: no length leaks; an empty configured
  credential matches nothing); the generated receiver's ``http_config`` sends them;
- 415 ``content_type`` unless the body is ``application/json`` (no form types: a browser
  form cannot post here);
- 400 ``malformed`` for a body that is no JSON object with an ``alerts`` list (deep nesting
  included: a RecursionError is a 400, not a 500); aiohttp answers 413 beyond 1 MiB;
- 422 ``invalid_labels`` when any alert carries a service, priority or escalation level the
  config does not generate, a status other than firing/resolved, a label value longer than
  ``MAX_LABEL_VALUE`` or a malformed fingerprint; nothing of such a post is applied.

So the series a post can create are bounded by the config (priorities x levels), and memory
by the incident and fingerprint caps of ``Incidents``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from slaprobe import conventions as c
from slaprobe.config import Config, WebhookAuth
from slaprobe.exporter.heartbeats import token_matches

MAX_LABEL_VALUE = 1024  # characters; generated labels are names, priorities and runbook URLs
MAX_ALERTS = 1000  # alerts in one post (Alertmanager sends one per notification on the incidents route)
_FINGERPRINT = re.compile(r"[0-9A-Za-z_.:-]{1,64}")  # Alertmanager: 16 hex digits
REFUSALS = ("cross_site", "not_configured", "unauthenticated", "content_type", "malformed", "invalid_labels")


class Refused(Exception):
    """A post the webhook does not take: HTTP status, reason (one of ``REFUSALS``) and a one-line message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason = status, reason


@dataclass(frozen=True, slots=True)
class Accepted:
    """What the running config's rules can send: services, and levels per priority."""

    services: frozenset[str]
    levels: Mapping[str, int]  # priority -> number of escalation levels (at least 1)

    @classmethod
    def of(cls, cfg: Config) -> Accepted:
        """The services, priorities and levels the alerts generated from ``cfg`` carry."""
        services = set(cfg.services) | {source.service or source.name for source in cfg.feedback}
        priorities = {p for m in cfg.priorities.values() for p in (m.page, m.ticket)} | set(cfg.escalation)
        levels = {p: max(1, len(cfg.escalation.get(p, ()))) for p in priorities}
        return cls(frozenset(services), levels)


def check_origin(request: web.Request) -> None:
    """Refuse what a browser posts from another site (Alertmanager sends no Origin)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{request.host}":
        raise Refused(403, "cross_site", f"cross-site request from {origin[:100]!r} refused")
    if request.headers.get("Sec-Fetch-Site", "none") not in ("none", "same-origin"):
        raise Refused(403, "cross_site", "cross-site request refused")


def check_credentials(request: web.Request, auth: WebhookAuth | None, *, key: str = WebhookAuth.KEY) -> None:
    """Refuse unless the request carries the configured credentials (``key``: where the config sets them)."""
    if auth is None:
        raise Refused(403, "not_configured", f"set {key} in the config to take this request")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if auth.bearer_token is not None:
        ok = token_matches(value.strip(), auth.bearer_token) and scheme.lower() == "bearer"
    else:
        assert auth.basic_auth is not None
        expected = f"{auth.basic_auth.username}:{auth.basic_auth.password}" if auth.basic_auth.password else ""
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        ok = token_matches(decoded, expected) and scheme.lower() == "basic"
    if not ok:
        raise Refused(401, "unauthenticated", f"missing or wrong credentials ({auth.KEY})")


def parse_body(body: bytes) -> dict[str, Any]:
    """The notification as a JSON object with an ``alerts`` list."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nesting deeper than the parser's stack
        raise Refused(400, "malformed", f"not JSON: {type(exc).__name__}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise Refused(400, "malformed", "not an Alertmanager webhook notification (no alerts list)")
    if len(payload["alerts"]) > MAX_ALERTS:
        raise Refused(400, "malformed", f"more than {MAX_ALERTS} alerts in one notification")
    return payload


def check_alerts(alerts: list[Any], accepted: Accepted) -> None:
    """Refuse the whole post if any alert holds what the generated rules cannot send."""
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
            raise Refused(422, "invalid_labels", f"{where}: no labels object")
        labels = alert["labels"]
        for key, value in labels.items():
            if not isinstance(value, str) or len(value) > MAX_LABEL_VALUE or len(key) > MAX_LABEL_VALUE:
                raise Refused(422, "invalid_labels", f"{where}.labels: a value that is no string or too long")
        service, priority = labels.get(c.LABEL_SERVICE), labels.get(c.LABEL_PRIORITY)
        if service not in accepted.services:
            raise Refused(422, "invalid_labels", f"{where}: unknown service")
        if not labels.get(c.LABEL_ALERTNAME):
            raise Refused(422, "invalid_labels", f"{where}: no alertname")
        if priority not in accepted.levels:
            raise Refused(422, "invalid_labels", f"{where}: unknown priority")
        level = labels.get(c.LABEL_ESCALATION_LEVEL, "")
        if not level.isdigit() or not 1 <= int(level) <= accepted.levels[priority]:
            raise Refused(422, "invalid_labels", f"{where}: escalation_level outside 1..{accepted.levels[priority]}")
        if alert.get("status") not in ("firing", "resolved"):
            raise Refused(422, "invalid_labels", f"{where}: status must be firing or resolved")
        fingerprint = alert.get("fingerprint")
        if fingerprint is not None and not (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint)):
            raise Refused(422, "invalid_labels", f"{where}: malformed fingerprint")
        for key in ("startsAt", "endsAt"):
            if not isinstance(alert.get(key, ""), str) or len(alert.get(key, "")) > 64:
                raise Refused(422, "invalid_labels", f"{where}.{key}: not a time")


async def read_notification(request: web.Request, cfg: Config) -> dict[str, Any]:
    """The checked notification of a webhook request, or ``Refused``."""
    check_origin(request)
    check_credentials(request, cfg.alertmanager.webhook_auth if cfg.alertmanager else None)
    if request.content_type != "application/json":
        raise Refused(415, "content_type", "the body must be application/json")
    payload = parse_body(await request.read())
    check_alerts(payload["alerts"], Accepted.of(cfg))
    return payload


def webhook_handler(
    config: Callable[[], Config], receive: Callable[[dict[str, Any]], object], refused: Callable[[str], None]
) -> Callable[[web.Request], Any]:
    """The aiohttp handler: check a post against the running config, then hand it to ``receive``."""

    async def handle_webhook(request: web.Request) -> web.Response:
        """POST: an Alertmanager webhook notification (version 4)."""
        try:
            payload = await read_notification(request, config())
        except Refused as exc:
            refused(exc.reason)
            headers = {"WWW-Authenticate": 'Bearer realm="slaprobe"'} if exc.status == 401 else None
            return web.Response(status=exc.status, text=f"refused: {exc}\n", headers=headers)
        receive(payload)
        return web.Response(text="ok\n")

    return handle_webhook
