"""The ``slaprobe`` command line: serve, check, generate, demo, report, push."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from slaprobe import __version__
from slaprobe.burnrate import describe_config
from slaprobe.config import Config, ConfigError, config_json_schema, load_config


def _print_errors(exc: ConfigError) -> None:
    for issue in exc.issues:
        where = f" ({exc.source}:{issue.line})" if issue.line and exc.source else ""
        print(f"error: {issue.path or '<root>'}: {issue.message}{where}", file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    """Validate the config (and modules); print every error, or a one-line summary."""
    if args.schema:
        json.dump(config_json_schema(), sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return 0
    if not args.config and not args.modules:
        print("error: give --config FILE and/or --modules FILE (or --schema)", file=sys.stderr)
        return 2
    from slaprobe.exporter.blackbox import load_modules

    failed = False
    summary = []
    pairs: list[str] = []
    if args.config:
        try:
            cfg = load_config(args.config)
            summary.append(cfg.summary())
            pairs = describe_config(cfg)
        except ConfigError as exc:
            _print_errors(exc)
            failed = True
    if args.modules:
        try:
            modules = load_modules(args.modules)
            summary.append(f"{len(modules)} modules")
        except ConfigError as exc:
            _print_errors(exc)
            failed = True
    if failed:
        return 1
    print(f"ok: {'; '.join(summary)}")
    for line in pairs:  # which burn-rate alerts each SLA window gets
        print(f"  {line}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the exporter until SIGTERM/SIGINT."""
    from slaprobe.exporter.runtime import Sources
    from slaprobe.exporter.serve import ServeOptions, serve
    from slaprobe.exporter.sharding import Shard

    if not args.config and not args.modules:
        print("error: give --config FILE and/or --modules FILE", file=sys.stderr)
        return 2
    try:
        shard = Shard.parse(args.shard) if args.shard else Shard()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    options = ServeOptions(
        sources=Sources(config=args.config, modules=args.modules),
        listen=args.listen,
        probe_allow=[e.strip() for e in (args.probe_allow or "").split(",") if e.strip()],
        web_config=args.web_config,
        allowed_hosts=[e.strip() for e in (args.allow_host or "").split(",") if e.strip()],
        state_dir=args.state_dir,
        shard=shard,
        max_connections=args.max_connections,
        watch_config=args.watch_config,
    )
    from slaprobe.exporter.webconfig import WebConfigError

    try:
        return asyncio.run(serve(options))
    except (OSError, ValueError, WebConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the misbehaving sample service and the exporter probing it."""
    from slaprobe.demo.run import run_demo

    return asyncio.run(run_demo(listen=args.listen, workdir=args.workdir, generate=generate_all, report=live_report))


def live_report(cfg: Config, prometheus: str) -> str:
    """The demo's /report: the HTML SLA report of the last hour from ``prometheus`` (a demo is young)."""
    from slaprobe.dashboards.report import build_report

    return build_report(cfg, prometheus, "1h")


def _manifest_labels(pairs: Sequence[str] | None) -> dict[str, str]:
    """``["release=kps"]`` -> ``{"release": "kps"}``."""
    labels = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--manifest-label: expected KEY=VALUE, got {pair!r}")
        labels[key] = value
    return labels


def _generate_rules(cfg: Config, args: argparse.Namespace) -> dict[str, str]:
    """Rule file, promtool rule tests, PrometheusRule manifest."""
    from slaprobe.alerts import render_rule_files

    return render_rule_files(cfg, namespace=args.namespace, labels=_manifest_labels(args.manifest_label))


def _generate_alertmanager(cfg: Config, args: argparse.Namespace) -> dict[str, str]:
    """alertmanager.yaml and the AlertmanagerConfig manifest."""
    from slaprobe.alerts import render_alertmanager_files

    return render_alertmanager_files(cfg, namespace=args.namespace, labels=_manifest_labels(args.manifest_label))


def _generate_dashboards(cfg: Config, args: argparse.Namespace) -> dict[str, str]:
    """The Grafana boards, one JSON file each."""
    from slaprobe.dashboards import generate_dashboards

    return generate_dashboards(cfg)


# What `generate` writes, by name: each returns {file name: text}; `all` runs every one, in this order.
GENERATORS: dict[str, Callable[[Config, argparse.Namespace], dict[str, str]]] = {
    "rules": _generate_rules,
    "alertmanager": _generate_alertmanager,
    "dashboards": _generate_dashboards,
}


def generate_all(cfg: Config) -> dict[str, str]:
    """What ``slaprobe generate all`` writes, with the default options: {file name: text}."""
    args = argparse.Namespace(namespace="monitoring", manifest_label=None)
    return {name: text for generator in GENERATORS.values() for name, text in generator(cfg, args).items()}


def cmd_generate(args: argparse.Namespace) -> int:
    """Write generated rules, routing or dashboards into --out (deterministic files)."""
    names = list(GENERATORS) if args.what == "all" else [args.what]
    try:
        cfg = load_config(args.config, require_secrets=False)
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    out = Path(args.out)
    try:
        files = {name: text for generator in names for name, text in GENERATORS[generator](cfg, args).items()}
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
            print(out / name)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Write the SLA report over ``--period``, or the monthly statement of ``--month``, from Prometheus."""
    from slaprobe.dashboards.report import ReportError, build_report, parse_end
    from slaprobe.dashboards.statement import build_statement

    if args.month and (args.period or args.end):
        print("error: report: --month is a calendar month: give it without --period and --end", file=sys.stderr)
        return 2
    if args.format == "csv" and not args.month:
        print("error: report: --format csv is the monthly statement's: give --month YYYY-MM", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        _print_errors(exc)
        return 1
    try:
        if args.month:
            text = build_statement(cfg, args.prometheus, args.month, fmt=args.format)
        else:
            text = build_report(cfg, args.prometheus, args.period or "30d", fmt=args.format, end=parse_end(args.end))
    except ReportError as exc:
        print(f"error: report: {exc}", file=sys.stderr)
        return 1
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: report: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(args.out)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    """Report one run of a heartbeat probe: ``slaprobe push URL [--status down] [--duration 1.5] [--msg TEXT]``."""
    from slaprobe.push import PushError, Run, push, read_token, seconds_of, shown

    try:
        token = read_token(args.token_env, args.token_file)
        run = Run(
            success=args.status == "up",
            duration=seconds_of(args.duration) if args.duration is not None else None,
            message=args.msg or "",
            location=args.location,
            reason=args.reason,
        )
        answer = push(args.url, token, run, timeout=args.timeout)
    except PushError as exc:
        print(f"error: push: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {args.status} to {shown(args.url)}: {answer}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="slaprobe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"slaprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the exporter")
    serve.add_argument("--config", help="slaprobe config file (version: v1)")
    serve.add_argument("--modules", help="blackbox_exporter module file, answered on /probe")
    serve.add_argument(
        "--watch-config",
        action="store_true",
        help="reload when the config or module file changes (a bad file keeps the running one)",
    )
    serve.add_argument("--listen", default="127.0.0.1:9799", help="host:port (default 127.0.0.1:9799)")
    serve.add_argument("--probe-allow", help="extra /probe targets: CIDRs, hostname globs, each [:port[-port]]")
    serve.add_argument("--web-config", help="exporter-toolkit web-config.yml: TLS and basic auth")
    serve.add_argument(
        "--allow-host",
        help="DNS names (comma-separated) /-/reload and the webhook answer to in the Host header; "
        "IP literals and localhost always work (a defence against DNS rebinding)",
    )
    serve.add_argument("--state-dir", help="where log offsets and ticket state are kept")
    serve.add_argument(
        "--max-connections",
        type=int,
        help="client connections open at once (default: the open-file limit less a reserve); "
        "one address may hold a quarter of them",
    )
    serve.add_argument("--shard", help="I/N or auto/N (I from the pod name ordinal): run only this replica's share")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate a config: every error, or a one-line summary")
    check.add_argument("--config")
    check.add_argument("--modules")
    check.add_argument("--schema", action="store_true", help="print the config's JSON Schema and exit")
    check.set_defaults(func=cmd_check)

    generate = sub.add_parser("generate", help="write Prometheus rules, Alertmanager config, dashboards")
    generate.add_argument("what", choices=[*GENERATORS, "all"])
    generate.add_argument("--config", required=True)
    generate.add_argument("--out", required=True)
    generate.add_argument("--namespace", default="monitoring", help="namespace of the Kubernetes manifests")
    generate.add_argument(
        "--manifest-label",
        action="append",
        metavar="KEY=VALUE",
        help="label on the manifests, e.g. release=kube-prometheus-stack (repeatable)",
    )
    generate.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="local demo: a faulty sample service and the exporter probing it")
    demo.add_argument("--listen", default="127.0.0.1:9799")
    demo.add_argument("--workdir", default="/tmp/slaprobe-demo")
    demo.set_defaults(func=cmd_demo)

    report = sub.add_parser("report", help="SLA report from Prometheus")
    report.add_argument("--config", required=True)
    report.add_argument("--prometheus", required=True)
    report.add_argument("--period", help="rolling period ending at --end (default 30d)")
    report.add_argument(
        "--month", help="YYYY-MM: the monthly SLA statement, each service's calendar month in its time zone"
    )
    report.add_argument("--out", required=True)
    report.add_argument("--format", choices=["html", "markdown", "csv"], default="html", help="csv: with --month")
    report.add_argument("--end", help="end of the period: RFC 3339 time or unix seconds (default: now)")
    report.set_defaults(func=cmd_report)

    push = sub.add_parser("push", help="report a run of a heartbeat probe (for cron jobs, scripts, remote agents)")
    push.add_argument("url", help="http(s)://exporter:9799/push/<service>/<probe>")
    push.add_argument("--status", choices=["up", "down"], default="up")
    push.add_argument("--duration", help="how long the job or test took: seconds or a duration (1500ms)")
    push.add_argument("--msg", help="one line for the status page (e.g. why it failed)")
    push.add_argument("--location", help="where a remote agent ran the test (sends a JSON result)")
    push.add_argument("--reason", help="failure reason with --status down, e.g. timeout (sends a JSON result)")
    push.add_argument("--token-env", default="SLAPROBE_PUSH_TOKEN", help="variable holding the token (%(default)s)")
    push.add_argument("--token-file", help="file holding the token (instead of the variable)")
    push.add_argument("--timeout", type=float, default=10.0, help="seconds (default %(default)s)")
    push.set_defaults(func=cmd_push)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``slaprobe`` command."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
