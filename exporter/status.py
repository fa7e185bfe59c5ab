"""The HTML status page: every probe, its last result, failure reason and last runs.

Pure rendering: everything shown is escaped (target-controlled text such as a failure
detail quoting a response must not become markup) and passed through the redactor.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from html import escape

from slaprobe.config import Config, Service
from slaprobe.exporter.runtime import ReloadStatus
from slaprobe.exporter.store import ProbeSeries
from slaprobe.text import sanitize_text

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}
table{border-collapse:collapse;width:100%}th,td{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left}
th{background:#f4f4f4}.up{color:#0a7d32;font-weight:600}.down{color:#c0262d;font-weight:600}
.pending{color:#888}.runs span{display:inline-block;width:.8em;height:1em;margin-right:2px}
.ok{background:#2da44e}.fail{background:#cf222e}.slow{background:#d4a72c}
.degraded{color:#9a6700;font-weight:600}.bad{background:#fff0f0;padding:.6em;border:1px solid #cf222e}
.muted{color:#666;font-size:.9em}code{font-size:.9em}.maint{color:#0550ae;font-weight:600}
.runs span.in-maintenance{outline:2px solid #0550ae;outline-offset:-2px}
"""


def _when(timestamp: float, now: float) -> str:
    if not timestamp:
        return "never"
    age = max(0.0, now - timestamp)
    stamp = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({age:.0f}s ago)"


def _row(series: ProbeSeries, now: float, redact: Callable[[str], str]) -> str:
    meta = series.meta
    last = series.last
    if last is None:
        state = '<td class="pending">pending</td><td></td><td></td>'
    elif series.is_degraded(last):
        limit = (series.meta.degraded_after or 0) * 1000
        state = (
            f'<td class="degraded">DEGRADED</td><td>{last.duration * 1000:.1f} ms</td>'
            f"<td>slower than {limit:.0f} ms</td>"
        )
    elif last.success:
        state = f'<td class="up">UP</td><td>{last.duration * 1000:.1f} ms</td><td></td>'
    else:
        reason = last.reason.value if last.reason else ""
        detail = escape(redact(last.detail))
        state = (
            f'<td class="down">DOWN</td><td>{last.duration * 1000:.1f} ms</td>'
            f"<td><code>{escape(reason)}</code> {detail}</td>"
        )
    runs = "".join(
        f'<span class="{"fail" if not h.success else "slow" if h.degraded else "ok"}'
        f'{" in-maintenance" if h.maintenance else ""}" title="{"maintenance: " if h.maintenance else ""}'
        f"{escape(_when(h.timestamp, now))}: {'ok' if h.success else escape(h.reason.value if h.reason else '')} "
        f'{h.duration * 1000:.0f} ms {escape(redact(h.detail))}"></span>'
        for h in series.history
    )
    failures = sum(series.failures.values())
    rate = f"{100 * (series.runs - failures) / series.runs:.2f}%" if series.runs else "–"
    return (
        f"<tr><td>{escape(meta.probe)}</td><td>{escape(meta.kind)}</td>"
        f"<td><code>{escape(redact(meta.target))}</code></td>{state}"
        f'<td class="runs">{runs}</td><td>{rate} of {series.runs}</td>'
        f'<td class="muted">{escape(_when(series.last_time, now))}</td></tr>'
    )


def _compliance_line(rows: Sequence[ProbeSeries], service: Service | None, today: int) -> str:
    """Today's dial-test compliance rate of a service next to its target."""
    runs = sum(r.runs_today for r in rows if r.day == today)
    within = sum(r.within_sla_today for r in rows if r.day == today)
    degraded = sum(r.degraded for r in rows)
    if not runs:
        return '<p class="muted">Compliance today: no runs yet.</p>'
    rate = 100 * within / runs
    verdict = ""
    if service is not None:
        target = compliance_target(service)
        verdict = (
            f' <span class="up">meets the {target:g}% target</span>'
            if rate >= target
            else f' <span class="down">below the {target:g}% target</span>'
        )
    return (
        f"<p>Compliance today: <b>{rate:.2f}%</b> ({within} of {runs} runs within SLA){verdict}"
        f'<span class="muted"> · degraded runs: {degraded}</span></p>'
    )


def compliance_target(service: Service) -> float:
    """The service's dial-test compliance target in percent (default: its availability)."""
    return service.sla.compliance if service.sla.compliance is not None else service.sla.availability


def render_status_page(
    config: Config,
    series: Sequence[ProbeSeries],
    reload: ReloadStatus,
    *,
    now: float,
    today: int = 0,
    redact: Callable[[str], str] = str,
    version: str = "",
) -> str:
    """The whole status page as HTML text; ``today`` is the local date ordinal of 'today'."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>slaprobe</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>slaprobe {escape(version)} — location {escape(config.global_.location)}</h1>",
        f'<p class="muted">{escape(config.summary())}. Last successful config load: '
        f"{escape(_when(reload.last_success, now))}. "
        '<a href="/metrics">/metrics</a></p>',
    ]
    if not reload.successful and reload.issues:
        items = "".join(f"<li><code>{escape(redact(str(issue)))}</code></li>" for issue in reload.issues)
        parts.append(
            f'<div class="bad"><b>The last reload was rejected</b> ({escape(reload.source)}); '
            f"the previous config keeps running.<ul>{items}</ul></div>"
        )
    by_service: dict[str, list[ProbeSeries]] = {}
    for s in series:
        by_service.setdefault(s.meta.service, []).append(s)
    for name, rows in by_service.items():
        service = config.services.get(name)
        tier = service.tier if service else ""
        target = f"SLA {service.sla.availability}%" if service else ""
        down = sum(1 for r in rows if r.last is not None and not r.last.success)
        headline = f'<span class="down">{down} down</span>' if down else '<span class="up">all up</span>'
        if service is not None and config.maintenance_of(service).active(now):
            planned = sum(r.maintenance_runs for r in rows)
            headline += f' <span class="maint">in maintenance ({planned} runs not counted)</span>'
        parts.append(
            f"<h2>{escape(name)} <span class='muted'>({escape(tier)}, {escape(target)})</span> {headline}</h2>"
        )
        parts.append(_compliance_line(rows, service, today))
        parts.append(
            "<table><tr><th>probe</th><th>kind</th><th>target</th><th>state</th><th>duration</th>"
            "<th>failure</th><th>last runs</th><th>success</th><th>last run</th></tr>"
        )
        parts.extend(_row(r, now, redact) for r in rows)
        parts.append("</table>")
    if not series:
        parts.append("<p>No scheduled probes in this config (or in this shard).</p>")
    parts.append("</body></html>")
    return sanitize_text("".join(parts))  # a failure detail may quote bytes decoded with surrogateescape
