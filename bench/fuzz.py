"""The long fuzz run: every property of tests/reliability/test_fuzz.py, 100,000 examples each.

    python bench/fuzz.py                      # all properties, 100,000 examples each
    python bench/fuzz.py --examples 20000 config modules

Properties (see tests/reliability/test_fuzz.py): ``config`` (parse_config gives a Config or
a ConfigError), ``modules`` (parse_modules the same), ``log line <format>`` for each log
format (None or a readable Event, never an exception), ``times`` (timestamp and duration
readers). Prints one line per property (examples run, seconds, failures) and, with
``--markdown``, the table for bench/README.md. Exit status 1 if any property failed; the
failing example is printed as hypothesis shrank it.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402

from tests.reliability.test_fuzz import PROPERTIES  # noqa: E402


def run(name: str, examples: int) -> tuple[int, float, str]:
    """Run one property for ``examples`` examples; (examples run, seconds, failure or "")."""
    check, strategy = PROPERTIES[name]
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],  # no explicit or replayed examples: all generated
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(value: object) -> None:
        nonlocal count
        count += 1
        check(value)

    started = time.perf_counter()
    failure = ""
    try:
        prop()
    except Exception:
        failure = traceback.format_exc(limit=-3)
    return count, time.perf_counter() - started, failure


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("properties", nargs="*", help=f"default: all of {', '.join(PROPERTIES)}")
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--markdown", action="store_true", help="print the bench/README.md table too")
    args = parser.parse_args()
    names = args.properties or list(PROPERTIES)
    rows = []
    failed = False
    for name in names:
        count, seconds, failure = run(name, args.examples)
        failed |= bool(failure)
        print(f"{name:28} {count:>8} examples {seconds:8.1f} s {count / seconds:8.0f}/s  "
              f"{'FAILED' if failure else 'ok'}", flush=True)  # fmt: skip
        if failure:
            print(failure, flush=True)
        rows.append((name, count, seconds, "failed" if failure else "none"))
    if args.markdown:
        print("\n| property | examples | time | examples/s | exceptions other than ConfigError |")
        print("|---|---:|---:|---:|---|")
        for name, count, seconds, outcome in rows:
            print(f"| {name} | {count:,} | {seconds:,.0f} s | {count / seconds:,.0f} | {outcome} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
