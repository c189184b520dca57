"""The output folder (written whole through the report layer's `publish_report`, with its own marker),
its `summary.md` (rendered by `report.render`), and the CLI's printout."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from offline_mbrl.experiments.diagnose.figures import write_figures
from offline_mbrl.experiments.diagnose.rollouts import PENALTY_MEMBERS
from offline_mbrl.experiments.diagnose.stats import fmt
from offline_mbrl.report.build import Output, check_report_out, publish_report
from offline_mbrl.report.render import Bullets, Document, Table, Text, to_markdown

DIAGNOSE = Output(
    ".offline-mbrl-diagnose", "diagnose", "diagnose output", "a diagnose output", "reports/diagnose/NAME"
)
MARKER = DIAGNOSE.marker  # marks a folder this module wrote: the only kind it replaces
PARQUET_META_KEY = b"offline_mbrl.diagnose"


@dataclass(frozen=True)
class DiagnoseResult:
    out: Path
    transitions: pd.DataFrame
    correlations: pd.DataFrame
    meta: dict[str, Any]

    @property
    def oracle_line(self) -> str:
        return self.meta["oracle_check"]["line"]


def default_out(dataset: str, seed: int) -> Path:
    return Path("reports") / "diagnose" / f"{dataset.strip().replace('/', '_')}-seed{seed}"


def check_out(out: Path) -> None:
    """An --out that exists must be a folder this module wrote (it carries the marker file)."""
    check_report_out(out, DIAGNOSE)


def _cells(row: Any, pearson_p: bool = True) -> list[str]:
    """A row of correlations.csv as table cells: penalty, Spearman ρ and p, Pearson r (and p), n, and
    Spearman ρ with the mean error."""
    cells = [str(row.penalty), fmt(row.spearman_rho), fmt(row.spearman_p, ".2g"), fmt(row.pearson_r)]
    cells += [fmt(row.pearson_p, ".2g")] if pearson_p else []
    return [*cells, str(row.n), fmt(row.spearman_rho_mean_error)]


def summary_document(corr: pd.DataFrame, by_h: pd.DataFrame, meta: dict[str, Any]) -> Document:
    doc = Document(f"Model-error diagnostics: {meta['dataset']} (dynamics seed {meta['seed']})")
    doc.add(
        Text(
            "How closely each uncertainty penalty tracks the learned ensemble's true one-step error (after "
            "Lu et al., ICLR 2022)."
        ),
        Bullets(
            [
                f"dataset: {meta['dataset']} ({meta['dataset_id']}, fingerprint {meta['fingerprint']})",
                f"dynamics: cached ensemble {meta['dynamics_key']} ({meta['dynamics_summary']})",
                f"policy: {meta['policy']['description']}",
                f"rollouts: N = {meta['starts']} dataset start states, horizon H = {meta['horizon']}, "
                f"{meta['n_transitions']} valid model transitions ({meta['simulator_rejected']} rejected by "
                "the simulator, left out of the correlations)",
                f"penalties over the {PENALTY_MEMBERS}, on the rollout's own prediction and sampled "
                "transition",
                "true_error: ‖ŝ′ − s′‖₂, ŝ′ the sampled next state the rollout used, s′ the true simulator's "
                "from the same (s, a); mean_error: the same for the elites' mean prediction",
                meta["oracle_check"]["line"],
            ]
        ),
    )
    columns = ["penalty", "Spearman ρ", "p", "Pearson r", "p", "n", "Spearman ρ vs mean_error"]
    doc.add(Table(columns, [_cells(row) for row in corr.itertuples(index=False)]))
    steps = sorted(by_h["h"].unique())
    wide = by_h.pivot(index="penalty", columns="h", values="spearman_rho")
    counts = by_h.groupby("h")["n"].max()
    names = list(corr["penalty"])
    per_step = ", ".join(f"h={h}: {counts[h]}" for h in steps)
    doc.add(
        Text(f"Spearman ρ within each rollout step h (n per step: {per_step}):"),
        Table(
            ["penalty", *(f"h={h}" for h in steps)],
            [[name, *(fmt(wide.loc[name, h]) for h in steps)] for name in names],
        ),
    )
    if "reward" in meta:
        rw = meta["reward"]
        doc.add(
            Text(
                f"MOREC's dynamics reward r_D (cached {rw['key']}, every {rw['stride']}th snapshot, "
                f"{rw['snapshots']} averaged; higher = more plausible, so a useful r_D correlates negatively "
                "with the error):"
            ),
            Bullets(
                [
                    f"ROC AUC, held-out dataset transitions ({rw['n_holdout']}) vs these model transitions "
                    f"({rw['n_model']}): **{fmt(rw['auc_data_vs_model'])}** (0.5 = chance)",
                    "ROC AUC, model transitions below vs above the median true error: "
                    f"**{fmt(rw['auc_low_vs_high_error'])}**",
                    f"Spearman ρ of r_D with the true error: **{fmt(rw['spearman_true_error'])}** "
                    f"(p {fmt(rw['spearman_p'], '.2g')})",
                    f"mean r_D: held-out data {fmt(rw['mean_data'])}, model {fmt(rw['mean_model'])}",
                ]
            ),
        )
    doc.add(
        Text("![all scores](figures/overview.png)"),
        Bullets([f"[{name}](figures/{name}.png)" for name in names]),
        Text(f"Written {meta['created']} by offline-mbrl diagnose (code {meta['code_version']})."),
    )
    return doc


def write_outputs(
    out: Path, df: pd.DataFrame, corr: pd.DataFrame, by_h: pd.DataFrame, meta: dict[str, Any], subtitle: str
) -> None:
    """Everything into a staging folder beside `out`, then one rename (replacing a previous output)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(staging: Path) -> None:
        df.to_csv(staging / "transitions.csv", index=False)
        table = pa.Table.from_pandas(df, preserve_index=False)
        schema_meta = {**(table.schema.metadata or {}), PARQUET_META_KEY: json.dumps(meta).encode()}
        pq.write_table(table.replace_schema_metadata(schema_meta), staging / "transitions.parquet")
        corr.to_csv(staging / "correlations.csv", index=False)
        by_h.to_csv(staging / "correlations_by_h.csv", index=False)
        meta["figures"] = write_figures(df, corr, staging / "figures", meta["horizon"], subtitle)
        (staging / "summary.md").write_text(to_markdown(summary_document(corr, by_h, meta)))
        (staging / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")

    publish_report(out, write, DIAGNOSE)


def print_result(result: DiagnoseResult, echo: Callable[[str], None] | None = None) -> None:
    """The correlation table, the oracle check line and where the files are (the CLI's output)."""
    from rich.table import Table as RichTable

    from offline_mbrl.core.console import console

    meta = result.meta
    table = RichTable(
        title=(
            f"{meta['dataset']}: Spearman correlation of each penalty with the true one-step error "
            f"({meta['n_transitions']} model transitions, N={meta['starts']}, H={meta['horizon']})"
        )
    )
    for col in ("penalty", "Spearman ρ", "p", "Pearson r", "n", "ρ vs mean error"):
        table.add_column(col, justify="left" if col == "penalty" else "right")
    for row in result.correlations.itertuples(index=False):
        table.add_row(*_cells(row, pearson_p=False))
    console.print(table)
    say = echo or print
    say(f"policy: {meta['policy']['description']}")
    say(f"dynamics: {meta['dynamics_key']} ({meta['dynamics_summary']})")
    say(result.oracle_line)
    if "reward" in meta:
        rw = meta["reward"]
        say(
            "dynamics reward r_D: ROC AUC held-out data vs model transitions "
            f"{fmt(rw['auc_data_vs_model'])}, "
            f"low vs high true error {fmt(rw['auc_low_vs_high_error'])}; Spearman ρ with the true error "
            f"{fmt(rw['spearman_true_error'])}"
        )
    say(
        f"written to {result.out}: transitions.csv, transitions.parquet, correlations.csv, "
        f"correlations_by_h.csv, figures/ ({len(meta['figures'])} PNGs), summary.md, meta.json"
    )
