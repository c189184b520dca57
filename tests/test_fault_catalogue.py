"""The whole bad-input and fault catalogue (benchmarks/fault_catalogue.py, 78 cases run as a user would):
every case ends in one line and exit status 2 with nothing written, or succeeds where it should."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in


@pytest.mark.slow
def test_every_case_of_the_fault_catalogue_passes(tmp_path):
    script = ROOT / "benchmarks" / "fault_catalogue.py"
    done = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path / "catalogue.md")],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "78 of 78 pass" in done.stdout
