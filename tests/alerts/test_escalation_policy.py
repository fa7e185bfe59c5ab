"""The generated escalation rules follow the README's policy on random outage timelines.

The reference model below is the README's "Escalation" paragraph written as code, in
continuous time: an incident's clock is the time its level-1 alert has been firing in the
current episode; a gap shorter than the bridge pauses the clock, a longer one ends the
episode; level N fires while level 1 fires now, its clock has reached that level's
``after`` and no silence acknowledges it. Hypothesis draws timelines (a start, firing runs
of random length, gaps shorter and longer than the bridge, maybe a silence that starts and
ends anywhere, also after recovery); each is fed as ``ALERTS`` and
``slaprobe_alert_acknowledged`` series to the generated escalation group in one
``promtool test rules`` run, which must find at every evaluation the levels the model gives.
Evaluations within one interval of a change of the model's answer are not checked (the
rules see the world once per evaluation: same pages, same levels, same times, plus or minus
one evaluation), nor gaps within one evaluation of the bridge (Prometheus 2 and 3 select
range edges differently).
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slaprobe import conventions as c
from slaprobe.alerts import RULE_TESTS_FILE, RULES_FILE, generate_rules
from slaprobe.alerts.policy import levels_of
from slaprobe.alerts.rules import alerting_rules
from slaprobe.alerts.ruletests import INSTANCE, Case, alerts_series, meta_alert, values
from slaprobe.alerts.yamltext import dump_yaml
from slaprobe.config import Config, parse_config
from tests.alerts.conftest import run, tool

STEP = 30.0  # seconds between evaluations
BRIDGE = 300.0
# The P1 ([0m, 2m, 4m], every after below the bridge) and a level beyond the bridge.
CONFIG = f"""
version: v1
services:
  shop:
    tier: critical
    probes: [{{name: home, http: {{url: "http://127.0.0.1:9/"}}}}]
escalation:
  P1:
    - {{after: 0m, notify: oncall}}
    - {{after: 2m, notify: team-lead}}
    - {{after: 4m, notify: duty-manager}}
    - {{after: 7m, notify: director}}
receivers: {{oncall: {{}}, team-lead: {{}}, duty-manager: {{}}, director: {{}}}}
alerting: {{escalation_bridge: {BRIDGE:g}s}}
"""


# ---------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Timeline:
    """When the level-1 alert fires (half-open [start, end) intervals, seconds) and when it is silenced."""

    firing: tuple[tuple[float, float], ...]
    silenced: tuple[float, float] | None = None

    def fires(self, t: float) -> bool:
        return any(start <= t < end for start, end in self.firing)

    def acknowledged(self, t: float) -> bool:
        return self.silenced is not None and self.silenced[0] <= t < self.silenced[1]

    def end(self) -> float:
        return max([end for _, end in self.firing] + ([self.silenced[1]] if self.silenced else []))


def clock(timeline: Timeline, t: float, bridge: float) -> float | None:
    """Seconds the alert has fired in its episode by ``t``; None outside an episode."""
    total, last_end = 0.0, None
    for start, end in timeline.firing:
        if start > t:
            break
        if last_end is not None and start - last_end >= bridge:
            total = 0.0  # a gap of the bridge or longer ends the episode: the clock starts again
        total += min(end, t) - start
        last_end = end
    if last_end is None or (t >= last_end and t - last_end >= bridge):
        return None
    return total


def levels_firing(timeline: Timeline, t: float, afters: list[float], bridge: float) -> set[int]:
    """The escalation levels above 1 that fire at ``t`` by the README's policy."""
    if not timeline.fires(t) or timeline.acknowledged(t):
        return set()  # level N needs level 1 firing now, and no acknowledgement
    elapsed = clock(timeline, t, bridge)
    assert elapsed is not None
    return {number for number, after in enumerate(afters, start=1) if number > 1 and elapsed >= after}


def test_the_model_says_what_the_readme_says() -> None:
    afters = [0.0, 120.0, 240.0, 420.0]
    blip = Timeline(((0.0, 15.0),))
    assert all(not levels_firing(blip, t, afters, BRIDGE) for t in range(0, 600, 5)), "a blip escalates"
    sustained = Timeline(((0.0, 600.0),))
    assert levels_firing(sustained, 119.0, afters, BRIDGE) == set()
    assert levels_firing(sustained, 120.0, afters, BRIDGE) == {2}
    assert levels_firing(sustained, 420.0, afters, BRIDGE) == {2, 3, 4}
    assert levels_firing(sustained, 600.0, afters, BRIDGE) == set(), "a level outlives level 1"
    paused = Timeline(((0.0, 60.0), (200.0, 400.0)))  # 140 s gap: the clock holds at 60
    assert levels_firing(paused, 259.0, afters, BRIDGE) == set()
    assert levels_firing(paused, 260.0, afters, BRIDGE) == {2}
    reset = Timeline(((0.0, 100.0), (400.0, 700.0)))  # 300 s gap: a new episode
    assert levels_firing(reset, 519.0, afters, BRIDGE) == set()
    assert levels_firing(reset, 520.0, afters, BRIDGE) == {2}
    silenced = Timeline(((0.0, 130.0),), silenced=(125.0, 200.0))  # expires after recovery
    assert all(not levels_firing(silenced, t, afters, BRIDGE) for t in range(125, 600, 5))


# ---------------------------------------------------------------------------- timelines


def gap_steps(bridge_steps: int) -> st.SearchStrategy[int]:
    """Gaps in evaluations, shorter or longer than the bridge, never within one evaluation of it."""
    return st.one_of(st.integers(1, bridge_steps - 2), st.integers(bridge_steps + 2, 3 * bridge_steps))


@st.composite
def timelines(draw: st.DrawFn) -> Timeline:
    bridge_steps = round(BRIDGE / STEP)
    t = draw(st.integers(0, 6))
    firing = []
    for _ in range(draw(st.integers(1, 4))):
        length = draw(st.integers(1, 20))
        firing.append((t * STEP, (t + length) * STEP))
        t += length + draw(gap_steps(bridge_steps))
    silenced = None
    if draw(st.booleans()):
        start = draw(st.integers(0, t))
        silenced = (start * STEP, (start + draw(st.integers(1, 20))) * STEP)
    return Timeline(tuple(firing), silenced)


# ---------------------------------------------------------------------------- promtool


def present(flags: list[bool]) -> str:
    """promtool values for a series present (1) at the evaluations flagged, absent (stale, then gaps) elsewhere."""
    runs: list[tuple[str, int]] = []
    previous = False
    for flag in flags:
        value = "1" if flag else ("stale" if previous else "_")
        if runs and runs[-1][0] == value:
            runs[-1] = (value, runs[-1][1] + 1)
        else:
            runs.append((value, 1))
        previous = flag
    return values(*runs)


def policy_case(cfg: Config, alert: dict[str, Any], index: int, timeline: Timeline) -> Case:
    """The promtool test of one timeline: the model's levels at every evaluation where its answer is steady."""
    labels = {
        c.LABEL_ALERTNAME: alert["alert"],
        c.LABEL_ALERTSTATE: c.ALERT_FIRING,
        **alert["labels"],
        **INSTANCE,
    }
    levels = levels_of(cfg, labels[c.LABEL_PRIORITY])
    afters = [level.after for level in levels]
    horizon = round((timeline.end() + BRIDGE) / STEP) + 3
    times = [k * STEP for k in range(horizon)]
    case = Case(f"timeline {index}: {timeline}")
    case.series.append(alerts_series(labels, present([timeline.fires(t) for t in times])))
    if timeline.silenced is not None:
        ack = {c.LABEL_SERVICE: labels[c.LABEL_SERVICE], c.LABEL_ALERTNAME: labels[c.LABEL_ALERTNAME], **INSTANCE}
        case.add_series(c.ALERT_ACKNOWLEDGED, ack, present([timeline.acknowledged(t) for t in times]))
    expected = [levels_firing(timeline, t, afters, BRIDGE) for t in times]
    for k in range(1, horizon - 1):
        if expected[k - 1] == expected[k] == expected[k + 1]:
            case.expect(
                times[k], labels[c.LABEL_ALERTNAME], [meta_alert(labels, n, levels[n - 1]) for n in sorted(expected[k])]
            )
    return case


def run_promtool(
    directory: Path, rules: dict[str, Any], alertname: str, cases: list[Case]
) -> subprocess.CompletedProcess[str]:
    """Run the cases on the escalation group, cut to the clock and the levels of ``alertname`` (faster)."""
    group = next(g for g in rules["groups"] if g["name"] == c.RULE_GROUP_ESCALATION)
    group = {**group, "rules": [r for r in group["rules"] if r.get("alert", alertname) == alertname]}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RULES_FILE).write_text(dump_yaml({"groups": [group]}))
    tests = {
        "rule_files": [RULES_FILE],
        "evaluation_interval": f"{STEP:g}s",
        "group_eval_order": [group["name"]],
        "tests": [case.document(STEP) for case in cases],
    }
    (directory / RULE_TESTS_FILE).write_text(dump_yaml(tests))
    return run([tool("promtool"), "test", "rules", RULE_TESTS_FILE], directory)


@functools.cache
def policy_rules() -> tuple[Config, dict[str, Any]]:
    """The config of these tests and its generated rules (once: they are the same for every example)."""
    cfg = parse_config(CONFIG)
    return cfg, generate_rules(cfg)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(timelines(), min_size=25, max_size=25))
def test_the_rules_page_the_levels_the_model_gives_at_the_times_it_gives(
    batch: list[Timeline], tmp_path_factory: Any
) -> None:
    cfg, rules = policy_rules()
    alert = next(
        r
        for r in alerting_rules(rules)
        if r["labels"].get(c.LABEL_ESCALATION_LEVEL) == "1" and r["labels"][c.LABEL_PRIORITY] == "P1"
    )
    cases = [policy_case(cfg, alert, index, timeline) for index, timeline in enumerate(batch)]
    result = run_promtool(tmp_path_factory.mktemp("policy"), rules, alert["alert"], cases)
    report = "\n".join(line for line in (result.stdout + result.stderr).splitlines() if line.strip())
    assert result.returncode == 0, report[-6000:]
