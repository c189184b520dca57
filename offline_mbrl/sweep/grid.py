"""Grids on the sweep's storage: the cells of `compare` and `reproduce` as the trials of one Optuna study.

A paper table is hundreds of (algorithm, dataset, seed) cells; `--storage URL --study NAME` spreads them
over machines with the engine the sweeps already use (`sweep.storage`: Optuna's RDB storage on PostgreSQL
with its heartbeats, or a journal file on one machine), with no queue of our own:

- The first worker to open the study records the grid (each cell's algorithm, dataset, seed and resolved
  config hash, the command's title, the package versions) and enqueues one WAITING trial per cell, whose one
  parameter is the cell's index. A worker joining later checks the study holds the same grid and the same
  versions, else it is refused in one line naming the difference.
- Each worker claims a waiting trial under the study's claim lock (a PostgreSQL advisory lock) and runs its
  cell with a heartbeat; when none waits, it waits while other workers' cells run, in case one dies.
- A worker killed mid-cell stops beating; after two heartbeat intervals another worker fails its trial and
  enqueues a retry of the same cell (`storage.retry`, at most `MAX_RETRY` times), which resumes from the
  checkpoint where the results folder is shared and starts over where it is not. A finished cell has a
  COMPLETE trial and is never claimed again; a cell that fails by its own config or data is recorded FAIL
  with its reason and counts as done for this drain; a worker joining later tries it again.
- A finished cell's trial holds everything its report needs (`record`): final.json, config.json, the
  learning curve's evaluations, family evaluations, the worker's host and run folder, the versions. So any
  machine rebuilds the report from the study alone (`materialise` writes those files into a hidden
  `.study-NAME/` folder of the results root, which the report then reads like any run folder).
"""

from __future__ import annotations

import json
import socket
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from offline_mbrl.core.cache import atomic_path
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import package_version, stack_versions
from offline_mbrl.sweep.storage import MAX_RETRY, fail_stale, open_storage, run_trial

CELL = "cell"  # the one parameter of a grid trial: the cell's index in the grid


@dataclass(frozen=True)
class GridCell:
    """One cell as the study knows it: `run_name` (seed and config hash) pins its resolved config."""

    algorithm: str
    task: str  # the name shown (a published task, or the dataset)
    dataset: str
    seed: int
    run_name: str

    def key(self) -> str:
        return f"{self.algorithm} on {self.dataset} seed {self.seed} ({self.run_name})"


def versions() -> dict[str, str]:
    """What a grid's workers must agree on: this package's version and the stack that makes the numbers."""
    return {"offline-mbrl": package_version(), **stack_versions()}


def record(run_dir: Path, results_root: Path) -> dict[str, Any]:
    """Everything a report needs of one finished run, as JSON values (a trial's user attributes)."""
    curve = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            row = json.loads(line)
            if "phase" not in row and "eval/score" in row:
                curve.append([int(row["step"]), float(row["eval/score"])])
    return {
        "final": json.loads((run_dir / "final.json").read_text()),
        "config": json.loads((run_dir / "config.json").read_text()),
        "curve": curve,
        "families": {p.stem: json.loads(p.read_text()) for p in sorted(run_dir.glob("family_*.json"))},
        "run_path": str(run_dir.relative_to(results_root)),
        "run_dir": f"{socket.gethostname()}:{run_dir.resolve()}",
        "versions": versions(),
    }


def materialise(rec: dict[str, Any], folder: Path) -> Path:
    """Write a recorded run's report files under `folder` (its path relative to the results root kept);
    replaced whole, through a staging folder."""
    out = folder / rec["run_path"]
    with atomic_path(out) as staging:
        staging.mkdir(parents=True)
        (staging / "final.json").write_text(json.dumps(rec["final"], indent=2))
        (staging / "config.json").write_text(json.dumps(rec["config"], indent=2))
        rows = [json.dumps({"step": step, "eval/score": score}) for step, score in rec["curve"]]
        (staging / "metrics.jsonl").write_text("".join(row + "\n" for row in rows))
        for name, content in rec["families"].items():
            (staging / f"{name}.json").write_text(json.dumps(content, indent=2))
    return out


def study_folder(results_root: Path, study: str) -> Path:
    """Where a study's records are materialised: hidden, so a plain `report results` does not count them
    twice."""
    return Path(results_root) / f".study-{study}"


@dataclass
class Outcome:
    """A cell's end in the study: its record, or why it failed."""

    record: dict[str, Any] | None = None
    error: str | None = None
    ran_here: bool = False


class Grid:
    """One worker's view of a grid study: identity checked, cells enqueued once, the claim loop."""

    def __init__(
        self,
        study: str,
        storage: str | None,
        cells: Sequence[GridCell],
        title: str,
        heartbeat: int = 60,
    ):
        if not cells:
            raise UserError("the grid has no cell to run (every cell failed to configure)")
        if heartbeat < 1:
            raise UserError(f"--heartbeat must be at least 1 second, got {heartbeat}")
        self.name, self.cells, self.heartbeat = study, list(cells), heartbeat
        self.storage, self.lock, self.where = open_storage(study, storage, heartbeat)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the grid's own lines say what happens
        with self.lock():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study = optuna.create_study(
                    study_name=study,
                    storage=self.storage,
                    sampler=optuna.samplers.RandomSampler(seed=0),  # never asked: every trial is enqueued
                    direction="maximize",
                    load_if_exists=True,
                )
            self._check_identity(title)
            self._enqueue()
        self.ran_here: set[int] = set()

    def _check_identity(self, title: str) -> None:
        have = self.study.user_attrs
        keys = [c.key() for c in self.cells]
        if not have:
            for key, value in {"grid": 1, "title": title, "cells": keys, "versions": versions()}.items():
                self.study.set_user_attr(key, value)
            return
        where = f"study '{self.name}' in {self.where}"
        if "grid" not in have:
            raise UserError(f"{where} is a sweep, not a grid: pick another --study")
        if have["cells"] != keys:
            theirs, mine = set(have["cells"]), set(keys)
            only_theirs, only_mine = sorted(theirs - mine), sorted(mine - theirs)
            what = []
            if only_theirs:
                what.append(f"{len(only_theirs)} cell(s) only in the study (first: {only_theirs[0]})")
            if only_mine:
                what.append(f"{len(only_mine)} cell(s) only in this command (first: {only_mine[0]})")
            if not what:
                what.append("the same cells in another order")
            raise UserError(
                f"{where} holds another grid (`{have['title']}`): {'; '.join(what)}; rerun "
                "its command or pick another --study"
            )
        differ = [f"{k} {v} (study: {have['versions'].get(k)})" for k, v in versions().items()
                  if have["versions"].get(k) != v]  # fmt: skip
        if differ:
            raise UserError(
                f"this worker's packages differ from {where}'s: {', '.join(differ)}; its numbers would not "
                "be comparable: install the study's versions"
            )

    def _enqueue(self) -> None:
        """One WAITING trial for every cell that is neither finished, waiting nor running: a new grid's
        cells, the rest of those a dying worker was enqueueing, and the cells that failed, which a worker
        joining tries again (as rerunning `compare` retries its failed cells; during a drain they stay
        failed)."""
        live = {
            t.params.get(CELL)
            for t in self.study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.WAITING, TrialState.RUNNING)
        }
        dist = IntDistribution(0, len(self.cells) - 1)
        for i in range(len(self.cells)):
            if i not in live:
                self.study.add_trial(
                    optuna.trial.create_trial(
                        state=TrialState.WAITING, params={CELL: i}, distributions={CELL: dist}
                    )
                )

    def outcomes(self) -> dict[int, Outcome | None]:
        """Each cell's end (None while it waits or runs)."""
        out: dict[int, Outcome | None] = {i: None for i in range(len(self.cells))}
        by_cell: dict[int, list[FrozenTrial]] = {}
        for t in self.study.get_trials(deepcopy=False):
            by_cell.setdefault(t.params[CELL], []).append(t)
        for i, trials in by_cell.items():
            complete = [t for t in trials if t.state == TrialState.COMPLETE]
            if complete:
                out[i] = Outcome(complete[0].user_attrs, ran_here=i in self.ran_here)
                continue
            if any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in trials):
                continue
            own = [t for t in trials if t.state == TrialState.FAIL and not t.user_attrs.get("retried")]
            if own and "fail_reason" in own[-1].user_attrs:
                out[i] = Outcome(error=own[-1].user_attrs["fail_reason"], ran_here=i in self.ran_here)
            else:  # every try's worker died, and the retries are used up
                out[i] = Outcome(error=f"its worker died {len(trials)} times (retried {MAX_RETRY} times)")
        return out

    def drain(
        self, run: Callable[[int], dict[str, Any]], log: Callable[[str], None] = print, poll: float = 5.0
    ) -> dict[int, Outcome]:
        """Claim and run cells until every cell of the grid has ended, here or elsewhere."""
        waited = False
        while True:
            with self.lock():
                fail_stale(self.study)
                trial = self._claim()
            if trial is not None:
                waited = False
                self._run(trial, run, log)
                continue
            ended = self.outcomes()
            if all(o is not None for o in ended.values()):
                return {i: o for i, o in ended.items() if o is not None}
            if not waited:
                running = sum(o is None for o in ended.values())
                log(f"grid {self.name}: {running} cell(s) running on other workers; waiting for them to end")
                waited = True
            time.sleep(min(poll, self.heartbeat))

    def _claim(self) -> optuna.Trial | None:
        if not any(t.state == TrialState.WAITING for t in self.study.get_trials(deepcopy=False)):
            return None
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize"
            warnings.simplefilter("ignore")
            trial = self.study.ask()  # pops the oldest waiting trial, its cell fixed
        self.storage.record_heartbeat(trial._trial_id)  # stale if killed before the thread starts
        return trial

    def _run(self, trial: optuna.Trial, run: Callable[[int], dict[str, Any]], log: Callable[[str], None]):
        index = int(trial.params[CELL])
        cell = self.cells[index]

        def call() -> float:
            log(f"grid {self.name}: cell {index + 1}/{len(self.cells)}: {cell.key()} (trial {trial.number})")
            try:
                rec = run(index)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                log(f"  failed: {first}")
                raise
            for key, item in rec.items():
                trial.set_user_attr(key, item)
            score = rec["final"].get("normalized_score")
            return float(rec["final"]["return_mean"] if score is None else score)

        self.ran_here.add(index)

        def stopped(fault) -> str:
            return f"cell {cell.key()} stopped this worker: {fault}; fix it and rerun the same command"

        run_trial(self.study, self.storage, trial, self.heartbeat, call, stopped)


def load_grid(study: str, storage: str | None) -> tuple[optuna.Study, str]:
    """An existing grid study and its printable location; a sweep's study or a missing one is refused."""
    opened, _, where = open_storage(study, storage, create=False)
    try:
        loaded = optuna.load_study(study_name=study, storage=opened)
    except KeyError:
        raise UserError(f"no study '{study}' in {where}") from None
    if "grid" not in loaded.user_attrs:
        raise UserError(f"study '{study}' in {where} is a sweep, not a grid: use `offline-mbrl sweep report`")
    return loaded, where


def grid_records(study: optuna.Study) -> tuple[list[dict[str, Any]], list[str]]:
    """The records of the finished cells (in cell order) and the keys of those without one."""
    by_cell: dict[int, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE and CELL in t.params:
            by_cell.setdefault(int(t.params[CELL]), t.user_attrs)
    keys = study.user_attrs["cells"]
    missing = [key for i, key in enumerate(keys) if i not in by_cell]
    return [by_cell[i] for i in sorted(by_cell)], missing
