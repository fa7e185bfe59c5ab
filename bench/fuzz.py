"""The long fuzz run: every property of tests/reliability/test_fuzz.py, 100,000 examples each.

    python bench/fuzz.py                      # all properties, 100,000 examples each
    python bench/fuzz.py --examples 20000 config modules

Properties (see tests/reliability/test_fuzz.py): ``config`` (parse_config gives a Config or
a ConfigError), ``modules`` (parse_modules the same), ``log line <format>`` for each log
format (None or a readable Event, never an exception), ``times`` (timestamp and duration
readers). Prints one line per property (examples run, seconds, failing examples) and, with
``--markdown``, the table for bench/README.md. A failing example does not end the run:
failures are counted by the line that raised, the first example of each is printed, and
the exit status is 1.
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


def _where(exc: BaseException) -> str:
    """``TypeError at slaprobe/schedule.py:199`` : the kind of failure, for counting distinct ones."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if Path(f.filename).resolve().is_relative_to(REPO) and not f.filename.endswith("fuzz.py")]
    frame = (ours or frames)[-1]
    path = Path(frame.filename).resolve()
    return f"{type(exc).__name__} at {path.relative_to(REPO) if path.is_relative_to(REPO) else path}:{frame.lineno}"


def run(name: str, examples: int) -> tuple[int, float, dict[str, tuple[int, str]]]:
    """Run one property for ``examples`` examples; (examples run, seconds, failures).

    A failing example does not stop the run (hypothesis would stop at the first): it is
    counted by where it failed, with the first (unshrunk) example kept, and generation goes on.
    """
    check, strategy = PROPERTIES[name]
    count = 0
    failures: dict[str, tuple[int, str]] = {}

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
        try:
            check(value)
        except Exception as exc:
            where = _where(exc)
            seen, example = failures.get(where, (0, f"{exc!r}\n    example: {value!r}"[:2000]))
            failures[where] = (seen + 1, example)

    started = time.perf_counter()
    prop()
    return count, time.perf_counter() - started, failures


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
        count, seconds, failures = run(name, args.examples)
        failed |= bool(failures)
        print(f"{name:28} {count:>8} examples {seconds:8.1f} s {count / seconds:8.0f}/s  "
              f"{sum(n for n, _ in failures.values())} failing", flush=True)  # fmt: skip
        for where, (seen, example) in failures.items():
            print(f"    {seen} x {where}: {example}", flush=True)
        outcome = "; ".join(f"{seen} x {where}" for where, (seen, _) in failures.items()) or "none"
        rows.append((name, count, seconds, outcome))
    if args.markdown:
        print("\n| property | examples | time | examples/s | exceptions other than ConfigError |")
        print("|---|---:|---:|---:|---|")
        for name, count, seconds, outcome in rows:
            print(f"| {name} | {count:,} | {seconds:,.0f} s | {count / seconds:,.0f} | {outcome} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
