"""The Hypothesis settings every generated suite (tests/test_generated_*.py) shares.

`OFFLINE_MBRL_HYPOTHESIS_EXAMPLES` sets the examples per test: 25 in CI (the default); the longer run is
documented in docs/faults.md. Failing examples are kept in the committed database tests/hypothesis-examples
and replayed first by every later run, so a found case stays found.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("OFFLINE_MBRL_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=DirectoryBasedExampleDatabase(ROOT / "tests" / "hypothesis-examples"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
