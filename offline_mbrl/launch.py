"""From user input to a finished run: build the resolved config, fetch data and dynamics, train, evaluate.

`build_config` turns `--algo/--dataset/--set/--preset/--config` into one resolved `TrainConfig`;
`execute` runs it and returns the contents of `final.json`. The sweep layer and `compare`/`reproduce`
call the same two functions, so a sweep trial, a table cell and a `train` command are the same thing,
and `run_mode` is the one rule for what happens to an existing run folder (reuse, resume, restart).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch

from offline_mbrl.algorithms import get_spec
from offline_mbrl.config import TrainConfig, apply_overrides, load_json, set_path, train_config_from_dict
from offline_mbrl.core.errors import EnvironmentFault, UserError
from offline_mbrl.core.precision import Precision, apply_precision, check_precision, configure_matmul
from offline_mbrl.core.progress import duration
from offline_mbrl.core.ranges import MAX_SEEDS, SEED_MAX, check_value
from offline_mbrl.core.run_files import load_checkpoint, load_weights, read_config, read_final, repair_command
from offline_mbrl.data.dataset import OfflineDataset, load_dataset
from offline_mbrl.data.names import preset_task
from offline_mbrl.learning.evaluation import EvalResult
from offline_mbrl.learning.run import Run, run_dir_for, seed_everything
from offline_mbrl.learning.run_lock import holder_of, in_use, run_dir_locks
from offline_mbrl.models.dynamics import Dynamics, DynamicsConfig, load_or_fit
from offline_mbrl.models.termination import termination_fn
from offline_mbrl.provenance import preset_values


def build_config(
    algo: str,
    dataset: str,
    seed: int = 0,
    steps: int | None = None,
    device: str = "cpu",
    overrides: list[str] | None = None,
    preset: str | None = None,
    config_file: Path | None = None,
) -> TrainConfig:
    spec = get_spec(algo)
    check_value("seed", seed)
    if steps is not None:
        check_value("steps", steps)
    no_flag_overrides(overrides or [])
    cfg = TrainConfig(algorithm=algo, dataset=dataset, algo=spec.config_type(), seed=seed, device=device)
    if config_file is not None:
        raw = load_json(config_file)
        raw = raw.get("config", raw)  # accepts a run's config.json or a sweep's exported best config
        if not isinstance(raw, dict):
            raise UserError(f"{config_file}: its 'config' entry is not an object of config keys")
        if raw.get("algorithm", algo) != algo:
            raise UserError(f"{config_file} is a config for '{raw['algorithm']}', not '{algo}'")
        mine = {"algorithm": algo, "dataset": dataset, "seed": seed, "device": device}
        cfg = train_config_from_dict({**raw, **mine}, spec.config_type)
    if preset is not None:
        if preset != "paper":
            raise UserError(f"unknown preset '{preset}'; the only preset is 'paper'")
        task = preset_task(dataset)
        if task is None or task not in spec.presets:  # a None task is in no presets either
            known = ", ".join(spec.presets) or "none"
            raise UserError(
                f"no paper preset of {algo} for dataset '{dataset}' (tasks with presets: {known})"
            )
        for key, value in preset_values(spec.presets[task]).items():
            cfg = set_path(cfg, key, value)
    cfg = apply_overrides(cfg, overrides or [])
    if steps is not None:
        cfg = dataclasses.replace(cfg, steps=steps)
    if cfg.steps <= 0:
        raise UserError(f"steps must be positive, got {cfg.steps}")
    if cfg.eval_episodes < 1 or cfg.final_eval_episodes < 1:
        raise UserError(
            f"eval_episodes and final_eval_episodes must be at least 1, got {cfg.eval_episodes} and "
            f"{cfg.final_eval_episodes}"
        )
    if cfg.log_every <= 0 or cfg.checkpoint_every % cfg.log_every or cfg.eval_every % cfg.log_every:
        raise UserError(
            f"checkpoint_every ({cfg.checkpoint_every}) and eval_every ({cfg.eval_every}) must be multiples "
            f"of log_every ({cfg.log_every})"
        )
    check_device(cfg.device)
    if cfg.precision not in spec.precisions:
        raise UserError(
            f"{algo} runs in {' or '.join(spec.precisions)} only (bf16 parity of its networks is not "
            f"measured): drop --precision {cfg.precision} (compare and reproduce: --set ALGO:precision=bf16 "
            "sets one algorithm's)"
        )
    check_precision(cfg.precision, cfg.device)
    check_precision(cfg.dynamics.precision, cfg.device)
    return cfg.resolved()


# the keys a command's own flags set: `--set` may not say otherwise
FLAG_KEYS = {"algorithm": "--algo", "dataset": "--dataset", "seed": "--seed", "device": "--device"}


def no_flag_overrides(overrides: list[str], steps_flag: bool = False) -> None:
    """`--set dataset=...` beside `--dataset` (or seed, algorithm, device; steps beside `train --steps`)
    would run something other than the command says: one line naming the flag instead. (A budget's steps
    beside `compare --steps` are not this: the flag wins over the budget by design.)"""
    for item in overrides:
        key = item.partition("=")[0].strip()
        flag = FLAG_KEYS.get(key) or ("--steps" if key == "steps" and steps_flag else None)
        if flag is not None:
            raise UserError(f"--set {item}: {key} is set by {flag}; pass {flag} instead of --set {key}")


def check_device(device: str) -> None:
    """A device torch cannot use is one line, before anything is loaded or written."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device!r} is not a torch device (cpu, cuda, cuda:1)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EnvironmentFault(f"--device {device} asked for, but torch sees no CUDA device")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise EnvironmentFault(
            f"--device {device}: torch sees only {torch.cuda.device_count()} CUDA device(s)"
        )
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"--device {device}: the suite runs on cpu or cuda")


def plan_seeds(seed: int, seeds: int) -> None:
    """`--seed S --seeds K`: every seed in range, and K within what one process trains."""
    if not 1 <= seeds <= MAX_SEEDS:
        raise UserError(
            f"--seeds must be between 1 and {MAX_SEEDS}, got {seeds}: each seed holds its own networks, "
            "dynamics and buffer in this one process (run more seeds as several commands)"
        )
    check_value("seed", seed)
    if seed + seeds - 1 > SEED_MAX:
        raise UserError(f"--seed {seed} --seeds {seeds} passes the largest seed {SEED_MAX}")


def check_memory(cfgs: list[TrainConfig]) -> None:
    """Refuse, in one line and before anything is loaded, runs whose settings cannot fit this machine's
    free memory (`core/memory.py`: a lower bound; the runs of one process add up)."""
    from offline_mbrl.config import describe
    from offline_mbrl.core.memory import available_bytes, gib, lower_bound

    if not cfgs:
        return
    parts: dict[str, int] = {}
    for cfg in cfgs:
        for part, n in lower_bound({key: value for key, value, _ in describe(cfg)}).items():
            parts[part] = parts.get(part, 0) + n
    need = sum(parts.values())
    device = cfgs[0].device
    free: int | None
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = torch.device(device)
        cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)  # ours, reusable
        free, where = torch.cuda.mem_get_info(dev)[0] + cached, f"{device}'s free memory"
    else:
        free, where = available_bytes(), "this machine's available memory"
    if free is None or need <= free:
        return
    shown = ", ".join(f"{part} {gib(n)}" for part, n in parts.items() if n)
    runs = f" for {len(cfgs)} runs" if len(cfgs) > 1 else ""
    raise EnvironmentFault(
        f"these settings need at least {gib(need)} of memory{runs} ({shown}), more than {where} "
        f"({gib(free)}): lower the sizes (hidden layers, critics, members, batch_size, rollout_batch x "
        "horizon x retain_rollouts) or the seeds"
    )


Mode = Literal["new", "reuse", "resume", "restart"]


def run_mode(out: Path, resume: bool | Literal["auto"] = False, force: bool = False) -> Mode:
    """What to do with the run folder `out`: the one rule for train, compare, reproduce and sweeps.

    A finished run is reused unless `force` (restart). An unfinished one resumes with `resume=True`;
    `resume="auto"` (compare, reproduce, sweeps) resumes it when a checkpoint exists and restarts it
    otherwise; with neither, an unfinished run is an error that says which flag to pass.
    """
    if force:
        return "restart"
    if (out / "final.json").exists():
        return "reuse"
    checkpointed = (out / "checkpoint.pt").exists() or any(out.glob("phase-*.pt"))
    started = checkpointed or (out / "metrics.jsonl").exists()
    if resume == "auto":
        return "resume" if checkpointed else "restart" if started else "new"
    if resume:
        return "resume"
    if started:
        raise UserError(
            f"an unfinished run exists at {out}: pass --resume to continue it or --force to start over"
        )
    return "new"


def execute(
    cfg: TrainConfig,
    results_root: Path = Path("results"),
    resume: bool | Literal["auto"] = False,
    force: bool = False,
    progress: bool = True,
    on_eval: Callable[[int, EvalResult], None] | None = None,
) -> dict:
    """Train and evaluate one run; returns final.json's contents. A finished run is reused, not redone
    (`run_mode` decides).

    `on_eval(step, EvalResult)` is called after each periodic evaluation (a sweep reports it to its
    pruner and may raise `optuna.TrialPruned` to stop the run there).
    """

    out = run_dir_for(cfg, results_root)
    if _mode(out, resume, force) == "reuse":
        return reuse(out)
    check_memory([cfg])
    spec = get_spec(cfg.algorithm)
    seed_everything(cfg.seed)
    dataset = load_dataset(cfg.dataset, device=cfg.device)
    dataset.check_finite()  # before any fit, run folder or checkpoint
    if spec.preflight is not None:
        spec.preflight(cfg, dataset)
    refuse_if_held([out])  # at once, not after a fit (the lock below is the guarantee)
    if resume and (out / "checkpoint.pt").is_file():
        load_checkpoint(out / "checkpoint.pt")  # a damaged one: one line, before the run rewrites anything
    dynamics: Dynamics | None = None
    artefacts: dict[str, str] = {}
    if spec.uses_dynamics:
        dynamics, artefacts = load_dynamics(dataset, cfg.dynamics, cfg.device, progress, cfg.precision)
        seed_everything(cfg.seed)  # the same algorithm randomness whether the model was fitted or loaded
    # the first write: the run folder's lock (a second identical command is refused, naming the holder)
    with run_dir_locks([cfg], results_root, wait=False):
        mode = run_mode(out, resume, force)  # again: another process may have finished it meanwhile
        if mode == "reuse":
            return reuse(out)
        run = Run(cfg, dataset, out, artefacts, resume=mode == "resume", progress=progress, on_eval=on_eval)
        configure_matmul(cfg.precision, cfg.device)
        policy, policy_state = spec.train(cfg, dataset, dynamics, run)
        return run.finish(policy, policy_state)


def same_but_seed(cfgs: list[TrainConfig]) -> bool:
    """Whether the configs differ only by their seeds (run seed, dynamics seed): one batch of seeds."""

    def rest(cfg: TrainConfig) -> TrainConfig:
        return dataclasses.replace(
            cfg, seed=0, dynamics_seed=0, dynamics=dataclasses.replace(cfg.dynamics, seed=0)
        )

    return all(rest(c) == rest(cfgs[0]) for c in cfgs)


def execute_seeds(
    cfgs: list[TrainConfig],
    results_root: Path = Path("results"),
    resume: bool | Literal["auto"] = False,
    force: bool = False,
    progress: bool = True,
    batch: bool = True,
    on_eval: list[Callable[[int, EvalResult], None] | None] | None = None,
) -> list[dict]:
    """`execute` for runs that differ only by seed; returns their final.json contents in order.

    With `batch` and an algorithm that can (`AlgorithmSpec.train_seeds`), the runs still to train that
    start at the same step (new ones at 0; resumed ones at their checkpoint's) train together as one
    batched computation, each in its own ordinary run folder; every other run trains alone. Finished
    runs are reused as `execute` reuses them.
    """
    if not same_but_seed(cfgs):
        raise ValueError("execute_seeds takes configs that differ only by seed")
    hooks = on_eval or [None] * len(cfgs)
    finals: dict[int, dict] = {}
    groups: dict[int, list[int]] = {}
    spec = get_spec(cfgs[0].algorithm)
    for i, cfg in enumerate(cfgs):
        out = run_dir_for(cfg, results_root)
        mode = _mode(out, resume, force)
        if mode == "reuse":
            finals[i] = reuse(out)
        elif not batch or spec.train_seeds is None:
            groups.setdefault(-1 - i, []).append(i)  # a group of its own
        else:
            groups.setdefault(_resume_step(out) if mode == "resume" else 0, []).append(i)
    todo = [cfgs[i] for members in groups.values() for i in members]
    check_memory(todo if batch else todo[:1])  # the runs still to train, together where they batch
    for members in groups.values():
        if len(members) == 1:
            i = members[0]
            finals[i] = execute(cfgs[i], results_root, resume, force, progress, hooks[i])
            continue
        batch_finals = _execute_batch(
            [cfgs[i] for i in members], results_root, resume, force, progress, [hooks[i] for i in members]
        )
        finals.update(zip(members, batch_finals, strict=True))
    return [finals[i] for i in range(len(cfgs))]


def reuse(out: Path) -> dict:
    """A finished run's final.json, once its config.json is checked too (a damaged file of a finished run
    is one line with the command that trains it again, not a silent reuse)."""
    read_config(out)
    return read_final(out)


def refuse_if_held(outs: list[Path]) -> None:
    """One line naming the holder of any of these run folders that another process holds now (a look
    only: nothing is written)."""
    for out in outs:
        holder = holder_of(out)
        if holder is not None:
            raise UserError(in_use(out, holder))


def _mode(out: Path, resume: bool | Literal["auto"], force: bool) -> Mode:
    """`run_mode`, except that an unfinished run another process is training now is named as in use
    (not "pass --resume", which would only meet its lock)."""
    try:
        return run_mode(out, resume, force)
    except UserError:
        refuse_if_held([out])
        raise


def _resume_step(out: Path) -> int:
    """The step a resumed run continues from (0 without a checkpoint): runs batch only at one step."""
    ckpt = out / "checkpoint.pt"
    if not ckpt.exists():
        return 0
    try:
        return int(torch.load(ckpt, map_location="cpu", weights_only=False)["step"])
    except Exception:  # a damaged checkpoint: the run alone reports it, in one line, when it resumes
        return -1


def _execute_batch(
    cfgs: list[TrainConfig],
    results_root: Path,
    resume: bool | Literal["auto"],
    force: bool,
    progress: bool,
    on_eval: list[Callable[[int, EvalResult], None] | None],
) -> list[dict]:
    spec = get_spec(cfgs[0].algorithm)
    assert spec.train_seeds is not None
    dataset = load_dataset(cfgs[0].dataset, device=cfgs[0].device)
    dataset.check_finite()  # before any fit, run folder or checkpoint
    if spec.preflight is not None:
        spec.preflight(cfgs[0], dataset)
    outs = [run_dir_for(cfg, results_root) for cfg in cfgs]
    refuse_if_held(outs)
    fitted = [load_dynamics(dataset, cfg.dynamics, cfg.device, progress, cfg.precision) for cfg in cfgs]
    with run_dir_locks(cfgs, results_root, wait=False):  # the first write (see `execute`)
        modes = [run_mode(out, resume, force) for out in outs]
        if "reuse" in modes:  # another process finished one meanwhile: each run alone (reused or trained)
            pairs = zip(cfgs, on_eval, strict=True)
            return [execute(c, results_root, resume, force, progress, e) for c, e in pairs]
        runs = [
            Run(cfg, dataset, out, artefacts, resume=mode == "resume", progress=progress and k == 0,
                on_eval=on_eval[k])
            for k, (cfg, out, mode, (_, artefacts)) in enumerate(zip(cfgs, outs, modes, fitted, strict=True))
        ]  # fmt: skip
        seeds = ", ".join(str(c.seed) for c in cfgs)
        runs[0].title = f"{cfgs[0].algorithm} {cfgs[0].dataset} seeds {seeds} (batched)"
        configure_matmul(cfgs[0].precision, cfgs[0].device)
        trained = spec.train_seeds(cfgs, dataset, [dyn for dyn, _ in fitted], runs)
        return [run.finish(policy, state) for run, (policy, state) in zip(runs, trained, strict=True)]


def check_dynamics(dataset: OfflineDataset, cfg: DynamicsConfig) -> None:
    """The simulator (dynamics.kind=oracle) and termination function the dataset's environment needs:
    a missing one is one line before anything is fitted or written."""
    if cfg.kind == "oracle":
        from offline_mbrl.models.oracle import simulator

        simulator(dataset.spec.env, dataset.spec.gym_id)
    termination_fn(dataset.spec.env, dataset.spec.gym_id)


def load_dynamics(
    dataset: OfflineDataset,
    cfg: DynamicsConfig,
    device: str,
    progress: bool = True,
    precision: Precision = "fp32",
) -> tuple[Dynamics, dict[str, str]]:
    """The run's dynamics (`dynamics.kind`): the cached learned ensemble (fitted on a miss), or the true
    simulator, mixed with the learned ensemble when `oracle_mix` < 1; plus the artefact keys it used.
    The learned ensemble's forward runs at the run's `precision` (the fit's is `cfg.precision`).
    A missing termination function or simulator fails before any fit."""
    check_dynamics(dataset, cfg)
    learned, artefacts = None, {}
    if cfg.needs_fit:
        learned, _, artefacts["dynamics"] = load_or_fit(dataset, cfg, device=device, progress=progress)
        apply_precision(learned, precision)
    if cfg.kind == "ensemble":
        assert learned is not None
        return learned, artefacts
    from offline_mbrl.models.oracle import OracleDynamics

    spec = dataset.spec
    oracle = OracleDynamics(
        spec.env, spec.gym_id, spec.obs_dim, spec.act_dim, learned, cfg.oracle_mix, cfg.members, cfg.elites
    )
    return oracle, artefacts


def load_run(run_dir: Path, device: str = "cpu"):
    """A finished run's policy, resolved config and dataset: `(policy, cfg, dataset)`.

    Used to evaluate a trained policy again, e.g. on every member of an MDP family.
    """

    run_dir = Path(run_dir)
    if not (run_dir / "final.json").exists() or not (run_dir / "policy.pt").exists():
        raise UserError(f"{run_dir} is not a finished run (needs final.json and policy.pt)")
    read_final(run_dir)
    raw = read_config(run_dir)
    spec = get_spec(raw["algorithm"])
    try:
        cfg: TrainConfig[Any] = train_config_from_dict(raw, spec.config_type)
    except (UserError, TypeError, ValueError) as exc:
        raise UserError(f"run folder {run_dir}: config.json does not hold a valid config ({exc})") from None
    dataset = load_dataset(cfg.dataset, device=device)
    state = load_weights(run_dir / "policy.pt", device)
    try:
        return spec.load_policy(cfg, dataset.spec, state, torch.device(device)), cfg, dataset
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:  # weights of another shape or network
        raise UserError(
            f"run folder {run_dir}: policy.pt does not fit the policy its config.json describes "
            f"({type(exc).__name__}); {repair_command(run_dir)}"
        ) from None


# ---- plans: the time a list of runs will take, before any of them has measured its own rate ------------
DAY = 86_400.0


def measured_rates(device: str, budget: str | None = None) -> tuple[dict[str, float], str]:
    """{algorithm: gradient steps/s end to end at its paper settings} measured on this kind of device
    (`resources/rates.toml`), and where the numbers come from; empty where none was measured. With a
    reduced `budget` (smoke): {algorithm: seconds per cell} of that budget, measured end to end."""
    import tomllib
    from importlib import resources

    kind = "cuda" if device.startswith("cuda") else "cpu"
    table = tomllib.loads(resources.files("offline_mbrl").joinpath("resources/rates.toml").read_text())
    own = dict(table.get(kind, {}))
    source = str(own.pop("source", kind))
    if budget is not None:  # a section may name the steps its cells ran (`steps`): it holds at those only
        cells = dict(own.get(budget, {}))
        source = str(cells.pop("source", source))
        return {k: float(v) for k, v in cells.items()}, source
    return {k: float(v) for k, v in own.items() if not isinstance(v, dict)}, source


def paper_sized(cfg: TrainConfig) -> bool:
    """Whether a config's networks are its algorithm's default (paper) sizes: the measured rates hold for
    those; a budget's smaller networks run faster than they say."""
    default = get_spec(cfg.algorithm).config_type()
    sac, paper = getattr(cfg.algo, "sac", None), getattr(default, "sac", None)
    if sac is None or paper is None:
        return False
    keys = ("critics", "actor_hidden", "critic_hidden")
    return all(getattr(sac, k) == getattr(paper, k) for k in keys)


def plan_estimate(cfgs: list[TrainConfig], runs_each: int = 1, budget: str | None = None) -> list[str]:
    """Lines for a plan of these runs (each `runs_each` times): the time from the measured rates (a
    reduced budget's measured seconds per cell; else gradient steps/s at paper settings), or why there is
    none, and a warning naming smaller budgets and a GPU when it passes a day. Empty when there is nothing
    to run."""
    if not cfgs:
        return []
    device = cfgs[0].device
    per_cell, source = measured_rates(device, budget) if budget is not None else ({}, "")
    ran = per_cell.pop("steps", None)
    if per_cell and all(c.algorithm in per_cell and ran in (None, c.steps) for c in cfgs):
        seconds = runs_each * sum(per_cell[c.algorithm] for c in cfgs)
        each = {c.algorithm: duration(per_cell[c.algorithm]) for c in cfgs}
        return [
            f"estimate: about {duration(seconds)} in all ("
            + ", ".join(f"{a} {t} per run" for a, t in each.items())
            + f"; {budget}: seconds per run, dynamics fit included, measured on a {source}; "
            "seeds batched in one process: about the same on a CPU, less on a GPU)"
        ]
    rates, source = measured_rates(device)
    unknown = sorted({c.algorithm for c in cfgs if c.algorithm not in rates or not paper_sized(c)})
    if unknown:
        return [
            f"estimate: no measured rate for {', '.join(unknown)} at these settings on {device}; the first "
            "run reports its own once it has trained for a few seconds"
        ]
    seconds = runs_each * sum(c.steps / rates[c.algorithm] for c in cfgs)
    per_run = {c.algorithm: duration(c.steps / rates[c.algorithm]) for c in cfgs}
    lines = [
        f"estimate: about {duration(seconds)} of training ("
        + ", ".join(f"{a} {t} per run" for a, t in per_run.items())
        + f", at the rates measured on a {source}; dynamics fits and evaluations come on top)"
    ]
    if seconds > DAY:
        lines.append(
            f"warning: that is more than a day on this {device}: a smaller budget (--budget small: a few "
            "minutes per run on a 2-core CPU; --budget smoke: a minute) or a GPU (--device cuda) fits it "
            "better"
        )
    return lines
