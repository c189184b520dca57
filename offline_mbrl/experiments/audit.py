"""The fidelity audit over every registered algorithm: each config key's value, the reference value and the
file and line it comes from (`provenance.Source`), as a table (`config --audit`) or Markdown written between
markers into docs/fidelity.md. An experiment over the registry, so it sits above the algorithms."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from offline_mbrl.provenance import BEHAVIOUR, Source, Sourced


class AuditRow(NamedTuple):
    algorithm: str
    setting: str
    suite: str
    reference: str
    source: str
    status: str


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def audit_rows(
    algorithm: str,
    defaults: Mapping[str, Any],
    spec_sources: Mapping[str, Source],
    presets: Mapping[str, Mapping[str, Any]],
) -> list[AuditRow]:
    """The audit table's rows of one algorithm: every sourced default, then every preset key with the
    tasks it covers (one row per key and source file)."""
    rows = []
    for key, src in spec_sources.items():
        status = src.status() + (f": {src.note}" if src.note else "")
        if key.startswith(BEHAVIOUR):
            suite_value = "yes" if not src.deviates else "no"
            rows.append(
                AuditRow(algorithm, key, suite_value, _shown(src.reference_value("yes")), str(src), status)
            )
            continue
        rows.append(
            AuditRow(
                algorithm,
                key,
                _shown(defaults[key]),
                _shown(src.reference_value(defaults[key])),
                str(src),
                status,
            )
        )
    per_key: dict[tuple[str, str], list[tuple[str, Any, Source]]] = {}
    for task, preset in presets.items():
        for key, v in preset.items():
            if isinstance(v, Sourced):
                file = v.source.where.split("#")[0]
                per_key.setdefault((key, file), []).append((task, v.value, v.source))
    for (key, file), entries in per_key.items():
        values = "; ".join(f"{t} {_shown(v)}" for t, v, _ in entries)
        refs = "; ".join(f"{t} {_shown(s.reference_value(v))}" for t, v, s in entries)
        lines = ",".join(s.where.partition("#")[2] for _, _, s in entries if "#" in s.where)
        statuses = {s.status() for _, _, s in entries}
        notes = {s.note for _, _, s in entries if s.note}
        status = "/".join(sorted(statuses)) + (": " + " ".join(sorted(notes)) if notes else "")
        rows.append(
            AuditRow(
                algorithm,
                f"preset {key}",
                values,
                "same" if refs == values else refs,
                file + (f"#{lines}" if lines else ""),
                status,
            )
        )
    return rows


def audit_table(names: list[str] | None = None) -> list[AuditRow]:
    """The audit rows of the registered algorithms (all of them, or `names`)."""
    from offline_mbrl.algorithms import algorithms, get_spec
    from offline_mbrl.config import TrainConfig, describe

    rows: list[AuditRow] = []
    for name in names or list(algorithms()):
        spec = get_spec(name)
        defaults = {k: v for k, v, _ in describe(TrainConfig(name, "-", spec.config_type()))}
        rows += audit_rows(name, defaults, spec.sources, spec.presets)
    return rows


def _md_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return lines


def audit_markdown(names: list[str] | None = None) -> str:
    """docs/fidelity.md's audit tables (`offline-mbrl config --audit --markdown` prints them): what the
    audit fixed, the deliberate deviations with their switches, then every sourced setting."""
    rows = audit_table(names)
    fixed = [r for r in rows if r.status.startswith("fixed")]
    deviations = [r for r in rows if r.status.startswith("deliberate deviation")]
    out = [f"#### Fixed by the round-3 audit ({len(fixed)} rows)", ""]
    out += _md_table(AuditRow._fields, [tuple(r) for r in fixed])
    out += [
        "",
        f"#### Deliberate deviations, each with the setting that gives the reference's "
        f"({len(deviations)} rows)",
        "",
    ]
    out += _md_table(AuditRow._fields, [tuple(r) for r in deviations])
    out += [
        "",
        f"#### Every sourced setting ({len(rows)} rows)",
        "",
        "<details><summary>the whole table</summary>",
        "",
    ]
    out += _md_table(AuditRow._fields, [tuple(r) for r in rows])
    out += ["", "</details>"]
    return "\n".join(out) + "\n"


AUDIT_BEGIN = "<!-- audit:begin (offline-mbrl config --audit --markdown) -->"


AUDIT_END = "<!-- audit:end -->"


def write_audit(path: str | os.PathLike[str]) -> None:
    """Regenerate the audit tables between the markers of a Markdown page (docs/fidelity.md), atomically."""
    from pathlib import Path

    from offline_mbrl.core.cache import atomic_path
    from offline_mbrl.core.errors import UserError

    page = Path(path)
    try:
        text = page.read_text()
    except OSError as exc:
        raise UserError(f"cannot read {page}: {exc.strerror}") from None
    if AUDIT_BEGIN not in text or AUDIT_END not in text:
        raise UserError(f"{page} has no audit markers ({AUDIT_BEGIN} ... {AUDIT_END})")
    head, rest = text.split(AUDIT_BEGIN, 1)
    _, tail = rest.split(AUDIT_END, 1)
    with atomic_path(page) as tmp:
        tmp.write_text(head + AUDIT_BEGIN + "\n" + audit_markdown() + AUDIT_END + tail)
