"""Optuna sweeps: a study of `train` runs over a search space, in a local file or a shared PostgreSQL.

A trial is one `train` run per (seed, dataset), each built by `launch.build_config` from the trial's
`--set` overrides and run by `launch.execute`: its runs land in results/ like any other, a finished run
is reused and never redone, and the dynamics cache is shared (one fit per dataset, dynamics settings and
seed, whatever the number of trials). The objective is the mean (or IQM) over those runs of the final
evaluation's normalised score (the raw return where a dataset has no reference returns). Periodic
evaluations are reported to the pruner at step `run_index * steps + step`, so trials compare at equal
positions. A trial that diverges or raises is recorded FAIL with its reason and the sweep goes on.

`--trials N` is the study's total, not each worker's: every worker (the processes of `--workers`, or the
same command on other machines) claims trials until N count (complete, pruned, or failed by their own
config), counting and creating each trial under one lock so that N is exact. Workers record heartbeats;
a trial stopped by Ctrl-C, or whose worker was killed, is retried with the same parameters, reusing its
finished runs. Storage, locks and heartbeats are in `sweep.storage`, the space format in `sweep.space`,
show and export in `sweep.results`.

The study records what its values mean (algorithm, datasets, objective, steps, seeds, the space's
fingerprint); a command that disagrees is refused, so values of different objectives never mix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from offline_mbrl.config import TrainConfig
from offline_mbrl.core.cache import write_json_atomic
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.paths import TRIALS_FILE
from offline_mbrl.core.progress import duration, listen, plain_every
from offline_mbrl.core.threads import default_threads, usable_cores
from offline_mbrl.data.names import missing_dataset_message, resolve
from offline_mbrl.launch import build_config, execute_seeds, plan_estimate, run_dir_locks
from offline_mbrl.learning.evaluation import EvalResult
from offline_mbrl.learning.run import MAIN as MAIN_STAGE
from offline_mbrl.learning.run import run_dir_for
from offline_mbrl.sweep.results import reason
from offline_mbrl.sweep.space import Space, find_space, load_space, validate
from offline_mbrl.sweep.storage import counts, fail_stale, open_storage, run_trial

SAMPLERS = ("tpe", "gp", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
OBJECTIVES = ("mean", "iqm")


@dataclass(frozen=True)
class SweepSpec:
    """Everything a worker needs: plain values, so a worker process gets it as JSON."""

    algo: str
    datasets: tuple[str, ...]
    trials: int = 20
    seeds: int = 1
    steps: int | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    objective: str = "mean"
    study: str | None = None
    storage: str | None = None
    space: str | None = None
    overrides: tuple[str, ...] = ()  # `--set` on every trial; part of the study's identity
    device: str = "cpu"
    results: str = "results"
    heartbeat: int = 60  # seconds; a trial is stale after two intervals without one
    startup_trials: int | None = None  # random trials before a model-based sampler (None: Optuna's default)
    seed: int | None = None  # the sampler's seed; None lets parallel workers propose different trials
    # the reduced budget (smoke) whose measured seconds per run the plan uses; None: steps/s at paper sizes
    budget: str | None = None

    def study_name(self) -> str:
        if self.study:
            return self.study
        name = f"{self.algo}-{'+'.join(self.datasets)}"
        if self.space and Path(self.space).stem != self.algo:
            name += f"-{Path(self.space).stem}"
        return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    startup: dict[str, Any] = {} if spec.startup_trials is None else {"n_startup_trials": spec.startup_trials}
    if spec.sampler == "gp":  # Bayesian optimisation: a Gaussian process with log-EI (torch, scipy)
        return optuna.samplers.GPSampler(seed=spec.seed, **startup)
    if spec.sampler == "cmaes":
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise UserError("the cmaes sampler needs the cmaes package: pip install cmaes")
        return optuna.samplers.CmaEsSampler(seed=spec.seed, warn_independent_sampling=False, **startup)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    # constant_liar: parallel workers see each other's running trials and do not propose the same point
    return optuna.samplers.TPESampler(seed=spec.seed, multivariate=True, constant_liar=True, **startup)


def make_pruner(name: str, steps: int, runs: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=steps // 4)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, steps // 10), max_resource=steps * runs)
    return optuna.pruners.NopPruner()


def aggregate(scores: list[float], objective: str) -> float:
    """Mean, or the interquartile mean (rliable's IQM: the mean of the middle 50%)."""
    if objective == "iqm":
        from scipy.stats import trim_mean

        return float(trim_mean(scores, 0.25))
    return float(np.mean(scores))


def once(datasets: list[str], overrides: list[str]) -> tuple[list[str], list[str], list[str]]:
    """A sweep's repeatable options, each value once: `--dataset` repeated (or two names of one dataset)
    and a `--set` given twice count once, with a note each (a dataset trained twice in one trial would
    lock its run folder twice); one `--set` key with two values is refused. Returns (datasets, --set
    items, notes)."""
    notes: list[str] = []
    kept: dict[str, str] = {}
    for name in datasets:
        try:
            key = resolve(name).dataset_id
        except UserError:
            key = name.strip()  # an unknown name: `_check` says so
        if key in kept:
            same = "given twice" if kept[key] == name else f"is the same dataset as '{kept[key]}'"
            notes.append(f"--dataset '{name}' {same}: it counts once")
        else:
            kept[key] = name
    values: dict[str, str] = {}
    items: list[str] = []
    for item in overrides:
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if key in values:
            if values[key] != value:
                raise UserError(
                    f"--set {key} is given twice ({values[key]!r} and {value!r}): give each key once"
                )
            notes.append(f"--set {key}={value} given twice: it counts once")
            continue
        values[key] = value
        items.append(item)
    return list(kept.values()), items, notes


def _check(spec: SweepSpec) -> None:
    for value, allowed, what in (
        (spec.sampler, SAMPLERS, "sampler"),
        (spec.pruner, PRUNERS, "pruner"),
        (spec.objective, OBJECTIVES, "objective"),
    ):
        if value not in allowed:
            raise UserError(f"unknown {what} '{value}'; choose from {', '.join(allowed)}")
    if not spec.datasets or min(spec.trials, spec.seeds, spec.heartbeat) < 1:
        raise UserError("a sweep needs at least one --dataset, and --trials, --seeds, heartbeat >= 1")
    seen: dict[str, str] = {}
    for name in spec.datasets:
        res = resolve(name)
        if res.dataset_id in seen:  # the CLI counts a repeat once (`once`); here it is a caller's mistake
            raise UserError(f"--dataset '{name}' is given twice (as '{seen[res.dataset_id]}'): give it once")
        seen[res.dataset_id] = name
        if not res.present:
            raise UserError(missing_dataset_message(res))
    from offline_mbrl.launch import check_device

    check_device(spec.device)


class Sweep:
    """One worker's view of a study: validated space, opened (or created) study, the claim loop."""

    def __init__(self, spec: SweepSpec, pruner: optuna.pruners.BasePruner | None = None):
        _check(spec)
        self.spec = spec
        self.space: Space = load_space(find_space(spec.space, spec.algo))
        self.base: TrainConfig = validate(
            self.space, spec.algo, spec.datasets[0], spec.steps, [*spec.overrides]
        )
        self.jobs = [(seed, ds) for seed in range(spec.seeds) for ds in spec.datasets]
        self.current = ""  # the run in progress: "trial N run i/R (dataset seed s)"
        self.storage, self.lock, self.where = open_storage(spec.study_name(), spec.storage, spec.heartbeat)
        pruner = pruner or make_pruner(spec.pruner, self.base.steps, len(self.jobs))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(
                study_name=spec.study_name(),
                storage=self.storage,
                direction="maximize",
                sampler=make_sampler(spec),
                pruner=pruner,
                load_if_exists=True,
            )
        done = len(self.study.get_trials(deepcopy=False))
        if spec.seed is not None and done:
            # A seeded sampler restarted on a study with history would replay its first proposals
            # (Optuna's random and start-up draws do not look at the history): continue from a seed
            # that depends on how far the study got, still reproducible for a given history.
            self.study.sampler = make_sampler(dataclasses.replace(spec, seed=spec.seed + 1_000_003 * done))
        self._check_identity()

    def _check_identity(self) -> None:
        spec = self.spec
        identity = {
            "algorithm": spec.algo,
            "datasets": list(spec.datasets),
            "objective": spec.objective,
            "steps": self.base.steps,
            "seeds": spec.seeds,
            "space": self.space.fingerprint([*spec.overrides]),
        }
        have = self.study.user_attrs
        if "grid" in have:
            raise UserError(
                f"study '{spec.study_name()}' in {self.where} is a grid of `{have['title']}`, not a sweep: "
                "pick another --study"
            )
        if "algorithm" not in have:
            info = {"space_file": str(self.space.path), "set": list(spec.overrides), "sampler": spec.sampler}
            for key, value in {**identity, **info}.items():
                self.study.set_user_attr(key, value)
            return
        diff = [f"{k} {have.get(k)!r} (asked: {v!r})" for k, v in identity.items() if have.get(k) != v]
        if have.get("space") != identity["space"]:  # a hash says nothing: name the study's space and --set
            diff[-1] = (
                f"another search space or --set (its: {have.get('space_file')}, --set {have.get('set')})"
            )
        if diff:
            raise UserError(
                f"study '{spec.study_name()}' in {self.where} was created with {'; '.join(diff)}: its values "
                "would not be comparable; rerun with its settings or pick another --study"
            )

    def plan(self) -> str:
        """What the sweep will run, on what, and where things go; then its estimate from the measured rates
        (at the space's base settings) and, past a day, the smaller budgets and a GPU."""
        spec, done = self.spec, self.tally()[0]
        runs = len(self.jobs)
        left = max(spec.trials - done, 0)
        # a budget's or the space's own measured seconds per run (rates.toml `space-NAME`), else steps/s
        measured = spec.budget or f"space-{self.space.path.stem}"
        estimate = plan_estimate([self.base], runs_each=left * runs, budget=measured) if left else []
        return "\n".join([self._plan_line(left, done, runs), *estimate])

    def _plan_line(self, left: int, done: int, runs: int) -> str:
        spec = self.spec
        return (
            f"plan: {left} of {spec.trials} trials to run ({done} done) x {spec.seeds} seed(s) x "
            f"{len(spec.datasets)} dataset(s) = {left * runs} runs of {self.base.steps:,} gradient steps "
            f"({spec.algo}, space {self.space.path}); device {spec.device}; study {spec.study_name()} in "
            f"{self.where}; runs in {spec.results}/"
        )

    def tally(self) -> tuple[int, int]:
        trials = self.study.get_trials(deepcopy=False)
        return sum(map(counts, trials)), sum(t.state == TrialState.RUNNING for t in trials)

    def work(self, after_trial=None) -> int:
        """Claim and run trials until the study has `trials` that count; returns how many this worker ran."""
        ran = 0
        while (trial := self._claim()) is not None:
            self._run(trial)
            ran += 1
            if after_trial is not None:
                after_trial()
        return ran

    def _claim(self) -> optuna.Trial | None:
        while True:
            with self.lock():
                fail_stale(self.study)
                done, running = self.tally()
                if done + running < self.spec.trials:
                    with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize"
                        warnings.simplefilter("ignore")
                        trial = self.study.ask()
                    self.storage.record_heartbeat(trial._trial_id)  # stale if killed before the thread starts
                    return trial
            if done >= self.spec.trials:
                return None
            # The last trials run elsewhere; wait, in case their workers die and they need a retry.
            time.sleep(min(self.spec.heartbeat, 10))

    def _run(self, trial: optuna.Trial) -> None:
        def stopped(fault) -> str:
            return (
                f"trial {trial.number} stopped the sweep: {fault}; no trial was used up: fix it and rerun "
                "the same command"
            )

        run_trial(
            self.study, self.storage, trial, self.spec.heartbeat, lambda: self._objective(trial), stopped
        )

    def _objective(self, trial: optuna.Trial) -> float:
        values = {p.key: p.suggest(trial) for p in self.space.params}
        overrides = [*self.space.overrides(values, self.base), *self.spec.overrides]
        trial.set_user_attr("overrides", overrides)
        steps, results = self.base.steps, Path(self.spec.results)
        scores: list[float] = [0.0] * len(self.jobs)
        cfgs = [
            build_config(self.spec.algo, dataset, seed, self.spec.steps, self.spec.device, overrides)
            for seed, dataset in self.jobs
        ]
        # the trial's run folders, in job order, known before any of them runs
        trial.set_user_attr("runs", [str(run_dir_for(cfg, results)) for cfg in cfgs])
        # a trial's seeds on one dataset differ only by seed: one batch (execute_seeds), in job order
        by_dataset: dict[str, list[int]] = {}
        for i, (_, dataset) in enumerate(self.jobs):
            by_dataset.setdefault(dataset, []).append(i)
        finished: list[int] = []
        for dataset, members in by_dataset.items():
            seeds = ", ".join(str(self.jobs[i][0]) for i in members)
            span = ",".join(str(i + 1) for i in members)
            self.current = f"trial {trial.number} run {span}/{len(self.jobs)} ({dataset} seed {seeds})"

            def on_eval(step, result, i):
                where = f"{self.jobs[i][1]} seed {self.jobs[i][0]}"
                _report(trial, result.score, i * steps + step, f"{where} step {step}")

            hooks: list[Callable[[int, EvalResult], None] | None] = [partial(on_eval, i=i) for i in members]
            group = [cfgs[i] for i in members]
            with run_dir_locks(group, results):  # two trials may propose the same config
                # a pruned or killed run goes on from its checkpoint; one without a checkpoint starts over
                finals = execute_seeds(group, results, resume="auto", progress=False, on_eval=hooks)
                for i in members:  # written while the run folders are still held
                    tag_trial(run_dir_for(cfgs[i], results), self.study.study_name, trial.number)
            for i, final in zip(members, finals, strict=True):
                score = final["normalized_score"]
                scores[i] = final["return_mean"] if score is None else score
            finished = sorted(finished + members)
            trial.set_user_attr("scores", [scores[i] for i in finished])
            for i in members:  # evaluations stop before a run's last step: no position is reused
                if i != len(self.jobs) - 1:
                    where = f"{self.jobs[i][1]} seed {self.jobs[i][0]} final"
                    _report(trial, scores[i], (i + 1) * steps, where)
        return aggregate(scores, self.spec.objective)


def tag_trial(run_dir: Path, study: str, number: int) -> None:
    """Record in the run folder (`trials.json`, study -> trial number) that this trial ran it, so a report
    of results labels the run by its trial. Two trials may share one run (the same proposal): the latest
    one's number is kept."""
    path = run_dir / TRIALS_FILE
    try:
        tags = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        tags = {}  # a damaged tag file is the suite's own: it is rewritten whole
    if not isinstance(tags, dict):
        tags = {}
    tags[study] = number
    write_json_atomic(path, tags)


def _report(trial: optuna.Trial, score: float, position: int, where: str) -> None:
    trial.report(score, position)
    if trial.should_prune():
        raise optuna.TrialPruned(f"pruned at {where} (score {score:.2f})")


def trial_line(t: FrozenTrial) -> str:
    params = " ".join(f"{k}={_fmt(v)}" for k, v in t.params.items())
    value = f"{t.value:.2f}" if t.state == TrialState.COMPLETE else reason(t)
    return f"trial {t.number} {t.state.name.lower()}: {value}  {params}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def run_sweep(
    spec: SweepSpec,
    workers: int = 1,
    progress: bool = True,
    pruner: optuna.pruners.BasePruner | None = None,
    console: Console | None = None,
    threads: int | None = None,
) -> Sweep:
    """Validate, create or continue the study, and run `workers` local worker processes (1: in this one).

    Each worker uses `threads` torch threads (default: the machine's cores shared among the workers).
    """
    if workers < 1:
        raise UserError("--workers must be at least 1")
    if threads is not None and threads < 1:
        raise UserError("--threads must be at least 1")
    sweep = Sweep(spec, pruner)
    if progress:
        (console.print if console is not None else print)(sweep.plan())
    seen = {t.number for t in sweep.study.get_trials(deepcopy=False) if t.state.is_finished()}
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task(f"sweep {spec.study_name()}", total=spec.trials, info="")
        watch = _TrialWatch(sweep, bar, progress)

        def update() -> None:
            trials = sweep.study.get_trials(deepcopy=False)
            for t in trials:
                if t.state.is_finished() and t.number not in seen:
                    seen.add(t.number)
                    if progress:
                        bar.console.print(trial_line(t))
            # a complete trial has a value
            best = max((cast(float, t.value) for t in trials if t.state == TrialState.COMPLETE), default=None)
            done = sum(map(counts, trials))
            bar.update(
                task, completed=min(done, spec.trials), info="" if best is None else f"best {best:.2f}"
            )

        update()
        if workers == 1:
            with _torch_threads(threads or default_threads()), listen(watch):
                sweep.work(after_trial=update)
            bar.update(watch.task, visible=False)  # no run is current any more
        else:
            _spawn(spec, workers, threads or max(1, usable_cores() // workers), update)
        update()
    return sweep


class _TrialWatch:
    """The current trial's progress under the sweep's bar (dynamics fit epochs, gradient steps, the last
    evaluation); where there is no terminal, a plain line at each new stage and every 30 s; and, once the
    first run has trained for a short warm-up, the measured estimate of the time per run, per trial and
    for the trials left."""

    WARM_UP = 10.0  # seconds of the first run's training before its rate is trusted

    def __init__(self, sweep: Sweep, bar: Progress, enabled: bool):
        self.sweep, self.bar, self.enabled = sweep, bar, enabled
        self.task = bar.add_task("", total=None, info="", visible=False)
        self.plain = enabled and not bar.console.is_terminal
        self.last_line = self.run_started = time.monotonic()
        self.run: str | None = None
        self.last_stage: tuple[str | None, str] | None = None
        self.train_from: tuple[float, int] | None = None
        self.estimated = False

    def __call__(self, stage: str, done: int, total: int, info: str) -> None:
        now = time.monotonic()
        if self.sweep.current != self.run:  # a new run started
            self.run, self.run_started, self.train_from = self.sweep.current, now, None
        of = f"/{total:,}" if total else ""
        line = f"{self.run}: {stage} {done:,}{of}" + (f", {info}" if info else "")
        self.bar.update(
            self.task,
            description=f"{self.run}: {stage}",
            total=total or None,
            completed=done,
            info=info,
            visible=self.enabled,
        )
        if stage == MAIN_STAGE:
            self._estimate(now, done, total)
        # a plain line at each new stage of a run (the first within seconds of its start), then every 30 s
        if self.plain and (now - self.last_line >= plain_every() or (self.run, stage) != self.last_stage):
            self.last_line, self.last_stage = now, (self.run, stage)
            self.bar.console.print(line)

    def _estimate(self, now: float, done: int, total: int) -> None:
        if self.train_from is None:
            self.train_from = (now, done)
            return
        since, first = self.train_from
        if self.estimated or now - since < self.WARM_UP or done <= first:
            return
        self.estimated = True
        rate = (done - first) / (now - since)  # gradient steps/s, evaluations included
        per_run = (since - self.run_started) + total / rate  # what came before training, then training
        sweep = self.sweep
        runs = len(sweep.jobs)
        left = max(sweep.spec.trials - sweep.tally()[0], 1)
        if self.enabled:
            self.bar.console.print(
                f"estimate after a {duration(now - since)} warm-up: {rate:,.0f} gradient steps/s, about "
                f"{duration(per_run)} per run, {duration(per_run * runs)} per trial of {runs} run(s), "
                f"{duration(per_run * runs * left)} for the {left} trial(s) left (first run's dynamics "
                "fit included in each run: an upper bound where fits are cached)"
            )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run the in-process worker with `threads` torch threads (None: leave the process's setting)."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _spawn(spec: SweepSpec, workers: int, threads: int, poll) -> None:
    procs = []
    for i in range(workers):  # a seeded sampler gets one seed per worker, or they would propose alike
        seed = None if spec.seed is None else spec.seed + i
        payload = json.dumps({**dataclasses.asdict(spec), "seed": seed, "threads": threads})
        procs.append(subprocess.Popen([sys.executable, "-m", "offline_mbrl.sweep.study", payload]))
    try:
        while any(p.poll() is None for p in procs):
            poll()
            time.sleep(1)
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches the workers too, and they mark their trials for a retry; a SIGTERM
        # (a scheduler, `kill`) reaches this process only: pass it on to the workers still running
        deadline = time.time() + 3
        while any(p.poll() is None for p in procs) and time.time() < deadline:
            time.sleep(0.1)
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise
    codes = [p.returncode for p in procs if p.returncode]
    if codes:
        raise UserError(f"{len(codes)} of {workers} workers failed (exit status {codes}; see above)")


def _worker_main(payload: str) -> None:
    """A worker process started by `run_sweep(workers > 1)`: `python -m offline_mbrl.sweep.study JSON`."""
    import signal

    import torch

    from offline_mbrl.core.console import quiet_known_mujoco_warnings, terminate_as_interrupt

    signal.signal(
        signal.SIGTERM, terminate_as_interrupt
    )  # a SIGTERM'd worker marks its trial for a retry, as Ctrl-C
    quiet_known_mujoco_warnings()
    raw = json.loads(payload)
    torch.set_num_threads(raw.pop("threads"))
    spec = SweepSpec(**{**raw, "datasets": tuple(raw["datasets"]), "overrides": tuple(raw["overrides"])})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        Sweep(spec).work()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    _worker_main(sys.argv[1])
