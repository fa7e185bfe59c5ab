"""Log rotation of every kind while a writer appends and the exporter restarts: every line counted once.

The short version of bench/log_rotation.py (100 rotations at 10,000 lines/s with 5 restarts):
16 rotations 0.6 s apart (rename + create, copytruncate, dateext rename + create, delete +
recreate, in turn; old generations gzipped and deleted) at 2,000 lines/s, and a real
``slaprobe serve --state-dir`` restarted 3 times with SIGTERM, a rotation of a different
kind happening while it is down each time. Lines carry their number; the exporter counts
them per block of 200 (a user-defined counter, and one summing the numbers), and each
life's final line count is the one its graceful shutdown logs. What is excluded and why
(delete while down, copytruncate without the writer's lock) is in tests/support/logrotation.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.logrotation import DOWN_KINDS, KINDS, Outcome, run_scenario

ROTATIONS = 16
RESTARTS = 3
RATE = 2000  # lines/s


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """One run of the scenario (about 20 s), shared by the tests below."""
    workdir = Path(tmp_path_factory.mktemp("rotation"))
    return run_scenario(workdir, rotations=ROTATIONS, rate=RATE, restarts=RESTARTS, interval=0.6, block_lines=200)


def test_every_line_written_is_counted_exactly_once_over_all_lives(outcome: Outcome) -> None:
    assert outcome.written > ROTATIONS * 0.6 * RATE * 0.9
    assert outcome.counted == outcome.written, outcome.problems
    assert (outcome.duplicated, outcome.lost) == (0, 0), outcome.problems
    assert outcome.problems == []


def test_every_block_of_line_numbers_is_counted_once_in_the_lives_last_scrapes(outcome: Outcome) -> None:
    """Per block of 200 numbers: count and sum of the numbers, when every life's last scrape was final."""
    if outcome.exact_lives < len(outcome.lives):
        pytest.skip("a life counted after its last scrape (the test machine stalled): totals checked only")
    assert outcome.blocks_checked
    assert outcome.problems == []
    assert outcome.requests == outcome.written  # the per-service request counters agree


def test_the_exporter_restarted_and_rotations_of_each_kind_happened_also_while_it_was_down(outcome: Outcome) -> None:
    assert len(outcome.lives) == RESTARTS + 1
    assert [life.exit_status for life in outcome.lives] == [0] * (RESTARTS + 1)
    assert all(life.lines > 0 for life in outcome.lives)
    assert outcome.rotations == {kind: ROTATIONS // len(KINDS) for kind in KINDS}
    assert outcome.rotations_while_down == {kind: 1 for kind in DOWN_KINDS}
    assert outcome.compressed > 0 and outcome.deleted > 0


def test_no_line_was_split_or_skipped(outcome: Outcome) -> None:
    assert (outcome.unparsed, outcome.too_long) == (0, 0)
