"""promtool's generated rule tests, each case on its own against the groups it reads, side by side."""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from slaprobe.alerts import RULE_TESTS_FILE, RULES_FILE
from slaprobe.alerts.ruletests import groups_read
from slaprobe.alerts.yamltext import dump_yaml


def case_directories(rules: dict[str, Any], tests: dict[str, Any], root: Path) -> list[Path]:
    """One directory per case of ``tests``: the case, and the groups of ``rules`` it reads."""
    directories = []
    for number, case in enumerate(tests["tests"]):
        groups = groups_read(rules, case)
        directory = root / f"case-{number:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RULES_FILE).write_text(dump_yaml({"groups": [g for g in rules["groups"] if g["name"] in groups]}))
        document = {**tests, "rule_files": [RULES_FILE], "group_eval_order": groups, "tests": [case]}
        (directory / RULE_TESTS_FILE).write_text(dump_yaml(document))
        directories.append(directory)
    return directories


def run_cases(promtool: str, directories: list[Path], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` in every directory, one process per usable core; the worst exit code wins.

    promtool evaluates every group of its rule files at every step, and one file's cases in turn
    on one core: alone, against only the groups it reads, a case costs a fraction.
    """
    args = [promtool, "test", "rules", RULE_TESTS_FILE]

    def one(directory: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, cwd=directory, capture_output=True, text=True, timeout=timeout, check=False)

    with ThreadPoolExecutor(max_workers=len(os.sched_getaffinity(0))) as pool:
        results = list(pool.map(one, directories))
    return subprocess.CompletedProcess(
        args,
        max((r.returncode for r in results), default=0),
        "".join(r.stdout for r in results),
        "".join(r.stderr for r in results),
    )
