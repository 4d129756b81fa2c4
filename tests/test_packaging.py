"""The package as a user installs it: a wheel built from the project, installed into a fresh
virtual environment, converts MedCom's example G-GOP from a directory outside the checkout
(the code tables, rules, XSDs and migrations ship inside the wheel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADAPTER_", "PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The ``ggop-adapter`` command of a fresh virtual environment with only the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                 str(work / "dist"), str(REPO)], cwd=work)
    assert built.returncode == 0, built.stderr
    wheel = next((work / "dist").glob("ggop_adapter-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("adapter/mappings/stratification.yaml", "adapter/mappings/routing.yaml",
                   "adapter/schemas/catalog.json", "adapter/store/migrations/env.py"):
        assert needed in names, needed
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    # the project's pinned dependencies come from this environment's pip cache or the index
    done = run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], cwd=work, timeout=900)
    assert done.returncode == 0, done.stderr
    return env_dir / "bin" / "ggop-adapter"


def test_wheel_converts_medcoms_example_from_any_directory(installed, medcom, tmp_path):
    example = medcom / "examples-ggop" / "ggop-medcom-example.xml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    converted = run([str(installed), "convert", str(example)], cwd=elsewhere)
    assert converted.returncode == 0, converted.stderr
    bundle = json.loads(converted.stdout)
    kinds = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert {"Patient", "ServiceRequest", "CarePlan", "Task", "Provenance"} <= kinds
    assert str(REPO) not in converted.stdout + converted.stderr


def test_wheel_serves_migrates_and_explains(installed, medcom, tmp_path):
    """The installed package finds its migrations (validate/explain need none; reevaluate
    opens and migrates a fresh SQLite store) and its rules."""
    example = medcom / "examples-ggop" / "ggop-medcom-example.xml"
    explained = run([str(installed), "explain", "--lang", "en", str(example)], cwd=tmp_path)
    assert explained.returncode == 0, explained.stderr
    assert "STRAT-R0-LEVEL-SET-BY-DOCTOR" in explained.stdout and "DL-SPEC-NOTE-PLAN" in explained.stdout
    store = run([str(installed), "reevaluate"], cwd=tmp_path)
    assert store.returncode == 0, store.stderr
    assert (tmp_path / "var" / "adapter.db").exists()
