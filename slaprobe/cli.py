"""The ``slaprobe`` command line: serve, check, generate, demo, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from slaprobe import __version__
from slaprobe.config import ConfigError, config_json_schema, load_config


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
    if args.config:
        try:
            summary.append(load_config(args.config).summary())
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
        state_dir=args.state_dir,
        shard=shard,
    )
    from slaprobe.exporter.webconfig import WebConfigError

    try:
        return asyncio.run(serve(options))
    except (OSError, ValueError, WebConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def cmd_demo(args: argparse.Namespace) -> int:
    """Start the misbehaving sample service and the exporter probing it."""
    from slaprobe.exporter.demo import run_demo

    return asyncio.run(run_demo(listen=args.listen, workdir=args.workdir))


def cmd_generate(args: argparse.Namespace) -> int:
    """Write generated rules, routing or dashboards (later issues)."""
    print(f"error: generate {args.what}: not implemented yet", file=sys.stderr)
    return 2


def cmd_report(args: argparse.Namespace) -> int:
    """Write the SLA report (a later issue)."""
    print("error: report: not implemented yet", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="slaprobe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"slaprobe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the exporter")
    serve.add_argument("--config", help="slaprobe config file (version: v1)")
    serve.add_argument("--modules", help="blackbox_exporter module file, answered on /probe")
    serve.add_argument("--listen", default="127.0.0.1:9799", help="host:port (default 127.0.0.1:9799)")
    serve.add_argument("--probe-allow", help="extra /probe targets: comma-separated CIDRs and hostname globs")
    serve.add_argument("--web-config", help="exporter-toolkit web-config.yml: TLS and basic auth")
    serve.add_argument("--state-dir", help="where log offsets and ticket state are kept")
    serve.add_argument("--shard", help="I/N: run only this replica's share of the probes")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate a config: every error, or a one-line summary")
    check.add_argument("--config")
    check.add_argument("--modules")
    check.add_argument("--schema", action="store_true", help="print the config's JSON Schema and exit")
    check.set_defaults(func=cmd_check)

    generate = sub.add_parser("generate", help="write Prometheus rules, Alertmanager config, dashboards")
    generate.add_argument("what", choices=["rules", "alertmanager", "dashboards", "all"])
    generate.add_argument("--config", required=True)
    generate.add_argument("--out", required=True)
    generate.set_defaults(func=cmd_generate)

    demo = sub.add_parser("demo", help="local demo: a faulty sample service and the exporter probing it")
    demo.add_argument("--listen", default="127.0.0.1:9799")
    demo.add_argument("--workdir", default="/tmp/slaprobe-demo")
    demo.set_defaults(func=cmd_demo)

    report = sub.add_parser("report", help="SLA report from Prometheus")
    report.add_argument("--config", required=True)
    report.add_argument("--prometheus", required=True)
    report.add_argument("--period", default="30d")
    report.add_argument("--out", required=True)
    report.add_argument("--format", choices=["html", "markdown"], default="html")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``slaprobe`` command."""
    args = build_parser().parse_args(argv)
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
