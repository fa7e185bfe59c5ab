"""Logs: 100 rotations of mixed kinds at 10,000 lines/s with 5 exporter restarts; every line counted once?

    python bench/log_rotation.py                     # the issue's figures
    python bench/log_rotation.py --rotations 20 --rate 2000 --restarts 2

A writer thread appends numbered nginx access lines at ``--rate`` lines/s (a batch every
5 ms, complete lines, O_APPEND) and rotates the log every ``--interval`` seconds, cycling
rename + create, copytruncate (under the writer's lock), dateext rename + create and
delete + recreate; old numbered generations are gzipped and deleted, old dateext ones
deleted. A real ``slaprobe serve --state-dir`` reads ``access.log*`` and is restarted
(SIGTERM, start again) ``--restarts`` times, a rotation of another kind happening each time
while it is down. The scenario, what it excludes and why, and how each life's final counts
are known are in tests/support/logrotation.py (its short version runs in CI:
tests/reliability/test_log_rotation.py).

Pass (exit status 0): lines counted over all lives equal the lines written, no block of
line numbers counted twice or short, no line unparsed or too long.
"""

from __future__ import annotations

import argparse
import sys
import time

import common

sys.path.insert(0, str(common.REPO))

from tests.support.logrotation import KINDS, run_scenario


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rotations", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10_000, help="lines per second")
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between rotations")
    parser.add_argument("--block", type=int, default=1000, help="lines per block of the per-block counters")
    args = parser.parse_args()
    common.print_machine()
    print(
        f"{args.rotations} rotations {args.interval:g} s apart, {args.rate:,.0f} lines/s, {args.restarts} restarts",
        flush=True,
    )
    with common.workdir("slaprobe-logrotation-") as tmp:
        started = time.monotonic()
        outcome = run_scenario(
            tmp,
            rotations=args.rotations,
            rate=args.rate,
            restarts=args.restarts,
            interval=args.interval,
            block_lines=args.block,
            progress=lambda text: print(f"{time.monotonic() - started:6.1f} s  {text}", flush=True),
        )
    lives = outcome.lives
    print()
    print(
        common.md_table(
            ["life", "lines counted", "last scrape = final", "rotations noticed", "s", "CPU s", "peak RSS MB", "exit"],
            [
                (
                    life.index,
                    f"{life.lines:,}",
                    "yes" if life.exact else f"no ({life.final.lines:,})",
                    life.summary["rotations"],
                    f"{life.seconds:.1f}",
                    f"{life.cpu_seconds:.1f}",
                    common.mb(life.peak_rss),
                    life.exit_status,
                )
                for life in lives
            ],
        )
    )
    up = sum(life.seconds for life in lives)
    cpu = sum(life.cpu_seconds for life in lives)
    kinds = ", ".join(
        f"{kind} {outcome.rotations[kind]}"
        + (f" ({outcome.rotations_while_down[kind]} while down)" if outcome.rotations_while_down[kind] else "")
        for kind in KINDS
    )
    summary = {
        "lines written": f"{outcome.written:,}",
        "lines counted (sum of each life's shutdown line)": f"{outcome.counted:,}",
        "duplicates / lost": f"{outcome.duplicated} / {outcome.lost}"
        + ("" if outcome.blocks_checked else " (from totals: a life's last scrape was not final)"),
        "per-block check (count and sum of line numbers)": (
            f"{(outcome.written - 1) // args.block + 1:,} blocks of {args.block:,}, "
            + ("all equal" if not outcome.problems else f"{len(outcome.problems)} differ")
            if outcome.blocks_checked
            else "not complete"
        ),
        "requests counted (slaprobe_http_requests_total)": f"{outcome.requests:,}",
        "unparsed / too long": f"{outcome.unparsed} / {outcome.too_long}",
        "rotations": f"{sum(outcome.rotations.values())}: {kinds}",
        "old generations gzipped / deleted": f"{outcome.compressed} / {outcome.deleted}",
        "rotations noticed by the exporter (slaprobe_log_rotations_total, summed)": f"{outcome.rotations_noticed}",
        "restarts": f"{len(lives) - 1}",
        "wall time": f"{outcome.wall_seconds:.1f} s",
        "lines/s achieved (writer)": f"{outcome.lines_per_second:,.0f}",
        "exporter CPU (all lives)": f"{cpu:.1f} s over {up:.1f} s up: {cpu / up:.2f} cores" if up else "-",
        "exporter peak RSS (highest life)": f"{common.mb(max(life.peak_rss for life in lives))} MB",
    }
    print()
    print(common.md_table(["", "measured"], summary.items()))
    for problem in outcome.problems[:50]:
        print(f"  {problem}")
    ok = (
        outcome.counted == outcome.written
        and outcome.duplicated == outcome.lost == 0
        and not outcome.problems
        and outcome.unparsed == outcome.too_long == 0
        and all(life.exit_status == 0 for life in lives)
    )
    print(f"\n{'PASS' if ok else 'FAIL'}: {outcome.counted:,} of {outcome.written:,} lines counted, "
          f"{outcome.duplicated} twice, {outcome.lost} lost")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
