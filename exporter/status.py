"""The HTML status page: every probe, its last result, failure reason and last runs.

Per service also its availability as the exporter's own counters give it since the
process started (not Prometheus' view of the whole SLA window, which a restart does not
reset), the day's dial-test progress (slots the schedule planned so far today against
runs done), runs that passed only on a retry, and the log and ticket sources. The page
refreshes itself every ``DEFAULT_REFRESH`` seconds (``?refresh=N``, ``?refresh=0``: off).

Pure rendering: everything shown is escaped (target-controlled text such as a failure
detail quoting a response must not become markup) and passed through the redactor.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from slaprobe.config import Config, Service
from slaprobe.exporter.hours import Hours, ServiceHours
from slaprobe.exporter.logs import SourceView
from slaprobe.exporter.runtime import ReloadStatus
from slaprobe.exporter.store import HistoryEntry, ProbeKey, ProbeSeries
from slaprobe.schedule import Schedule
from slaprobe.text import sanitize_text

log = logging.getLogger("slaprobe.status")
DEFAULT_REFRESH = 30  # seconds between automatic reloads of the page
MAX_REFRESH = 86400
_SLOT_LIMIT = 10_000  # slots counted per probe and day at most (a 1 s cron-free grid is arithmetic)

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
.retry{background:#8fd19e}.retried{color:#0a7d32;font-weight:600;border-bottom:2px dotted #9a6700}
.behind{color:#9a6700}
.wide{overflow-x:auto;-webkit-overflow-scrolling:touch}
.figures{display:flex;flex-wrap:wrap;gap:.6em;margin:.6em 0}
.figure{border:1px solid #ddd;border-radius:6px;padding:.4em .7em;min-width:8.5em}
.figure b{display:block;font-size:1.25em}.figure small{color:#666}
.banner{background:#ddf4ff;border:1px solid #0550ae;color:#0550ae;padding:.5em .8em;border-radius:6px;margin:.5em 0}
.strip{display:flex;gap:2px;margin:.3em 0 .1em;max-width:48em}
.strip span{flex:1 1 0;height:1.4em;border-radius:2px;background:#eee}
.strip .h-ok{background:#2da44e}.strip .h-warn{background:#d4a72c}.strip .h-bad{background:#cf222e}
.strip .h-none{background:#eaeef2}
.strip-axis{display:flex;justify-content:space-between;max-width:64em;font-size:.75em;color:#666}
.runs{white-space:nowrap}
@media (max-width:640px){body{margin:.6em}h1{font-size:1.15em}th,td{padding:.25em .35em}
.col-kind,.col-target,.col-last{display:none}.figure{min-width:7em;flex:1 1 40%}}
"""


def _when(timestamp: float, now: float) -> str:
    if not timestamp:
        return "never"
    age = max(0.0, now - timestamp)
    stamp = dt.datetime.fromtimestamp(timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{stamp} ({age:.0f}s ago)"


def _row(series: ProbeSeries, now: float, redact: Callable[[str], str], remote: bool = False) -> str:
    """One probe's table row; ``remote``: runs pushed from another location, named after the probe."""
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
    elif last.success and (first_reason := _last_first_attempt(series)) is not None:
        state = (
            f'<td class="retried">UP on retry</td><td>{last.duration * 1000:.1f} ms</td>'
            f"<td>first attempt failed: <code>{escape(first_reason)}</code></td>"
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
    runs = "".join(_run_mark(h, now, redact) for h in series.history)
    failures = sum(series.first_attempt_failures.values())  # as the availability SLI counts
    rate = f"{100 * (series.runs - failures) / series.runs:.2f}%" if series.runs else "–"
    retried = series.passed_on_retry
    on_retry = f'<br><span class="muted">{retried} passed on retry</span>' if retried else ""
    where = f' <span class="muted">@ {escape(meta.location)}</span>' if remote else ""
    return (
        f'<tr class="probe"><td>{escape(meta.probe)}{where}</td><td class="col-kind">{escape(meta.kind)}</td>'
        f'<td class="col-target"><code>{escape(redact(meta.target))}</code></td>{state}'
        f'<td class="runs">{runs}</td><td>{rate} of {series.runs}{on_retry}</td>'
        f'<td class="muted col-last">{escape(_when(series.last_time, now))}</td></tr>'
    )


def _run_mark(h: HistoryEntry, now: float, redact: Callable[[str], str]) -> str:
    """One run of the history strip: ok, passed on retry, slow, or failed; details in its title."""
    if not h.success:
        kind, what = "fail", h.reason.value if h.reason else ""
    elif h.first_attempt is not None:
        kind, what = "retry", f"ok on retry (first attempt: {h.first_attempt.value})"
    else:
        kind, what = ("slow" if h.degraded else "ok"), "ok"
    maint = " in-maintenance" if h.maintenance else ""
    return (
        f'<span class="{kind}{maint}" title="{"maintenance: " if h.maintenance else ""}'
        f"{escape(_when(h.timestamp, now))}: {escape(what)} "
        f'{h.duration * 1000:.0f} ms {escape(redact(h.detail))}"></span>'
    )


def _last_first_attempt(series: ProbeSeries) -> str | None:
    """The failure reason of the last run's first attempt when that run passed on a retry."""
    entry = None
    for entry in series.history:  # noqa: B007 - the last one is wanted
        pass
    if entry is None or not entry.success or entry.first_attempt is None:
        return None
    return entry.first_attempt.value


@dataclass(frozen=True, slots=True)
class _Planned:
    """Slots counted for one schedule: ``count`` of them in [start, now]; ``next`` is the first after."""

    start: float
    now: float
    count: int
    next: float


_PLANNED: dict[Schedule, _Planned] = {}
_PLANNED_LIMIT = 100_000  # schedules remembered at most (a reload may replace them all)


def planned_today(schedule: Schedule, since: float, now: float) -> int:
    """Slots of ``schedule`` due in [max(local midnight, since), now]: the runs planned so far today.

    A fixed grid is arithmetic. Cron and ``during`` schedules are walked slot by slot, so the
    count is remembered per schedule and a later call of the same day (same start) only walks
    the slots since the last one: the page, reloading every 30 s, then costs O(probes) rather
    than O(probes x slots so far today). A new day, a new start or a clock turned back counts
    afresh.
    """
    midnight = dt.datetime.fromtimestamp(now, schedule.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(midnight.timestamp(), since)
    if start > now:
        return 0
    if schedule.cron is None and not schedule.during:
        first = schedule.next_due(start)
        return 0 if first > now else 1 + int((now - first) // schedule.interval)
    known = _PLANNED.get(schedule)
    if known is not None and known.start == start and known.now <= now:
        count, when = known.count, known.next
    else:
        count, when = 0, schedule.next_due(start)
    while when <= now and count < _SLOT_LIMIT:
        count += 1
        when = schedule.next_due(when + 1e-3)
    if known is None and len(_PLANNED) >= _PLANNED_LIMIT:
        _PLANNED.clear()
    _PLANNED[schedule] = _Planned(start, now, count, when)
    return count


PLAN_COUNT_INTERVAL = 60.0  # seconds between two background counts of every schedule's slots
_PLAN_CHUNK = 200  # schedules counted between two yields to the event loop


async def count_plans(schedules: Mapping[ProbeKey, Schedule], since: float, now: float) -> None:
    """Bring every schedule's remembered count of today's slots up to ``now``, yielding as it goes."""
    for i, schedule in enumerate(list(schedules.values())):
        planned_today(schedule, since, now)
        if i % _PLAN_CHUNK == _PLAN_CHUNK - 1:
            await asyncio.sleep(0)


def plan_counter(
    schedules: Callable[[], Mapping[ProbeKey, Schedule]],
    started: Callable[[], float],
    *,
    interval: float = PLAN_COUNT_INTERVAL,
    clock: Callable[[], float] = time.time,
) -> Callable[[Any], AsyncIterator[None]]:
    """An aiohttp cleanup context that counts today's slots of every schedule every ``interval`` s.

    The page's ``planned_today`` then only walks the slots since the last count: the first view
    after midnight (or after a long quiet spell) costs no more than any other, and nothing walks
    a whole day's cron slots on the request path.
    """

    async def context(_app: Any) -> AsyncIterator[None]:
        async def run() -> None:
            while True:
                try:
                    await count_plans(schedules(), started(), clock())
                except Exception:  # a bad schedule must not end the counting of the others
                    log.exception("counting the planned runs for the status page failed")
                await asyncio.sleep(interval)

        task = asyncio.create_task(run(), name="status-plan-counter")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _progress_line(
    rows: Sequence[ProbeSeries], schedules: Mapping[ProbeKey, Schedule], since: float, now: float, today: int
) -> str:
    """Today's dial tests: runs done against the slots the schedule planned so far today."""
    planned = sum(planned_today(schedules[r.meta.key], since, now) for r in rows if r.meta.key in schedules)
    done = sum(r.runs_today for r in rows if r.day == today)
    if not planned and not done:
        return '<p class="muted">Dial tests today: none planned yet.</p>'
    share = f" ({100 * done / planned:.0f}%)" if planned else ""
    css = "up" if done >= planned else "behind"
    counted = "since the exporter started" if since > _midnight_guess(now, schedules, rows) else "since midnight"
    return (
        f'<p>Dial tests today: <b class="{css}">{done} of {planned}</b> planned runs done{share}'
        f'<span class="muted"> · planned from the schedule, {counted}</span></p>'
    )


def _midnight_guess(now: float, schedules: Mapping[ProbeKey, Schedule], rows: Sequence[ProbeSeries]) -> float:
    tz = next((schedules[r.meta.key].tz for r in rows if r.meta.key in schedules), dt.UTC)
    return dt.datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _percent(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def _figures(service: Service, hours: ServiceHours, started: float, now: float, today: int) -> str:
    """Availability over the SLA window and today, and the error budget left, from the exporter's counters.

    The window is counted in whole hours, as far back as the exporter has run (its share is
    said); the budget left is 1 - (failed share / allowed failed share) over that span.
    """
    window = service.sla.window
    over = hours.over(window, now)
    day = hours.today(today)
    target = service.sla.availability / 100
    allowed = 1 - target
    budget: float | None = None
    if over.runs and allowed > 0:
        budget = 1 - (over.failed / over.runs) / allowed
    covered = min(window, max(0.0, now - started)) if started else window
    span = readable_span(window)
    note = f"{readable_span(covered)} of {span} counted" if covered < window else f"the last {span}"

    def figure(label: str, value: float | None, good: bool | None, small: str, css: str) -> str:
        cls = "" if good is None else (' class="up"' if good else ' class="down"')
        return (
            f'<div class="figure {css}"><small>{escape(label)}</small>'
            f"<b{cls}>{_percent(value, 0 if css == 'budget' else 2)}</b><small>{escape(small)}</small></div>"
        )

    avail_window = over.availability
    avail_today = day.availability
    return (
        '<div class="figures">'
        + figure(
            f"availability, {span} SLA window",
            avail_window,
            None if avail_window is None else avail_window >= target,
            note,
            "window",
        )
        + figure(
            "availability today",
            avail_today,
            None if avail_today is None else avail_today >= target,
            f"{day.runs} runs" if day.runs else "no runs yet",
            "today",
        )
        + figure(
            "error budget left",
            None if budget is None else max(budget, -9.99),
            None if budget is None else budget > 0,
            f"target {service.sla.availability:g}%",
            "budget",
        )
        + "</div>"
    )


def _strip(hours: ServiceHours, service: Service, now: float) -> str:
    """The last 24 hours, one cell per hour: green at or above the target, amber within twice the
    allowed failures, red below; grey without runs. Each cell's title gives its figures."""
    target = service.sla.availability / 100
    cells = []
    for hour, tally in hours.strip(now):
        start = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).strftime("%H:00")
        value = tally.availability
        if value is None:
            css, what = "h-none", "no runs"
        else:
            css = "h-ok" if value >= target else ("h-warn" if 1 - value <= 2 * (1 - target) else "h-bad")
            what = f"{100 * value:.2f}% of {tally.runs} runs, {tally.failed} failed"
        cells.append(f'<span class="{css}" title="{start} UTC: {escape(what)}"></span>')
    return (
        f'<div class="strip" aria-label="availability by hour, last 24 hours">{"".join(cells)}</div>'
        '<div class="strip-axis"><span>24 h ago</span><span>now</span></div>'
    )


def _availability_line(rows: Sequence[ProbeSeries], service: Service | None, since: float, now: float) -> str:
    """The service's availability over its runs since the exporter started, against the SLA window.

    A run counts as failed when its first attempt failed, as the availability SLI and its
    alerts count it (``slaprobe.sli``): a retry hides a failure from nobody but the prober.
    """
    runs = sum(r.runs for r in rows)
    failed = sum(sum(r.first_attempt_failures.values()) for r in rows)
    retried = sum(r.passed_on_retry for r in rows)
    window = service.sla.window if service is not None else 0.0
    covered = max(0.0, now - since) if since else 0.0
    span = f"{readable_span(covered)} of the {readable_span(window)} SLA window" if window else readable_span(covered)
    if not runs:
        return f'<p class="muted">Availability: no runs yet (counted since the exporter started, {span}).</p>'
    rate = 100 * (runs - failed) / runs
    verdict = ""
    if service is not None:
        target = service.sla.availability
        verdict = f' <span class="{"up" if rate >= target else "down"}">target {target:g}%</span>'
    retry = f" · {retried} passed only on retry" if retried else ""
    return (
        f"<p>Availability: <b>{rate:.3f}%</b> ({runs - failed} of {runs} runs){verdict}"
        f'<span class="muted"> · the exporter\'s own counters since it started, {span}'
        f"; Prometheus has the whole window{retry}</span></p>"
    )


def readable_span(seconds: float) -> str:
    """Seconds in the largest unit that fits: 7s, 2m, 1.5h, 30d."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d".replace(".0d", "d")
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h".replace(".0h", "h")
    if seconds >= 60:
        return f"{seconds / 60:.0f}m"
    return f"{seconds:.0f}s"


def _sources_table(views: Sequence[SourceView], redact: Callable[[str], str]) -> str:
    """Log sources (lines parsed, unparsed share, lag) and ticket sources (open, breaches)."""
    if not views:
        return ""
    rows = []
    for v in views:
        lines = v.parsed + v.unparsed
        share = f"{100 * v.unparsed / lines:.1f}%" if lines else "–"
        lag = f"{v.lag_bytes} bytes" if v.lag_bytes else "caught up"
        if v.tracker is not None:
            open_now = sum(v.tracker.open_counts.values())
            breaches = sum(v.tracker.breaches.values())
            tickets = f"{open_now} open, {breaches} deadline breaches"
            kind = "tickets"
        else:
            tickets, kind = "", "log"
        css = ' class="behind"' if v.unparsed and lines and v.unparsed / lines > 0.05 else ""
        rows.append(
            f"<tr><td><code>{escape(redact(v.label))}</code></td><td>{kind}</td>"
            f"<td>{escape(v.service or '')}</td><td>{v.parsed}</td><td{css}>{v.unparsed} ({share})</td>"
            f"<td>{escape(lag)}</td><td>{escape(tickets)}</td></tr>"
        )
    return (
        "<h2>Log and ticket sources</h2><table><tr><th>source</th><th>kind</th><th>service</th>"
        "<th>lines parsed</th><th>unparsed</th><th>lag</th><th>tickets</th></tr>"
        + "".join(rows)
        + '</table><p class="muted">Counted since the exporter started.</p>'
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
        target = service.sla.compliance_percent
        verdict = (
            f' <span class="up">meets the {target:g}% target</span>'
            if rate >= target
            else f' <span class="down">below the {target:g}% target</span>'
        )
    return (
        f"<p>Compliance today: <b>{rate:.2f}%</b> ({within} of {runs} runs within SLA){verdict}"
        f'<span class="muted"> · degraded runs: {degraded}</span></p>'
    )


def render_status_page(
    config: Config,
    series: Sequence[ProbeSeries],
    reload: ReloadStatus,
    *,
    now: float,
    today: int = 0,
    redact: Callable[[str], str] = str,
    version: str = "",
    started: float = 0.0,
    schedules: Mapping[ProbeKey, Schedule] | None = None,
    sources: Sequence[SourceView] = (),
    refresh: int = DEFAULT_REFRESH,
    sections: Sequence[str] = (),
    hours: Hours | None = None,
    in_maintenance: Callable[[str, float], bool] | None = None,
    remote: Sequence[ProbeSeries] = (),
) -> str:
    """The whole status page as HTML text; ``today`` is the local date ordinal of 'today'.

    ``started``: when the exporter's counters began; ``schedules``: each probe's schedule
    (for the runs planned today); ``sources``: the log and ticket sources; ``refresh``:
    seconds between automatic reloads, 0 for none; ``sections``: extra HTML (escaped by its
    maker) shown after the header, such as the demo's alerting loop; ``hours``: each service's
    hourly and daily tallies (the SLA-window, today and budget figures and the 24 h strip);
    ``in_maintenance(service, now)``: whether a planned or ad hoc window is open; ``remote``:
    the series of runs pushed from other locations, shown under their service's probes (the
    service's figures stay this location's).
    """
    schedules = schedules or {}
    refresh = max(0, min(int(refresh), MAX_REFRESH))
    meta_refresh = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    refresh_note = (
        f'Refreshes every {refresh} s (<a href="?refresh=0">stop</a>).'
        if refresh
        else f'Auto-refresh off (<a href="?refresh={DEFAULT_REFRESH}">turn on</a>).'
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"{meta_refresh}<title>slaprobe</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>slaprobe {escape(version)} — location {escape(config.global_.location)}</h1>",
        f'<p class="muted">{escape(config.summary())}. Last successful config load: '
        f"{escape(_when(reload.last_success, now))}. "
        f"Exporter started {escape(_when(started, now))}. {refresh_note} "
        '<a href="/metrics">/metrics</a></p>',
    ]
    if not reload.successful and reload.issues:
        items = "".join(f"<li><code>{escape(redact(str(issue)))}</code></li>" for issue in reload.issues)
        parts.append(
            f'<div class="bad"><b>The last reload was rejected</b> ({escape(reload.source)}); '
            f"the previous config keeps running.<ul>{items}</ul></div>"
        )
    parts.extend(sections)
    by_service: dict[str, list[ProbeSeries]] = {}
    for s in series:
        by_service.setdefault(s.meta.service, []).append(s)
    remote_of: dict[str, list[ProbeSeries]] = {}  # a remote series has a local one: its service is above
    for s in remote:
        remote_of.setdefault(s.meta.service, []).append(s)
    for name, rows in by_service.items():
        service = config.services.get(name)
        tier = service.tier if service else ""
        target = f"SLA {service.sla.availability}%" if service else ""
        down = sum(1 for r in rows if r.last is not None and not r.last.success)
        headline = f'<span class="down">{down} down</span>' if down else '<span class="up">all up</span>'
        maintained = service is not None and (
            in_maintenance(name, now) if in_maintenance is not None else config.maintenance_of(service).active(now)
        )
        counted_apart = sum(r.maintenance_runs for r in rows)
        if maintained:
            headline += f' <span class="maint">in maintenance ({counted_apart} runs not counted)</span>'
        parts.append(
            f'<section class="service" id="service-{escape(name)}">'
            f"<h2>{escape(name)} <span class='muted'>({escape(tier)}, {escape(target)})</span> {headline}</h2>"
        )
        if maintained:
            parts.append(
                '<div class="banner" role="status"><b>Maintenance window open.</b> Runs are still probed and '
                f"shown, counted apart ({counted_apart} so far) and left out of every availability, budget and "
                "compliance figure; the service's alerts are muted.</div>"
            )
        service_hours = hours.get(name) if hours is not None else None
        if service is not None and service_hours is not None:
            parts.append(_figures(service, service_hours, started, now, today))
            parts.append(_strip(service_hours, service, now))
        parts.append(_availability_line(rows, service, started, now))
        parts.append(_progress_line(rows, schedules, started, now, today))
        parts.append(_compliance_line(rows, service, today))
        parts.append(
            '<div class="wide"><table><tr><th>probe</th><th class="col-kind">kind</th>'
            '<th class="col-target">target</th><th>state</th><th>duration</th><th>failure</th><th>last runs</th>'
            "<th>availability since start</th>"
            '<th class="col-last">last run</th></tr>'
        )
        parts.extend(_row(r, now, redact) for r in rows)
        parts.extend(_row(r, now, redact, remote=True) for r in remote_of.get(name, ()))
        parts.append("</table></div></section>")
    if not series:
        parts.append("<p>No scheduled probes in this config (or in this shard).</p>")
    parts.append(_sources_table(sources, redact))
    parts.append("</body></html>")
    return sanitize_text("".join(parts))  # a failure detail may quote bytes decoded with surrogateescape
