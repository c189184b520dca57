"""Provenance: every paper-preset value names its source, `config` prints value and source per key, and
docs/fidelity.md's audit tables are the ones the code gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from offline_mbrl.algorithms import algorithms
from offline_mbrl.experiments.audit import AUDIT_BEGIN, AUDIT_END, audit_markdown, audit_table
from offline_mbrl.provenance import BEHAVIOUR, Ref, Source, Sourced, key_sources
from tests.test_cli import run_cli

DOCS = Path(__file__).resolve().parents[1] / "docs" / "fidelity.md"


@pytest.mark.parametrize("name", sorted(algorithms()))
def test_every_preset_key_of_every_task_has_a_source(name):
    spec = algorithms()[name]
    for task, preset in spec.presets.items():
        for key, value in preset.items():
            assert isinstance(value, Sourced), f"{name} {task} {key}: a preset value without a source"
            assert value.source.where.strip(), (name, task, key)


def test_cited_sources_name_a_commit_and_a_line():
    pattern = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{7} \S+(#L\d+(-L\d+)?(,L\d+(-L\d+)?)*)?$")
    for name, spec in algorithms().items():
        cited = list(spec.sources.values()) + [v.source for p in spec.presets.values() for v in p.values()]
        for src in cited:
            if not src.where.startswith("suite choice"):
                assert pattern.match(src.where), (name, src.where)


def test_ref_cites_line_ranges():
    ref = Ref("owner/repo", "0123456789abcdef0123456789abcdef01234567")
    assert ref.at("a.py", 20, 21, 22, 58).where == "owner/repo@0123456 a.py#L20-L22,L58"
    assert ref.at("a.py").where == "owner/repo@0123456 a.py"


def test_key_sources_prefer_set_then_preset_then_default():
    defaults = {"a": Source("default A"), "b": Source("default B", reference=2, note="why")}
    preset = {"a": Sourced(1, Source("preset A"))}
    got = key_sources(defaults, preset, {"c"}, ["a", "b", "c", "d"])
    assert got == {"a": "preset: preset A", "b": "default B (deliberate deviation)", "c": "--set", "d": ""}


def test_config_prints_each_keys_value_and_source(capsys):
    code, out, _ = run_cli(
        capsys, "config", "--algo", "mopo", "--preset", "paper", "--task", "hopper-medium-replay",
        "--set", "algo.batch_size=128",
    )  # fmt: skip
    assert code == 0
    flat = " ".join(out.split())
    assert "run_example/run_mopo.py#L32" in flat  # h and λ: the task's line of the suggested hypers
    assert "--set" in flat and "offlinerlkit/policy/model_free/sac.py#L126 (fixed)" in flat


def test_config_audit_lists_fixes_and_deviations(capsys):
    code, out, _ = run_cli(capsys, "config", "--audit", "--markdown", "--algo", "morec-mopo")
    assert code == 0 and "| morec-mopo | algo.filter.cut | terminal | terminal |" in out
    assert "deliberate deviation" in out
    rows = audit_table(["morec-mopo"])
    assert {r.status.split(":")[0] for r in rows} == {"matches", "fixed", "deliberate deviation"}
    assert all(r.setting.startswith(("preset ", BEHAVIOUR)) or r.suite != "" for r in rows)


def test_docs_fidelity_carries_the_audit_the_code_gives():
    text = DOCS.read_text()
    assert AUDIT_BEGIN in text and AUDIT_END in text, "docs/fidelity.md lost its audit markers"
    body = text.split(AUDIT_BEGIN, 1)[1].split(AUDIT_END, 1)[0].strip("\n") + "\n"
    assert body == audit_markdown(), (
        "docs/fidelity.md is stale: regenerate its audit tables with "
        "`offline-mbrl config --audit --into docs/fidelity.md`"
    )
