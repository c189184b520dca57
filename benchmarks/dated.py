"""What the benchmark scripts share: the CPU's name for a table's heading, and printing a table and
appending it, dated, to a results file."""

from __future__ import annotations

import platform
import time
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), for the heading of a measured table."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "?"
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")


def publish(lines: list[str], out: Path | None) -> None:
    """Print the table; with `out`, append it to that Markdown file after today's date."""
    text = "\n".join(lines)
    print(text)
    if out:
        with out.open("a") as f:
            f.write(f"\n{time.strftime('%Y-%m-%d')}: " + text + "\n")
