"""OfflineRL-Kit's MOPO (or MOBILE, `--algo mobile`) beside the suite's, on the same dataset files, budget
and evaluation.

    git clone https://github.com/yihaosun1124/OfflineRL-Kit /path/to/OfflineRL-Kit   # any checkout
    python benchmarks/offlinerlkit_side_by_side.py --kit /path/to/OfflineRL-Kit \\
        --dataset hopper-medium-replay --steps 50000 --seeds 0 1 2 --dynamics-epochs 10

Both sides train on the suite's dataset (`offline-mbrl datasets make hopper-medium-replay`): the reference
gets it as the dict of arrays its `qlearning_dataset` returns (observations, actions, next_observations,
rewards, terminals; time-outs are not terminals). The reference's side is built the way its
`run_example/run_mopo.py` (`run_mobile.py`) builds it (its modules, its `MBPolicyTrainer`, its
`EnsembleDynamics.train`), with the task's suggested h and λ (β), `--steps / 1000` epochs of 1,000 steps,
and its dynamics fit capped at `--dynamics-epochs` (the suite's side gets the same cap). The suite's side
is `train --algo mopo --preset paper` (`mobile`) with the same steps and cap. The reference code is
imported from the checkout given; none of it is in this repository.

Platform shims (the reference targets gym + D4RL + mujoco-py, none of which install here): `gym` is
Gymnasium under the old name (the reference imports it for type annotations and one unused module), the
evaluation environment is Gymnasium's v5 environment behind the old 4-tuple `step` and D4RL's
`get_normalized_score` (the suite's reference returns), and TensorBoard's `SummaryWriter` is a no-op
(its log goes to CSV and stdout only).

Scores: each side's final policy is evaluated by the suite's evaluator (10 deterministic episodes, the
same environment seeds), and the reference's own `last_10_performance` (mean of its last 10 per-epoch
evaluations) is recorded too. rliable's probability of improvement P(suite > reference) with its 95%
stratified-bootstrap interval compares the final scores. Throughput: gradient steps per second of the
policy-training phase (dynamics fit excluded) on each side, one torch thread each. Results go to
benchmarks/results/offlinerlkit_side_by_side_<dataset>.{json,md}; runs are cached there and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"

# run_example/run_mopo.py's suggested (h, λ) per D4RL v2 task (its docstring), as the suite's preset
KIT_TASKS = {
    "halfcheetah-medium": (5, 0.5), "hopper-medium": (5, 5.0), "walker2d-medium": (5, 0.5),
    "halfcheetah-medium-replay": (5, 0.5), "hopper-medium-replay": (5, 2.5),
    "walker2d-medium-replay": (1, 2.5), "halfcheetah-medium-expert": (5, 2.5),
    "hopper-medium-expert": (5, 5.0), "walker2d-medium-expert": (1, 2.5),
}  # fmt: skip
# run_example/run_mobile.py's suggested (h, β) per task (its docstring; the suite's MOBILE preset)
KIT_MOBILE_TASKS = {
    "halfcheetah-medium": (5, 0.5), "hopper-medium": (5, 1.5), "walker2d-medium": (5, 0.5),
    "halfcheetah-medium-replay": (5, 0.1), "hopper-medium-replay": (5, 0.1),
    "walker2d-medium-replay": (1, 0.5), "halfcheetah-medium-expert": (5, 2.0),
    "hopper-medium-expert": (5, 1.5), "walker2d-medium-expert": (1, 1.5),
}  # fmt: skip


def _shim_platform() -> None:
    """gym -> Gymnasium (annotations and one unused import), a no-op TensorBoard writer."""
    import gymnasium
    import gymnasium.envs.mujoco.mujoco_env

    sys.modules.setdefault("gym", gymnasium)
    sys.modules.setdefault("gym.envs", gymnasium.envs)
    sys.modules.setdefault("gym.envs.mujoco", gymnasium.envs.mujoco)
    sys.modules.setdefault("gym.envs.mujoco.mujoco_env", gymnasium.envs.mujoco.mujoco_env)
    if "torch.utils.tensorboard" not in sys.modules:
        tb = types.ModuleType("torch.utils.tensorboard")

        class SummaryWriter:  # the reference's logger builds one only for a "tensorboard" output
            def __init__(self, *args, **kwargs) -> None: ...

            def add_scalar(self, *args, **kwargs) -> None: ...

            def add_text(self, *args, **kwargs) -> None: ...

            def close(self) -> None: ...

        tb.SummaryWriter = SummaryWriter  # type: ignore[attr-defined]
        sys.modules["torch.utils.tensorboard"] = tb


class OldApiEnv:
    """A Gymnasium environment behind gym's old API, with D4RL's `get_normalized_score` (a fraction)."""

    def __init__(self, spec, seed: int):
        import gymnasium

        self.env = gymnasium.make(spec.gym_id)
        self.spec_ = spec
        self._seed = seed
        self._episodes = 0

    def reset(self):
        obs, _ = self.env.reset(seed=self._seed + self._episodes)
        self._episodes += 1
        return obs

    def step(self, action):
        obs, rew, term, trunc, info = self.env.step(action)
        return obs, rew, bool(term or trunc), info

    def get_normalized_score(self, ret: float) -> float:
        return float(self.spec_.normalize(np.asarray([ret]))[0]) / 100.0


class KitPolicy:
    """The reference's policy behind the suite's evaluation protocol (deterministic actions)."""

    def __init__(self, policy):
        self.policy = policy

    def reset(self, n: int) -> None: ...

    def act(self, obs: np.ndarray, last_rew: np.ndarray | None) -> np.ndarray:
        return self.policy.select_action(np.asarray(obs, dtype=np.float32), deterministic=True)


def run_reference(
    kit: Path, dataset_name: str, seed: int, steps: int, dyn_epochs: int, workdir: Path, algo: str = "mopo"
) -> dict:
    """OfflineRL-Kit's MOPO (or MOBILE) on the suite's dataset, assembled as its run_mopo.py (run_mobile.py)
    assembles it."""
    _shim_platform()
    sys.path.insert(0, str(kit))
    from offlinerlkit.buffer import ReplayBuffer
    from offlinerlkit.dynamics import EnsembleDynamics
    from offlinerlkit.modules import ActorProb, Critic, EnsembleDynamicsModel, TanhDiagGaussian
    from offlinerlkit.nets import MLP
    from offlinerlkit.policy import MOBILEPolicy, MOPOPolicy
    from offlinerlkit.policy_trainer import MBPolicyTrainer
    from offlinerlkit.utils.logger import Logger, make_log_dirs
    from offlinerlkit.utils.scaler import StandardScaler
    from offlinerlkit.utils.termination_fns import get_termination_fn

    from offline_mbrl.data.dataset import load_dataset
    from offline_mbrl.learning.evaluation import evaluate

    ds = load_dataset(dataset_name)
    d = ds.data
    data = {
        "observations": d.obs.numpy(), "actions": d.act.numpy(), "next_observations": d.next_obs.numpy(),
        "rewards": d.rew.numpy(), "terminals": d.term.numpy().astype(bool),
    }  # fmt: skip
    tasks = KIT_TASKS if algo == "mopo" else KIT_MOBILE_TASKS
    task = next(t for t in tasks if dataset_name.startswith(t) and dataset_name[len(t) :] in ("", "-v0"))
    h, lam = tasks[task]
    obs_dim, act_dim = d.obs.shape[1], d.act.shape[1]
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = "cpu"
    actor = ActorProb(
        MLP(input_dim=obs_dim, hidden_dims=[256, 256]),
        TanhDiagGaussian(
            latent_dim=256, output_dim=act_dim, unbounded=True, conditioned_sigma=True, max_mu=1.0
        ),
        device,
    )
    critic1 = Critic(MLP(input_dim=obs_dim + act_dim, hidden_dims=[256, 256]), device)
    critic2 = Critic(MLP(input_dim=obs_dim + act_dim, hidden_dims=[256, 256]), device)
    actor_optim = torch.optim.Adam(actor.parameters(), lr=1e-4)
    critics = torch.nn.ModuleList([critic1, critic2])
    epochs = steps // 1000
    lr_scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(actor_optim, epochs)
    log_alpha = torch.zeros(1, requires_grad=True, device=device)
    alpha: Any = (-act_dim, log_alpha, torch.optim.Adam([log_alpha], lr=1e-4))
    if algo == "mobile" and task == "hopper-medium":
        alpha = 0.2  # its suggested hypers turn auto-α off there (the --alpha default)
    model = EnsembleDynamicsModel(
        obs_dim=obs_dim, action_dim=act_dim, hidden_dims=[200, 200, 200, 200], num_ensemble=7, num_elites=5,
        weight_decays=[2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4], device=device,
    )  # fmt: skip
    dynamics = EnsembleDynamics(
        model, torch.optim.Adam(model.parameters(), lr=1e-3), StandardScaler(),
        get_termination_fn(task=f"{task}-v2"), **({"penalty_coef": lam} if algo == "mopo" else {}),
    )  # fmt: skip
    policy: Any
    if algo == "mopo":
        policy = MOPOPolicy(
            dynamics, actor, critic1, critic2, actor_optim, torch.optim.Adam(critic1.parameters(), lr=3e-4),
            torch.optim.Adam(critic2.parameters(), lr=3e-4), tau=0.005, gamma=0.99, alpha=alpha,
        )  # fmt: skip
    else:
        policy = MOBILEPolicy(
            dynamics, actor, critics, actor_optim, torch.optim.Adam(critics.parameters(), lr=3e-4),
            tau=0.005, gamma=0.99, alpha=alpha, penalty_coef=lam, num_samples=10, deterministic_backup=True,
            max_q_backup=False,
        )  # fmt: skip
    real = ReplayBuffer(len(data["observations"]), (obs_dim,), np.float32, act_dim, np.float32, device)
    real.load_dataset(data)
    fake = ReplayBuffer(50_000 * h * 5, (obs_dim,), np.float32, act_dim, np.float32, device)
    os.chdir(workdir)
    log_dir = make_log_dirs(task, algo, seed, {"rollout_length": h, "penalty_coef": lam}, ["penalty_coef"])
    logger = Logger(log_dir, {"consoleout_backup": "stdout", "policy_training_progress": "csv",
                              "dynamics_training_progress": "csv"})  # fmt: skip
    eval_env = OldApiEnv(ds.spec, seed=10_000 + seed)
    trainer = MBPolicyTrainer(
        policy=policy, eval_env=eval_env, real_buffer=real, fake_buffer=fake, logger=logger,
        rollout_setting=(1000, 50_000, h), epoch=epochs, step_per_epoch=1000, batch_size=256,
        real_ratio=0.05, eval_episodes=10, lr_scheduler=lr_scheduler,
    )  # fmt: skip
    t0 = time.perf_counter()
    dynamics.train(real.sample_all(), logger, max_epochs=dyn_epochs, max_epochs_since_update=5)
    t1 = time.perf_counter()
    out = trainer.train()
    t2 = time.perf_counter()
    final = evaluate(KitPolicy(policy), ds.spec, 10, seed=seed)  # the suite's evaluation protocol
    return {
        "side": "OfflineRL-Kit",
        "seed": seed,
        "final_score": final.score,
        "last10_score": float(out["last_10_performance"]),
        "dynamics_seconds": t1 - t0,
        "train_seconds": t2 - t1,
        "steps_per_second": steps / (t2 - t1),
        "note": "train_seconds include its per-epoch evaluation (10 sequential episodes after every epoch)",
    }


def run_suite(
    dataset_name: str, seed: int, steps: int, dyn_epochs: int, results_root: Path, algo: str = "mopo"
) -> dict:
    from offline_mbrl.launch import build_config, execute, load_run
    from offline_mbrl.learning.evaluation import evaluate
    from offline_mbrl.learning.run import run_dir_for

    overrides = [f"dynamics.max_epochs={dyn_epochs}", "eval_every=10000", "checkpoint_every=10000"]
    cfg = build_config(algo, dataset_name, seed, steps, "cpu", overrides, preset="paper")
    t0 = time.perf_counter()
    final = execute(cfg, results_root, progress=False)
    wall = time.perf_counter() - t0
    run_dir = run_dir_for(cfg, results_root)
    policy, _, ds = load_run(run_dir)
    again = evaluate(policy, ds.spec, 10, seed=seed)  # the same protocol and seeds as the reference's side
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {
        "side": "offline-mbrl",
        "seed": seed,
        "final_score": again.score,
        "final_json_score": final["normalized_score"],
        "last10_score": final.get("last10_score"),
        "wall_seconds": wall,
        "train_seconds": final["wall_time"],
        "steps_per_second": steps / final["wall_time"] if final.get("wall_time") else None,
        "metrics_rows": len(rows),
        "run_dir": str(run_dir),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kit", type=Path, required=True, help="a checkout of yihaosun1124/OfflineRL-Kit")
    p.add_argument("--algo", choices=["mopo", "mobile"], default="mopo")
    p.add_argument("--dataset", default="hopper-medium-replay")
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--dynamics-epochs", type=int, default=10)
    p.add_argument("--side", choices=["both", "suite", "reference"], default="both")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, one process (one thread) each")
    p.add_argument("--summary-only", action="store_true", help="compare the finished runs, start none")
    p.add_argument("--one", nargs=2, metavar=("SIDE", "SEED"), help=argparse.SUPPRESS)
    p.add_argument("--results-root", type=Path, default=Path("results"))
    a = p.parse_args()
    if not (a.kit / "offlinerlkit" / "policy_trainer").is_dir():
        sys.exit(f"--kit {a.kit}: not an OfflineRL-Kit checkout (no offlinerlkit/policy_trainer)")
    if a.steps % 1000 or a.steps < 10_000:
        sys.exit(
            f"--steps must be a multiple of 1,000 and at least 10,000 (its last 10 epochs), got {a.steps}"
        )
    torch.set_num_threads(1)
    tag = f"{a.dataset}_{a.steps // 1000}k_dyn{a.dynamics_epochs}" + (
        "" if a.algo == "mopo" else f"_{a.algo}"
    )
    cache = RESULTS / "offlinerlkit_side_by_side_runs" / tag
    cache.mkdir(parents=True, exist_ok=True)
    if (
        a.one
    ):  # one run in this process (the parent runs each in a fresh process: one thread, no shared state)
        side, seed = a.one[0], int(a.one[1])
        if side == "reference":
            work = cache / f"reference_seed{seed}"
            work.mkdir(exist_ok=True)
            row = run_reference(a.kit.resolve(), a.dataset, seed, a.steps, a.dynamics_epochs, work, a.algo)
        else:
            row = run_suite(a.dataset, seed, a.steps, a.dynamics_epochs, a.results_root.resolve(), a.algo)
        (cache / f"{side}_seed{seed}.json").write_text(json.dumps(row, indent=1))
        return
    if a.summary_only:
        summarise(cache, a, tag)
        return
    sides = ["suite", "reference"] if a.side == "both" else [a.side]
    todo = []
    for seed in a.seeds:
        for side in sides:
            if (cache / f"{side}_seed{seed}.json").exists():
                print(f"{side} seed {seed}: reused", flush=True)
            else:
                todo.append((side, seed))
    running: list[tuple[str, int, subprocess.Popen]] = []
    while todo or running:
        while todo and len(running) < a.jobs:
            side, seed = todo.pop(0)
            cmd = [sys.executable, __file__, "--kit", str(a.kit), "--dataset", a.dataset,
                   "--steps", str(a.steps),
                   "--dynamics-epochs", str(a.dynamics_epochs), "--results-root", str(a.results_root),
                   "--algo", a.algo, "--one", side, str(seed)]  # fmt: skip
            log = (cache / f"{side}_seed{seed}.log").open("w")
            print(f"{side} seed {seed}: running (log {log.name})", flush=True)
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
            running.append((side, seed, proc))
        time.sleep(5)
        for item in list(running):
            side, seed, proc = item
            if proc.poll() is not None:
                running.remove(item)
                status = "done" if proc.returncode == 0 else f"failed ({proc.returncode})"
                print(f"{side} seed {seed}: {status}",
                      flush=True)  # fmt: skip
    summarise(cache, a, tag)


def summarise(cache: Path, a: argparse.Namespace, tag: str) -> None:
    from rliable import library as rly
    from rliable import metrics

    rows = {s: [json.loads((cache / f"{s}_seed{k}.json").read_text()) for k in a.seeds
                if (cache / f"{s}_seed{k}.json").exists()] for s in ("suite", "reference")}  # fmt: skip
    if not rows["suite"] or not rows["reference"]:
        print("both sides need finished runs for the comparison")
        return
    x = np.array([[r["final_score"] / 100.0] for r in rows["suite"]])  # (runs, tasks=1)
    y = np.array([[r["final_score"] / 100.0] for r in rows["reference"]])
    p_est, p_ci = rly.get_interval_estimates(
        {"suite,reference": (x, y)}, metrics.probability_of_improvement, reps=2000
    )
    poi, (lo, hi) = float(p_est["suite,reference"]), [float(v) for v in p_ci["suite,reference"].ravel()]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if "Model name" in line), "?")
    out = {"dataset": a.dataset, "steps": a.steps, "dynamics_epochs": a.dynamics_epochs, "cpu": model,
           "runs": rows, "probability_of_improvement": {"estimate": poi, "ci95": [lo, hi]}}  # fmt: skip
    (RESULTS / f"offlinerlkit_side_by_side_{tag}.json").write_text(json.dumps(out, indent=1))

    def fmt(side: str, key: str) -> str:
        v = [r[key] for r in rows[side] if r.get(key) is not None]
        return f"{np.mean(v):.1f} ± {np.std(v):.1f} ({', '.join(f'{s:.1f}' for s in v)})" if v else "-"

    seeds = {s: [r["seed"] for r in rows[s]] for s in rows}
    md = [
        f"# {a.algo.upper()}: offline-mbrl vs OfflineRL-Kit on {a.dataset}, {a.steps:,} gradient steps",
        "",
        f"`python benchmarks/offlinerlkit_side_by_side.py --kit PATH --algo {a.algo} --dataset {a.dataset} "
        f"--steps {a.steps} "
        f"--seeds {' '.join(map(str, a.seeds))} --dynamics-epochs {a.dynamics_epochs}`; finished seeds: "
        f"offline-mbrl {seeds['suite']}, OfflineRL-Kit {seeds['reference']}; CPU: {model}, one "
        "torch thread per run. Final score: the final policy, 10 deterministic episodes of the suite's "
        "evaluator (same seeds both sides). last-10: OfflineRL-Kit's mean of its last 10 per-epoch "
        "evaluations; offline-mbrl's final.json `last10_score` (it evaluates every 10,000 steps here: the "
        "mean of its last 5 evaluations, the final one included). Throughput: the policy-training phase "
        "(the reference's includes its per-epoch evaluation, 10 sequential episodes every 1,000 steps).",
        "",
        "| side | final score | last-10 score | policy training (s) | gradient steps/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for side, label in (("suite", "offline-mbrl"), ("reference", "OfflineRL-Kit e3ce697")):
        md.append(f"| {label} | {fmt(side, 'final_score')} | {fmt(side, 'last10_score')} | "
                  f"{fmt(side, 'train_seconds')} | {fmt(side, 'steps_per_second')} |")  # fmt: skip
    md += ["", f"P(offline-mbrl > OfflineRL-Kit) on final scores (rliable, 2,000 bootstrap reps): "
           f"{poi:.2f} [{lo:.2f}, {hi:.2f}]", ""]  # fmt: skip
    (RESULTS / f"offlinerlkit_side_by_side_{tag}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
