"""Time generating rules, rule tests, routing (and dashboards, when present) for 500 services.

The config: ``--services`` services (default 500) across the four tiers, each with an
HTTP, a TCP and a DNS probe, availability and latency SLAs, an access log on every fifth;
three escalation ladders and a feedback source. Each timing is the best of ``--repeat``
runs of config-to-text in this process (the config is parsed once, outside the timings);
the target is under 10 s for everything together.

    python bench/generate_500.py [--services 500] [--repeat 3] [--promtool]

``--promtool`` also runs ``promtool check rules`` on the rule file (not part of the target).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from slaprobe.alerts import render_alertmanager_files, render_rule_files
from slaprobe.config import Config, parse_config

TIERS = ("critical", "high", "medium", "low")


def config_text(services: int) -> str:
    """A config with ``services`` services (YAML text)."""
    lines = ["version: v1", "global: {interval: 30s, timeout: 10s, location: bench}", "services:"]
    for i in range(services):
        name = f"svc-{i:04d}"
        lines += [
            f"  {name}:",
            f"    tier: {TIERS[i % 4]}",
            f"    owner: team-{i % 17}",
            "    sla: {window: 30d, availability: 99.9, latency: {threshold: 300ms, target: 99}}",
            "    probes:",
            f"      - {{name: home, http: {{url: 'https://{name}.example/'}}}}",
            f"      - {{name: db, tcp: {{address: '{name}-db.internal:5432'}}}}",
            f"      - {{name: resolve, dns: {{query: {name}.example, server: '10.0.0.2:53'}}}}",
        ]
        if i % 5 == 0:
            lines += ["    logs:", f"      - {{path: /var/log/{name}/access.log, format: nginx_combined}}"]
    lines += [
        "feedback:",
        "  - {name: tickets, path: /var/log/support/tickets.jsonl, quality_categories: [technical]}",
        "escalation:",
        "  P1: [{after: 0m, notify: oncall}, {after: 15m, notify: lead}, {after: 30m, notify: duty}]",
        "  P2: [{after: 0m, notify: oncall}, {after: 1h, notify: lead}]",
        "  P3: [{after: 0m, notify: tickets}]",
        "receivers:",
        "  oncall: {webhook_configs: [{url: 'http://pager.example/a'}]}",
        "  lead: {webhook_configs: [{url: 'http://pager.example/b'}]}",
        "  duty: {webhook_configs: [{url: 'http://pager.example/c'}]}",
        "  tickets: {webhook_configs: [{url: 'http://tickets.example/'}]}",
    ]
    return "\n".join(lines) + "\n"


def best_of(repeat: int, fn: Callable[[], dict[str, str]]) -> tuple[float, dict[str, str]]:
    """The fastest of ``repeat`` runs, and the last output."""
    best, out = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def dashboards(cfg: Config) -> Callable[[], dict[str, str]] | None:
    """The dashboards generator, if this checkout has it."""
    try:
        from slaprobe.dashboards import generate_dashboards
    except ImportError:
        return None
    return lambda: dict(generate_dashboards(cfg))


def main() -> int:
    """Run the benchmark and print one line per generator and the total."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--promtool", action="store_true", help="also time promtool check rules")
    args = parser.parse_args()

    start = time.perf_counter()
    cfg = parse_config(config_text(args.services))
    parse_seconds = time.perf_counter() - start
    print(f"config: {cfg.summary()} (parsed in {parse_seconds:.2f} s)")

    jobs: list[tuple[str, Callable[[], dict[str, str]]]] = [
        ("rules + rule tests + PrometheusRule", lambda: render_rule_files(cfg)),
        ("alertmanager.yaml + AlertmanagerConfig", lambda: render_alertmanager_files(cfg)),
    ]
    boards = dashboards(cfg)
    if boards is not None:
        jobs.append(("dashboards", boards))
    total = 0.0
    outputs: dict[str, str] = {}
    for name, fn in jobs:
        seconds, out = best_of(args.repeat, fn)
        total += seconds
        outputs.update(out)
        size = sum(len(text) for text in out.values())
        print(f"{name:42s} {seconds:6.2f} s  {len(out)} files, {size / 1e6:.1f} MB")
    rules = outputs.get("slaprobe-rules.yaml", "")
    print(f"{'total':42s} {total:6.2f} s  (target < 10 s); {rules.count('- record:')} recording rules, "
          f"{rules.count('- alert:')} alerting rules")  # fmt: skip
    if args.promtool:
        promtool = shutil.which("promtool")
        if promtool is None:
            print("promtool: not installed")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "slaprobe-rules.yaml"
                path.write_text(rules)
                start = time.perf_counter()
                run = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
                print(f"{'promtool check rules':42s} {time.perf_counter() - start:6.2f} s  {run.stdout.strip()}")
    return 0 if total < 10 else 1


if __name__ == "__main__":
    sys.exit(main())
