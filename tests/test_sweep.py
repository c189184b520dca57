"""Sweeps: real Optuna studies of tiny runs. Space validation, the objective, failures, pruning, resume,
study identity, samplers, show/export, the shared dynamics cache, storage errors, local parallel workers,
and a SIGKILL'd worker's trial failed by its missing heartbeat and retried."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import typer
from optuna.trial import TrialState
from typer.testing import CliRunner

from offline_mbrl.cli.sweep import sweep_app
from offline_mbrl.core.cache import list_artefacts
from offline_mbrl.core.errors import UserError
from offline_mbrl.launch import build_config
from offline_mbrl.learning.run import Run
from offline_mbrl.sweep.results import load_study
from offline_mbrl.sweep.space import find_space, load_space, validate
from offline_mbrl.sweep.storage import fail_stale, open_storage
from offline_mbrl.sweep.study import Sweep, SweepSpec, run_sweep

from .conftest import synthetic_episode, write_minari

ROOT = Path(__file__).resolve().parents[1]  # the checkout the tests run in

DS = "test/pendulum/tiny-v0"
DS2 = "test/pendulum/tiny2-v0"
TINY = (
    "eval_every=20",
    "log_every=10",
    "checkpoint_every=20",
    "eval_episodes=1",
    "final_eval_episodes=1",
    "dynamics.hidden=16,16",
    "dynamics.weight_decay=1e-5,1e-5,1e-5",
    "dynamics.max_epochs=2",
    "algo.rollout_batch=32",
    "algo.rollout_every=20",
    "algo.sac.actor_hidden=32,32",
    "algo.sac.critic_hidden=32,32",
)
HORIZON = '"algo.horizon" = { type = "int", low = 1, high = 3 }\n'


def write_dataset(dataset_id: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    episodes = [synthetic_episode(rng, 3, 1, 100, "trunc") for _ in range(4)]
    for obs, *_ in episodes:
        obs[:, :2] /= np.linalg.norm(obs[:, :2], axis=1, keepdims=True)  # (cos, sin) on the circle
    write_minari(
        dataset_id,
        "Pendulum-v1",
        episodes,
        eval_env="Pendulum-v1",
        ref_min_score=-1500.0,
        ref_max_score=-100.0,
    )


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A project root of its own (sweeps/ with the shipped spaces) and a tiny dataset with references."""
    sweeps = tmp_path / "root" / "sweeps"
    sweeps.mkdir(parents=True)
    for space in (ROOT / "sweeps").glob("*.toml"):
        shutil.copy(space, sweeps)
    monkeypatch.setenv("OFFLINE_MBRL_ROOT", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)
    write_dataset(DS, 0)
    return tmp_path / "root"


def space(root: Path, name: str, params: str, algorithm: str = "mbpo", extra: str = "") -> str:
    (root / "sweeps" / f"{name}.toml").write_text(f'algorithm = "{algorithm}"\n{extra}\n[params]\n{params}')
    return name


def spec(**kw) -> SweepSpec:
    base = dict(
        algo="mbpo",
        datasets=(DS,),
        trials=2,
        steps=40,
        sampler="random",
        pruner="none",
        overrides=TINY,
        results="results",
        heartbeat=1,
        seed=0,
    )
    return SweepSpec(**{**base, **kw})


def by_number(study: optuna.Study) -> dict[int, optuna.trial.FrozenTrial]:
    return {t.number: t for t in study.get_trials()}


# --- search spaces --------------------------------------------------------------------------------------
def test_shipped_spaces_validate_and_map_elites_as_a_fraction():
    shipped = sorted((ROOT / "sweeps").glob("*.toml"))
    assert {"ravl", "mopo", "mbpo", "mopo-penalty", "mobile", "combo", "morec-mopo", "morec-mobile"} <= {
        path.stem for path in shipped
    }
    for path in shipped:
        space = load_space(path)
        assert validate(space, space.algorithm, "hopper-medium", None, []) is not None, path
    penalty = load_space(find_space("mopo-penalty", "mopo"))
    assert not any(p.key.startswith("dynamics.") for p in penalty.params)  # one dynamics fit per sweep
    mopo = load_space(find_space("mopo", "mopo"))
    assert {p.key for p in mopo.params} == {
        "algo.penalty",
        "algo.penalty_coef",
        "algo.horizon",
        "dynamics.members",
        "dynamics.elites_fraction",
    }
    assert next(p for p in mopo.params if p.key == "algo.penalty_coef").log
    base = build_config("mopo", "hopper-medium")
    values = {"algo.penalty": "llv", "algo.penalty_coef": 1.0, "algo.horizon": 5, "dynamics.members": 10}
    assert "dynamics.elites=3" in mopo.overrides({**values, "dynamics.elites_fraction": 0.34}, base)
    assert "dynamics.elites=1" in mopo.overrides({**values, "dynamics.elites_fraction": 0.01}, base)
    assert "dynamics.elites=2" in mopo.overrides({"dynamics.elites_fraction": 0.3}, base)  # default 7 members
    ravl = {p.key for p in load_space(find_space(None, "ravl")).params}
    assert ravl == {"algo.eta", "algo.sac.critics", "algo.horizon", "algo.real_ratio"}


@pytest.mark.parametrize(
    "params, extra, message",
    [
        (
            '"algo.horizn" = { type = "int", low = 1, high = 3 }',
            "",
            "unknown key 'algo.horizn'.*algo.horizon",
        ),
        ('"algo.horizon" = { type = "int", low = 3, high = 3 }', "", r"empty range \[3, 3\]"),
        ('"algo.real_ratio" = { type = "float", low = 0.5, high = 0.1 }', "", "empty range"),
        ('"algo.horizon" = { type = "categorical", choices = [] }', "", "empty range: choices"),
        ('"algo.horizon" = { type = "float", low = 1.0, high = 3.0 }', "", "is typed int, not float"),
        ('"algo.sac.actor_hidden" = { type = "int", low = 1, high = 3 }', "", "not a number"),
        ('"algo.horizon" = { type = "int", low = 1.5, high = 3 }', "", "must be integers"),
        ('"algo.sac.critic_lr" = { type = "float", low = 0.0, high = 1.0, log = true }', "", "log range"),
        ('"algo.horizon" = { type = "int", low = 1, high = 3, hi = 2 }', "", "unknown field.*hi"),
        ('"algo.sac.auto_alpha" = { type = "categorical", choices = ["maybe"] }', "", "not a valid bool"),
        ('"seed" = { type = "int", low = 0, high = 3 }', "", "set by the sweep itself"),
        ('"dynamics.members" = { type = "int", low = 2, high = 4 }', "", "lowest values.*elites"),
        (
            '"algo.horizon" = { type = "int", low = -3, high = 5 }',
            "",
            "lowest values.*horizon",
        ),
        (
            '"algo.real_ratio" = { type = "float", low = 0.1, high = 1.5 }',
            "",
            "highest values.*real_ratio",
        ),
        ('"dynamics.elites_fraction" = { type = "float", low = 0.5, high = 2.0 }', "", "is a fraction"),
        ("", "", r"\[params\] is empty"),
        (HORIZON, "colour = 1", "unknown field"),
        (HORIZON, '[fixed]\n"algo.horizn" = 2', r"\[fixed\] or --set: unknown config key 'algo.horizn'"),
        ("algo.horizon = [", "", "cannot read search space"),
    ],
)
def test_bad_space_files_are_refused_before_any_trial(root, params, extra, message):
    path = root / "sweeps" / f"{space(root, 'bad', params, extra=extra)}.toml"
    with pytest.raises(UserError, match=message):
        validate(load_space(path), "mbpo", DS, 40, [])


def test_space_for_another_algorithm_and_set_clashing_with_a_searched_key_are_refused(root):
    with pytest.raises(UserError, match="a search space for 'ravl', not 'mbpo'"):
        validate(load_space(root / "sweeps" / "ravl.toml"), "mbpo", DS, 40, [])
    with pytest.raises(UserError, match="--set algo.horizon: searched by"):
        validate(load_space(root / "sweeps" / "mbpo.toml"), "mbpo", DS, 40, ["algo.horizon=2"])
    with pytest.raises(
        UserError,
        match="no search space .nope..*combo, mbpo, mbrcsl, mobile, mopo, mopo-penalty, morec-mobile, "
        "morec-mopo, ravl",
    ):
        find_space("nope", "mbpo")


# --- the objective ----------------------------------------------------------------------------------
def test_objective_is_the_mean_over_seeds_and_datasets_or_their_iqm(root):
    write_dataset(DS2, 1)
    sweep = run_sweep(spec(datasets=(DS, DS2), seeds=2, trials=1), progress=False)
    trial = sweep.study.get_trials()[0]
    finals = [json.loads((Path(r) / "final.json").read_text()) for r in trial.user_attrs["runs"]]
    assert [(f["seed"], f["dataset"]) for f in finals] == [(0, DS), (0, DS2), (1, DS), (1, DS2)]
    scores = [f["normalized_score"] for f in finals]
    assert trial.user_attrs["scores"] == scores and trial.value == pytest.approx(np.mean(scores))
    # each seed's evaluation (step 20 of 40) at its run's position, its final score at the run's end: the
    # seeds of one dataset train as one batch, and their reports keep the positions of one-by-one runs
    assert sorted(trial.intermediate_values) == [20, 40, 60, 80, 100, 120, 140]
    assert trial.intermediate_values[80] == scores[1] and trial.intermediate_values[40] == scores[0]
    iqm = run_sweep(spec(datasets=(DS, DS2), seeds=2, trials=1, objective="iqm", study="iqm"), progress=False)
    same = iqm.study.get_trials()[0]
    assert same.params == trial.params and same.user_attrs["runs"] == trial.user_attrs["runs"]  # reused runs
    assert same.value == pytest.approx(np.mean(sorted(scores)[1:3]))


def test_a_diverging_trial_is_recorded_failed_with_its_reason_and_the_sweep_goes_on(root):
    name = space(root, "lr", '"algo.sac.critic_lr" = { type = "categorical", choices = [3e-4, 10.0] }')
    sweep = Sweep(spec(space=name))
    sweep.study.enqueue_trial({"algo.sac.critic_lr": 10.0})
    sweep.study.enqueue_trial({"algo.sac.critic_lr": 3e-4})
    assert sweep.work() == 2
    trials = by_number(sweep.study)
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"].startswith("training diverged near step 10")
    assert trials[1].state == TrialState.COMPLETE and sweep.tally() == (2, 0)  # a config's failure counts


def test_a_trial_that_raises_is_failed_with_the_exception_and_its_traceback(root, monkeypatch):
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory\nmore detail")
        return [{"normalized_score": 1.0, "return_mean": -1.0}] * len(args[0])

    monkeypatch.setattr("offline_mbrl.sweep.study.execute_seeds", broken)
    sweep = run_sweep(spec(), progress=False)
    trials = by_number(sweep.study)
    assert trials[0].state == TrialState.FAIL
    assert trials[0].user_attrs["fail_reason"] == "RuntimeError: CUDA out of memory"
    assert "Traceback" in trials[0].user_attrs["traceback"] and trials[1].value == 1.0


def test_a_pruned_trial_stops_its_run_at_the_evaluation(root):
    sweep = run_sweep(spec(trials=1), pruner=optuna.pruners.ThresholdPruner(lower=1e9), progress=False)
    trial = sweep.study.get_trials()[0]
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [20]
    assert trial.user_attrs["prune_reason"].startswith(f"pruned at {DS} seed 0 step 20")
    run = next((Path("results") / "mbpo").rglob("metrics.jsonl")).parent
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert not (run / "final.json").exists() and json.loads(rows[-1])["step"] == 20
    assert sweep.tally() == (1, 0)  # a pruned trial counts


def test_median_and_hyperband_pruners_are_built_from_the_steps():
    from offline_mbrl.sweep.study import make_pruner

    assert isinstance(make_pruner("median", 1000, 3), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("hyperband", 1000, 3), optuna.pruners.HyperbandPruner)
    assert isinstance(make_pruner("none", 1000, 3), optuna.pruners.NopPruner)


@pytest.mark.parametrize("sampler", ["tpe", "gp", "random", "cmaes"])
def test_every_sampler_runs_a_small_study(root, sampler):
    name = space(root, "two", HORIZON + '"algo.real_ratio" = { type = "float", low = 0.05, high = 0.5 }\n')
    sweep = run_sweep(spec(space=name, sampler=sampler, trials=3, startup_trials=1), progress=False)
    kinds = {"tpe": "TPESampler", "gp": "GPSampler", "random": "RandomSampler", "cmaes": "CmaEsSampler"}
    assert type(sweep.study.sampler).__name__ == kinds[sampler]
    assert [t.state for t in sweep.study.get_trials()] == [TrialState.COMPLETE] * 3


def test_threads_option_sets_torch_threads_for_the_trials_and_restores_them(root, monkeypatch):
    import torch

    seen = []
    real_work = Sweep.work
    monkeypatch.setattr(
        Sweep, "work", lambda self, **k: seen.append(torch.get_num_threads()) or real_work(self, **k)
    )
    before = torch.get_num_threads()
    run_sweep(spec(trials=1), progress=False, threads=before + 1)
    assert seen == [before + 1] and torch.get_num_threads() == before
    with pytest.raises(UserError, match="--threads must be at least 1"):
        run_sweep(spec(trials=1), progress=False, threads=0)


# --- resume, identity, faults -----------------------------------------------------------------------
def test_rerunning_continues_the_study_and_an_interrupted_trial_is_retried_reusing_its_finished_runs(
    root, monkeypatch
):
    assert run_sweep(spec(trials=2), progress=False).tally() == (2, 0)
    again = run_sweep(spec(trials=2), progress=False)  # the same command: nothing left to do
    assert len(again.study.get_trials()) == 2
    original = Run._flush

    def interrupted(self, step, extra=None, where=None):
        if self.cfg.seed == 1 and step == 30:
            raise KeyboardInterrupt
        return original(self, step, extra, where)

    monkeypatch.setattr(Run, "_flush", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec(trials=3, seeds=2, study="resume"), progress=False)
    monkeypatch.setattr(Run, "_flush", original)
    stopped, waiting = by_number(load_study("resume")).values()
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["fail_reason"].startswith("interrupted")
    assert waiting.state == TrialState.WAITING and waiting.params == stopped.params
    seed0 = Path(stopped.user_attrs["runs"][0]) / "final.json"
    stamp = seed0.stat().st_mtime_ns
    sweep = run_sweep(spec(trials=3, seeds=2, study="resume"), progress=False)
    trials = by_number(sweep.study)
    assert trials[1].system_attrs["retry_of"] == 0 and trials[1].params == stopped.params
    assert "fail_reason" not in trials[1].user_attrs and trials[1].state == TrialState.COMPLETE
    assert seed0.stat().st_mtime_ns == stamp  # the retried trial reused the run that had finished
    assert sweep.tally() == (3, 0) and len(trials) == 4  # the interrupted trial does not count


def test_a_study_created_for_another_algorithm_or_objective_is_refused(root):
    run_sweep(spec(trials=1, study="s"), progress=False)
    with pytest.raises(UserError, match=r"objective 'mean' \(asked: 'iqm'\)"):
        Sweep(spec(trials=1, study="s", objective="iqm"))
    with pytest.raises(UserError, match=r"algorithm 'mbpo' \(asked: 'ravl'\).*pick another --study"):
        Sweep(spec(algo="ravl", trials=1, study="s"))
    with pytest.raises(UserError, match=r"seeds 1 \(asked: 2\)"):
        Sweep(spec(trials=1, study="s", seeds=2))
    with pytest.raises(UserError, match=r"another search space or --set \(its: .*mbpo.toml, --set \["):
        Sweep(spec(trials=1, study="s", overrides=(*TINY, "algo.batch_size=64")))


def test_dynamics_are_fitted_once_per_seed_and_shared_between_trials_with_equal_dynamics(root):
    run_sweep(spec(trials=3, seeds=2), progress=False)
    assert len(list_artefacts("dynamics")) == 2  # 3 trials x 2 seeds, one fit per seed
    name = space(root, "members", '"dynamics.members" = { type = "categorical", choices = [7, 6] }\n')
    sweep = Sweep(spec(space=name, trials=3))
    for members in (7, 6, 6):
        sweep.study.enqueue_trial({"dynamics.members": members})
    sweep.work()
    assert (
        len(list_artefacts("dynamics")) == 3
    )  # 7 members (the default) reuses the seed-0 fit; 6 members is fitted once


def test_unreachable_or_unsupported_storage_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match=r"cannot reach storage postgresql://bob:\*\*\*@127.0.0.1:1/db"):
        open_storage("s", "postgresql://bob:secret@127.0.0.1:1/db")
    with pytest.raises(UserError, match="unsupported storage 'redis://h'"):
        open_storage("s", "redis://h")
    with pytest.raises(UserError, match="folder .*missing does not exist"):
        open_storage("s", str(tmp_path / "missing" / "journal.log"))
    with pytest.raises(UserError, match="no study at"):
        load_study("never-created", str(tmp_path / "journal.log"))


# --- the command line -----------------------------------------------------------------------------------
def cli(*args: str):
    app = typer.Typer()
    app.add_typer(sweep_app, name="sweep")
    return CliRunner().invoke(app, ["sweep", *args])


def test_cli_runs_shows_and_exports_a_study(root, tmp_path):
    sets = [x for s in TINY for x in ("--set", s)]
    # a repeated --dataset (it hung: its run folder locked twice in one process) or --set counts once
    twice = ("--dataset", DS, "--set", TINY[0])
    base = ("--algo", "mbpo", "--dataset", DS, "--trials", "2", "--steps", "40", "--sampler", "random")
    run = cli(*base, *twice, *sets)
    assert run.exit_code == 0, run.output
    assert f"note: --dataset '{DS}' given twice: it counts once" in run.output
    assert f"note: --set {TINY[0]} given twice: it counts once" in run.output
    name = "mbpo-test_pendulum_tiny-v0"
    assert f"study {name}" in run.output and (root.parent / "sweeps" / name / "journal.log").exists()
    clash = cli("--algo", "mbpo", "--dataset", DS, "--set", "algo.horizon=2", "--set", "algo.horizon=3")
    assert "--set algo.horizon is given twice ('2' and '3')" in str(clash.exception)
    shown = cli("show", name)
    assert shown.exit_code == 0, shown.output
    for fragment in (
        "best: trial",
        "offline-mbrl train --algo mbpo",
        "algo.horizon",
        "parameter importances",
    ):
        assert fragment in shown.output
    exported = cli("export", name, "--results", str(tmp_path / "out"))
    assert exported.exit_code == 0, exported.output
    out = tmp_path / "out" / "sweeps" / name
    csv, parquet = pd.read_csv(out / "trials.csv"), pd.read_parquet(out / "trials.parquet")
    assert list(csv["number"]) == list(parquet["number"]) == [0, 1]
    columns = {"state", "value", "algo.horizon", "algo.real_ratio", "reason", "worker", "overrides", "runs"}
    assert columns <= set(parquet.columns)
    best = parquet.loc[parquet["value"].idxmax()]
    cfg = build_config("mbpo", DS, seed=3, config_file=out / "best_config.json")
    assert cfg.algo.horizon == best["algo.horizon"] and cfg.algo.real_ratio == best["algo.real_ratio"]
    assert cfg.steps == 40 and cfg.dynamics_seed == 3 and cfg.dynamics.hidden == (16, 16)
    bad = cli("--algo", "mbpo", "--dataset", DS, "--sampler", "annealing")
    assert isinstance(bad.exception, UserError) and "unknown sampler 'annealing'" in str(bad.exception)
    assert isinstance(cli("show", "nope").exception, UserError)
    assert cli().exit_code == 0 and "show" in cli().output  # no options: the help


def test_cli_module_prints_one_line_errors(root):
    args = [sys.executable, "-m", "offline_mbrl.cli.sweep", "--algo", "mbpo", "--dataset", "pendulum-expert"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: dataset 'pendulum-expert' is not present: make it with")


def test_a_half_written_journal_is_refused_then_repaired_and_the_sweep_continues_whole(root):
    """A worker killed mid-line left a partial last line: `sweep show` said nothing and continuing appended
    to the partial line, after which the study could not be read. Now every command refuses it in one
    line, `sweep repair` moves the half line aside, and the continued sweep keeps every trial."""
    run_sweep(spec(trials=1, study="cut"), progress=False)
    journal = root.parent / "sweeps" / "cut" / "journal.log"
    whole = journal.read_bytes()
    damaged = whole + b'{"op_code":8,"worker_id":"x","trial_id":0,"user_at'
    journal.write_bytes(damaged)
    for attempt in (
        lambda: run_sweep(spec(trials=2, study="cut"), progress=False),
        lambda: load_study("cut"),
    ):
        with pytest.raises(
            UserError, match=r"line \d+ of \d+ is half-written.*`offline-mbrl sweep repair cut`"
        ):
            attempt()
    assert journal.read_bytes() == damaged  # refused before writing
    repaired = cli("repair", "cut")
    assert repaired.exit_code == 0 and "moved lines" in repaired.output, repaired.output
    assert journal.read_bytes() == whole
    (side,) = journal.parent.glob("journal.log.damaged-*")
    assert side.read_bytes().startswith(b'{"op_code":8')
    sweep = run_sweep(spec(trials=2, study="cut"), progress=False)
    assert [t.state for t in sweep.study.get_trials()] == [TrialState.COMPLETE] * 2
    assert journal.read_bytes().startswith(whole) and load_study("cut").trials[0].value is not None


# --- parallel workers and faults ----------------------------------------------------------------------
def test_two_local_worker_processes_record_every_trial_exactly_once(root):
    s = spec(trials=6, study="par")
    sweep, outcome = Sweep(s), []
    claim = root.parent / "sweeps" / "par" / "journal.log.claim"
    with sweep.lock():  # hold the claim lock until both workers wait on it: then they race for every trial
        thread = threading.Thread(target=lambda: outcome.append(_quietly(run_sweep, s, workers=2)))
        thread.start()
        deadline = time.time() + 120
        while _flock_waiters(claim) < 2:
            assert thread.is_alive() and time.time() < deadline, f"workers never queued: {outcome}"
            time.sleep(0.2)
    thread.join(timeout=300)
    assert isinstance(outcome[0], Sweep), outcome
    trials = sweep.study.get_trials()
    assert sorted(t.number for t in trials) == list(range(6))  # exactly the 6 asked, each once
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert len({tuple(t.params.values()) for t in trials}) == 6  # seeded workers get seeds of their own
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2 and str(os.getpid()) not in str(workers)  # two processes, not this one


def _quietly(fn, *args, **kwargs):
    try:
        return fn(*args, progress=False, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - reported by the test's assertion
        return exc


def _flock_waiters(path: Path) -> int:
    """Processes blocked on an flock of `path` (Linux lists them in /proc/locks with `->`)."""
    if not path.exists():
        return 0
    ino = os.stat(path).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum("->" in line and line.split()[-3].endswith(f":{ino}") for line in lines)


def hanging_sweep(root: Path, storage: str | None, study: str) -> tuple[SweepSpec, Sweep]:
    """A study whose trial 0 is quick and trial 1 fits dynamics for ever (until its worker is killed)."""
    name = space(root, "hang", '"dynamics.max_epochs" = { type = "categorical", choices = [2, 1000000] }\n')
    fast = tuple(o for o in TINY if not o.startswith("dynamics.max_epochs"))
    s = spec(
        space=name, storage=storage, study=study, trials=3, overrides=(*fast, "dynamics.patience=1000000")
    )
    sweep = Sweep(s)
    sweep.study.enqueue_trial({"dynamics.max_epochs": 2})
    sweep.study.enqueue_trial({"dynamics.max_epochs": 1000000})
    return s, sweep


def start_worker(s: SweepSpec) -> subprocess.Popen:
    args = ["--algo", s.algo, "--dataset", s.datasets[0], "--trials", str(s.trials), "--steps", str(s.steps)]
    args += ["--space", s.space, "--study", s.study, "--heartbeat", str(s.heartbeat), "--sampler", "random"]
    args += ["--pruner", "none", *(x for o in s.overrides for x in ("--set", o))]
    args += ["--storage", s.storage] if s.storage else []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread, as in this process (conftest)
    cmd = [sys.executable, "-m", "offline_mbrl.cli.sweep", *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)


def kill_during_trial_1_and_check_it_is_failed_then_retried(s: SweepSpec, sweep: Sweep) -> None:
    worker = start_worker(s)
    try:
        deadline = time.time() + 120
        while (trial := by_number(sweep.study)[1]).state != TrialState.RUNNING:
            assert worker.poll() is None and time.time() < deadline, "the worker never started trial 1"
            time.sleep(0.3)
        time.sleep(1.5)  # well into its endless dynamics fit, past a heartbeat
        trial = by_number(sweep.study)[1]  # re-read: the snapshot above can predate the worker's tag
        assert trial.user_attrs["worker"].endswith(f":{worker.pid}")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
    finally:
        if worker.poll() is None:
            worker.kill()
    trials = by_number(sweep.study)
    assert trials[0].state == TrialState.COMPLETE and trials[1].state == TrialState.RUNNING
    fail_stale(sweep.study)
    assert by_number(sweep.study)[1].state == TrialState.RUNNING  # within the grace period: still alive
    time.sleep(2 * s.heartbeat + 1.5)
    fail_stale(sweep.study)
    trials = by_number(sweep.study)
    assert trials[0].state == TrialState.COMPLETE  # no completed trial is lost
    assert trials[1].state == TrialState.FAIL and "fail_reason" not in trials[1].user_attrs
    retry = trials[2]
    assert retry.state == TrialState.WAITING and retry.system_attrs["retry_of"] == 1
    assert retry.params == {"dynamics.max_epochs": 1000000}
    assert sweep.tally() == (1, 0)  # the lost trial does not use up one of the study's trials


def test_a_worker_killed_mid_trial_leaves_it_failed_by_heartbeat_and_retried(root):
    s, sweep = hanging_sweep(root, None, "killed")
    kill_during_trial_1_and_check_it_is_failed_then_retried(s, sweep)


def test_optuna_dashboard_serves_the_local_study(root, tmp_path):
    pytest.importorskip("optuna_dashboard")
    run_sweep(spec(trials=1, study="dash"), progress=False)
    port, journal = _free_port(), root.parent / "sweeps" / "dash" / "journal.log"
    exe = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen(
        [str(exe), str(journal), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as reply:
                    studies = json.loads(reply.read())["study_summaries"]
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "optuna-dashboard did not start"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies] == ["dash"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_resumed_seeded_sweep_does_not_propose_an_already_run_configuration(root):
    name = space(root, "wide", '"algo.real_ratio" = { type = "float", low = 0.05, high = 0.5 }\n')
    first = run_sweep(spec(space=name, trials=2, seed=5), progress=False)
    before = [t.params for t in by_number(first.study).values()]
    again = run_sweep(spec(space=name, trials=4, seed=5), progress=False)  # the same command, resumed
    after = [t.params for t in by_number(again.study).values()]
    assert after[:2] == before and len(after) == 4
    assert not any(p in before for p in after[2:]), after
    # and a fresh study with the same seed still reproduces the first proposals
    fresh = run_sweep(spec(space=name, trials=2, seed=5, study="fresh"), progress=False)
    assert [t.params for t in by_number(fresh.study).values()] == before


def test_an_environment_failure_stops_the_sweep_without_using_up_its_trials(root, tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="no CUDA device"):  # before any trial or study file
        run_sweep(spec(device="cuda", study="gpu"), progress=False)
    cache = os.environ["OFFLINE_MBRL_CACHE"]
    (tmp_path / "not-a-folder").write_text("x")
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(tmp_path / "not-a-folder"))  # every trial would fail
    with pytest.raises(
        UserError, match="trial 0 stopped the sweep: the artefact cache .*no trial was used up"
    ):
        run_sweep(spec(trials=3), progress=False)
    sweep = Sweep(spec(trials=3))
    assert sweep.tally() == (0, 0)  # nothing counted: the study is not spent
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", cache)  # fixed: the same command runs all three
    again = run_sweep(spec(trials=3), progress=False)
    finished = [t for t in again.study.get_trials() if t.state == TrialState.COMPLETE]
    assert len(finished) == 3 and finished[0].system_attrs.get("retry_of") == 0


def test_cli_budget_applies_the_compare_budget_and_the_plan_is_printed_first(root):
    sets = [x for s in TINY for x in ("--set", s)]
    run = cli(
        "--algo", "mbpo", "--dataset", DS, "--trials", "1", "--steps", "40", "--sampler", "random",
        "--budget", "smoke", *sets,
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    text = " ".join(run.output.split())  # the console may wrap the line
    assert text.startswith("plan: 1 of 1 trials to run (0 done) x 1 seed(s) x 1 dataset(s) = 1 runs of 40")
    assert "device cpu" in text and "journal.log" in text
    trial = load_study(
        "mbpo-test_pendulum_tiny-v0",
        str(root.parent / "sweeps" / "mbpo-test_pendulum_tiny-v0" / "journal.log"),
    ).trials[0]
    # the smoke budget's settings, but not the keys the mbpo space searches (horizon, real ratio)
    assert "dynamics.max_epochs=2" in trial.user_attrs["overrides"]
    assert "algo.rollout_batch=1000" in trial.user_attrs["overrides"]
    bad = cli("--algo", "mbpo", "--dataset", DS, "--budget", "huge")
    assert isinstance(bad.exception, UserError) and "unknown --budget 'huge'" in str(bad.exception)


def test_without_a_terminal_the_current_trial_shows_plain_progress_lines_and_a_measured_estimate(
    root, monkeypatch
):
    import io

    from rich.console import Console

    from offline_mbrl.sweep import study as study_module

    monkeypatch.setenv("OFFLINE_MBRL_PROGRESS_SECONDS", "0.001")  # a line at every report
    monkeypatch.setattr(study_module._TrialWatch, "WARM_UP", 0.0)
    out = io.StringIO()
    console = Console(file=out, width=200)  # a file: not a terminal, as under nohup or in CI
    run_sweep(spec(trials=1, steps=60), console=console)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("plan: 1 of 1 trials")
    where = f"trial 0 run 1/1 ({DS} seed 0)"
    # the dynamics fit's epochs, then the gradient steps with the last evaluation, then the estimate
    assert f"{where}: dynamics 1/2, holdout MSE" in out.getvalue()
    assert f"{where}: train 10/60" in out.getvalue() and f"{where}: train 40/60, score" in out.getvalue()
    estimate = next(line for line in lines if line.startswith("estimate after a"))
    # at the default 30 s cadence, each new stage still gets its first line at once (within seconds)
    monkeypatch.setenv("OFFLINE_MBRL_PROGRESS_SECONDS", "3600")
    hourly = io.StringIO()
    run_sweep(spec(trials=2, steps=60), console=Console(file=hourly, width=200))
    stages = [line for line in hourly.getvalue().splitlines() if line.startswith("trial 1 run 1/1")]
    assert [line.split(": ")[1].split(" ")[0] for line in stages] == ["train"]  # dynamics cached by trial 0
    assert (
        "gradient steps/s" in estimate
        and "per trial of 1 run(s)" in estimate
        and "for the 1 trial(s) left" in estimate
    )
    assert lines.index(estimate) < next(
        i for i, line in enumerate(lines) if line.startswith("trial 0 complete")
    )


def test_the_tuning_budget_curve_is_the_exact_expected_best_of_n_trials():
    from offline_mbrl.sweep.report import tuning_curve

    curve = tuning_curve([3.0, 1.0, 2.0])
    assert curve["trials"].tolist() == [1, 2, 3]
    assert curve["expected_best"].tolist() == pytest.approx([2.0, 22 / 9, 1 / 27 + 2 * 7 / 27 + 3 * 19 / 27])
    # what a bootstrap over the trials converges to
    values = np.random.default_rng(0).normal(size=12)
    draws = np.random.default_rng(1).choice(values, size=(200_000, 5)).max(axis=1)
    row = tuning_curve(values).iloc[4]
    assert row["expected_best"] == pytest.approx(draws.mean(), abs=0.01)
    assert row["low"] == pytest.approx(np.quantile(draws, 0.025), abs=1e-9 + 0.3)
    assert row["low"] <= row["expected_best"] <= row["high"] == values.max()


def test_sweep_report_shows_trials_best_importances_and_what_tuning_bought(root, tmp_path):
    run_sweep(
        spec(trials=3, steps=20, overrides=(*TINY, "eval_every=10", "checkpoint_every=10")), progress=False
    )
    out = tmp_path / "reports" / "sweep"
    result = cli("report", "mbpo-test_pendulum_tiny-v0", "--out", str(out))
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    for part in (
        "## Best trial",
        "## What tuning bought",
        "## Parameter importances",
        "## Trials",
        "Train it:",
    ):
        assert part in md
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) == {"COMPLETE"}
    curve = pd.read_csv(out / "tuning_curve.csv")
    assert curve["expected_best"].iloc[0] == pytest.approx(trials["value"].mean())
    assert (
        curve["expected_best"].is_monotonic_increasing and (out / "figures" / "tuning-budget.png").is_file()
    )
    assert (out / ".offline-mbrl-report").is_file()
    # every trial's learning curve, labelled by its trial number: evaluations at 10 and the final at 20
    from offline_mbrl.sweep.report import trial_curves

    curves = trial_curves(load_study("mbpo-test_pendulum_tiny-v0"))
    assert sorted(curves["trial"].unique()) == [0, 1, 2]
    assert curves.groupby("trial")["step"].apply(sorted).tolist() == [[10, 20]] * 3
    assert "## Learning curves of the trials" in md and "2 evaluations per run" in md
    assert "sampler random" in md
    assert (out / "figures" / "trials.png").is_file()
    # a generic report of the same results names each trial's runs by its trial number, settings in the legend
    from offline_mbrl.report.build import make_report
    from offline_mbrl.report.curves import short_labels
    from offline_mbrl.report.table import load_results

    table = load_results([Path("results")])
    methods = sorted(set(table["method"]))
    assert [m.split(":")[0] for m in methods] == ["mbpo[trial 0", "mbpo[trial 1", "mbpo[trial 2"]
    assert sorted(short_labels(methods).values()) == ["mbpo trial 0", "mbpo trial 1", "mbpo trial 2"]
    generic = tmp_path / "reports" / "generic"
    make_report([Path("results")], generic, reps=200, progress=False)
    md = (generic / "report.md").read_text()
    assert "| mbpo trial 1 | mbpo[trial 1: " in md and "mbpo (A)" not in md
