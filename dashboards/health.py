"""Exporter health board: is slaprobe itself keeping up (scheduler, logs, reloads, resources)?"""

from __future__ import annotations

from slaprobe import conventions as c
from slaprobe.config import Config
from slaprobe.dashboards import panels as p
from slaprobe.dashboards.model import Board, Panel, Variable
from slaprobe.dashboards.promql import increase_sum, quantile, rate_sum, selector, share

JOB = 'job=~"$job"'
INSTANCE = 'instance=~"$instance"'
SELF = (JOB, INSTANCE)


def _variables() -> tuple[Variable, ...]:
    jobs = f"label_values({c.BUILD_INFO}, job)"
    instances = f"label_values({selector(c.BUILD_INFO, JOB)}, instance)"
    return (
        p.datasource_variable(),
        Variable("job", "Job", "query", jobs, multi=True, include_all=True, all_value=".*"),
        Variable("instance", "Instance", "query", instances, multi=True, include_all=True, all_value=".*"),
    )


def _process(cfg: Config) -> list[Panel]:
    return [
        p.row("Process"),
        Panel(
            "stat",
            "Scrape target up",
            (p.q(selector(c.UP, *SELF), "{{instance}}"),),
            description="Whether Prometheus could scrape each slaprobe instance.",
            mappings=p.up_down_mappings("UP", "DOWN"),
            steps=p.target_steps(1),
            options=p.stat_options(color_mode="background"),
            width=6,
            height=4,
        ),
        Panel(
            "stat",
            "Last config reload",
            (p.q(selector(c.CONFIG_RELOAD_SUCCESS, *SELF), "{{instance}}"),),
            description="1 when the last reload (SIGHUP or POST /-/reload) worked; a failed one keeps the old config.",
            mappings=p.up_down_mappings("OK", "FAILED"),
            steps=p.target_steps(1),
            options=p.stat_options(color_mode="background"),
            width=6,
            height=4,
        ),
        Panel(
            "stat",
            "Config age",
            (p.q(f"time() - {selector(c.CONFIG_RELOAD_TIMESTAMP, *SELF)}", "{{instance}}"),),
            description="Time since the config in use was loaded.",
            unit="s",
            options=p.stat_options(),
            width=6,
            height=4,
        ),
        Panel(
            "stat",
            "Version",
            (p.q(selector(c.BUILD_INFO, *SELF), "{{instance}}: {{version}}"),),
            description="slaprobe version of each instance.",
            options=p.stat_options(text_mode="name"),
            width=6,
            height=4,
        ),
        Panel(
            "timeseries",
            "Resident memory",
            (p.q(selector(c.PROCESS_RESIDENT_MEMORY, *SELF), "{{instance}}"),),
            unit="bytes",
            options=p.legend_options("lastNotNull", "max"),
            width=12,
        ),
        Panel(
            "timeseries",
            "CPU",
            (p.q(rate_sum(c.PROCESS_CPU_SECONDS, "$__rate_interval", SELF, ["instance"]), "{{instance}}"),),
            description="CPU seconds per second used by each instance.",
            unit="percentunit",
            options=p.legend_options("lastNotNull", "max"),
            width=12,
        ),
    ]


def _scheduler(cfg: Config) -> list[Panel]:
    intervals = [cfg.interval_of(probe) for _, _, probe in cfg.probes()] or [cfg.global_.interval]
    shortest = min(intervals)
    return [
        p.row("Scheduler"),
        Panel(
            "timeseries",
            "Scheduler lag",
            (
                p.q(quantile(0.5, c.SCHEDULER_LAG, "$__rate_interval", SELF, ["instance"]), "{{instance}} p50"),
                p.q(quantile(0.99, c.SCHEDULER_LAG, "$__rate_interval", SELF, ["instance"]), "{{instance}} p99"),
            ),
            description=(
                "How late scheduled runs start. The red line is the shortest probe interval of the config: "
                "lag above it means runs are being missed."
            ),
            unit="s",
            steps=p.ceiling_steps(shortest, warn=shortest / 2),
            threshold_style="line",
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Missed runs",
            (
                p.q(
                    increase_sum(c.SCHEDULER_MISSED, "$__rate_interval", SELF, ["instance", c.LABEL_CAUSE]),
                    "{{instance}} {{cause}}",
                ),
            ),
            description="Scheduled runs skipped: overrun (the previous run was still going) or late (no slot in time).",
            custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("sum"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Probes in flight",
            (p.q(selector(c.PROBES_IN_FLIGHT, *SELF), "{{instance}}"),),
            description=f"Runs executing right now; the red line is global.concurrency ({cfg.global_.concurrency}).",
            steps=p.ceiling_steps(cfg.global_.concurrency, warn=cfg.global_.concurrency * 0.8),
            threshold_style="line",
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Probe runs per second",
            (p.q(rate_sum(c.PROBE_RUNS, "$__rate_interval", SELF, ["instance"]), "{{instance}}"),),
            unit="ops",
            options=p.legend_options("lastNotNull"),
            width=12,
        ),
        Panel(
            "table",
            "Longest since last run",
            (p.q(f"topk(10, time() - {selector(c.PROBE_LAST_RUN, *SELF)})", table=True),),
            description="Probes whose last run ended longest ago; compare with their interval.",
            unit="s",
            transformations=p.merge_table(
                {"Value": "since last run"},
                ("service", "probe", "location", "instance", "Value"),
                hide=("Time", "job", "__name__"),
            ),
            width=12,
        ),
    ]


def _logs() -> list[Panel]:
    source = ["instance", c.LABEL_SOURCE]
    unparsed = selector(c.LOG_LINES, *SELF, f'{c.LABEL_RESULT}="{c.LINE_UNPARSED}"')
    return [
        p.row("Log sources"),
        Panel(
            "timeseries",
            "Log lines by result",
            (p.q(rate_sum(c.LOG_LINES, "$__rate_interval", SELF, [*source, c.LABEL_RESULT]), "{{source}} {{result}}"),),
            unit="ops",
            options=p.legend_options("lastNotNull"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Unparsed lines",
            (
                p.q(
                    share(
                        f"sum by ({', '.join(source)}) (rate({unparsed}[$__rate_interval]))",
                        rate_sum(c.LOG_LINES, "$__rate_interval", SELF, source),
                    ),
                    "{{source}}",
                ),
            ),
            description="Share of lines no parser understood: a changed log format shows up here first.",
            unit="percentunit",
            steps=p.ceiling_steps(0.05, warn=0.01),
            threshold_style="line",
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Log lag",
            (p.q(f"sum by ({', '.join(source)}) ({selector(c.LOG_LAG, *SELF)})", "{{source}}"),),
            description="Bytes written to each log but not read yet.",
            unit="bytes",
            options=p.legend_options("lastNotNull", "max"),
            width=8,
        ),
        Panel(
            "timeseries",
            "Ticket events by result",
            (
                p.q(
                    increase_sum(c.FEEDBACK_EVENTS, "$__rate_interval", SELF, [*source, c.LABEL_RESULT]),
                    "{{source}} {{result}}",
                ),
            ),
            description="Feedback events applied, duplicate, out of order, for unknown tickets, or invalid.",
            custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal", "group": "A"}},
            options=p.legend_options("sum"),
            width=12,
        ),
        Panel(
            "timeseries",
            "Log rotations",
            (p.q(increase_sum(c.LOG_ROTATIONS, "$__rate_interval", SELF, source), "{{source}}"),),
            custom={"drawStyle": "bars", "fillOpacity": 60},
            options=p.legend_options("sum"),
            width=12,
        ),
    ]


def exporter_health_board(cfg: Config) -> Board:
    """The exporter health board of a config."""
    return Board(
        name=p.EXPORTER_HEALTH,
        title="slaprobe / Exporter health",
        uid=p.board_uid(p.EXPORTER_HEALTH),
        description="Scheduler lag, missed runs, probes in flight, log lag and unparsed lines, reload status.",
        tags=(*p.TAGS, "exporter"),
        variables=_variables(),
        panels=(*_process(cfg), *_scheduler(cfg), *_logs()),
        time_from="now-6h",
    )
