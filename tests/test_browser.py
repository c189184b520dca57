"""Reports in a real browser: Debian's chromium (`.ci/system-packages.sh` installs it) opens report.html
headlessly at a laptop's 1,366 px; every image loads and no element reaches past the window's right edge.
The sweep report (what the README's main job ends with) and a comparison report are checked, and each
page's screenshot is kept in `artifacts/browser/` of the checkout (git-ignored) for a person to look at."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from offline_mbrl.report.build import make_report
from offline_mbrl.sweep.report import sweep_report
from offline_mbrl.sweep.results import load_study
from offline_mbrl.sweep.study import run_sweep

from . import test_sweep
from .test_report import write_grid
from .test_sweep import TINY, spec

root = test_sweep.root  # a project root of its own, cwd in tmp, the tiny dataset

WIDTH = 1366
ARTEFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0))
    .map(i => (i.getAttribute("src") || "").slice(0, 80));
  const wide = [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > WIDTH + 0.5);
  const out = document.createElement("pre");
  out.id = "browser-check";
  out.textContent = JSON.stringify({images: images.length, broken: broken,
    scroll_width: document.documentElement.scrollWidth, wide: wide.slice(0, 10).map(e => e.tagName)});
  document.body.appendChild(out);
});
</script>""".replace("WIDTH", str(WIDTH))


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "chromium not found: bash .ci/system-packages.sh (apt-get install chromium)", pytrace=False
        )
    return found


def open_in_browser(page: Path, name: str) -> dict:
    """Load `page` headlessly at WIDTH px; what the probe saw. Its screenshot goes to ARTEFACTS/NAME.png."""
    exe = _chromium()
    probe = page.with_name(f".probe-{page.name}")  # beside it: the figures/ links resolve the same
    probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={WIDTH},900"]
    dom = subprocess.run(
        [exe, *flags, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    probe.unlink()
    found = re.search(r'<pre id="browser-check">([^<]*)</pre>', dom)
    assert found, f"the page never finished loading: {dom[-500:]}"
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTEFACTS / f"{name}.png"
    subprocess.run(
        [exe, *flags[:-1], f"--window-size={WIDTH},3000", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def _assert_fits(seen: dict) -> None:
    assert seen["images"] > 0 and seen["broken"] == [], seen
    assert seen["scroll_width"] <= WIDTH and seen["wide"] == [], seen


def test_the_sweep_report_loads_every_image_and_fits_a_laptop(root, tmp_path):
    run_sweep(
        spec(trials=3, steps=20, overrides=(*TINY, "eval_every=10", "checkpoint_every=10")), progress=False
    )
    out = sweep_report(load_study("mbpo-test_pendulum_tiny-v0"), tmp_path / "sweep")
    seen = open_in_browser(out / "report.html", "sweep-report")
    _assert_fits(seen)
    assert seen["images"] == 2  # the tuning curve and the trials' learning curves


def test_a_comparison_report_loads_every_image_and_fits_a_laptop(tmp_path):
    write_grid(tmp_path / "runs")
    report = make_report([tmp_path / "runs"], tmp_path / "report", reps=200, progress=False)
    seen = open_in_browser(report.folder / "report.html", "comparison-report")
    _assert_fits(seen)
    assert seen["images"] >= 4
