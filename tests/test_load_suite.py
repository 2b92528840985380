"""The load and fault suite's plumbing (bench/load.py): a short run with no fault on the real services.

It starts its own PostgreSQL database, Redis, Azurite, nginx, two API nodes and two workers, so it carries the
`stack` marker itself (it uses none of the fixtures the markers follow), and `slow`: it lasts about a minute.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_load_suite_without_faults_meets_every_goal(tmp_path: Path) -> None:
    summary_file = tmp_path / "load.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMIFY_") or k == "STREAMIFY_TEST_PG"}
    args = ["--faults", "none", "--duration", "20", "--creators", "2", "--viewers", "4", "--json", str(summary_file)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    out = done.stdout + done.stderr
    assert "Load and faults" in out and "Goals" in out, out  # the tables were printed
    summary = json.loads(summary_file.read_text())
    whole = summary["phases"][0]
    assert whole["phase"] == "whole run"
    assert whole["requests"] > 0 and whole["errors"] == 0 and whole["drops"] == 0, whole
    assert summary["uploads"].get("accepted", 0) > 0 and summary["jobs"] > 0, summary
    assert done.returncode == 0, out  # every goal met when nothing is broken
