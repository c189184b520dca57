"""The policy the diagnosis rolls out: a finished run's (its evaluation action) or behaviour cloning fitted
on the spot (`algorithms.bc.fit`, the deterministic MLP `algorithms.bc.BCPolicy`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from offline_mbrl.algorithms import bc
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.run_files import read_config, read_object
from offline_mbrl.data.dataset import OfflineDataset
from offline_mbrl.learning.evaluation import Policy
from offline_mbrl.learning.rollout import Step


class RolloutPolicy:
    """A torch `obs -> act` callable for `rollout` over either policy; a run's `Policy` (numpy) also gets
    the previous model reward, as evaluation gives it (return-conditioned policies use it)."""

    def __init__(self, bc_policy: bc.BCPolicy | None, run_policy: Policy | None):
        self.bc, self.run_policy = bc_policy, run_policy
        self.last_rew: np.ndarray | None = None

    def reset(self, n: int) -> None:
        self.last_rew = None
        if self.run_policy is not None:
            self.run_policy.reset(n)

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self.bc is not None:
            return self.bc(obs)
        assert self.run_policy is not None
        act = self.run_policy.act(obs.cpu().numpy(), self.last_rew)
        return torch.as_tensor(act, dtype=torch.float32, device=obs.device)

    def observe(self, step: Step) -> None:
        if self.run_policy is not None:
            self.last_rew = step.rew.cpu().numpy()


def check_finished(run_dir: Path) -> None:
    if not (run_dir / "final.json").is_file() or not (run_dir / "policy.pt").is_file():
        raise UserError(f"--run {run_dir} is not a finished run (needs final.json and policy.pt)")


def run_record(run_dir: Path, dataset: OfflineDataset) -> dict[str, Any]:
    """The finished run's config.json; refuses a run that is absent, unfinished or on another dataset."""
    check_finished(run_dir)
    read_config(run_dir)  # a damaged file: one line naming it and the repair
    record = read_object(run_dir / "config.json", ("dataset_fingerprint",))
    trained_on = record["dataset_fingerprint"]
    name = record["config"]["dataset"]
    if not isinstance(trained_on, dict):
        raise UserError(f"--run {run_dir}: config.json's dataset_fingerprint is not an object")
    mine = dataset.fingerprint
    if (trained_on.get("dataset_id"), trained_on.get("content_hash")) != (mine.dataset_id, mine.content_hash):
        raise UserError(
            f"--run {run_dir} was trained on {name} ({trained_on.get('dataset_id')}), not on "
            f"{dataset.name} ({mine.dataset_id}): pass a run of the same dataset"
        )
    return record


def run_policy(
    run_dir: Path, record: dict[str, Any], dynamics_key: str, device: str
) -> tuple[RolloutPolicy, dict[str, Any]]:
    """The finished run's policy (deterministic actions) and its description for meta.json."""
    from offline_mbrl.launch import load_run

    policy, cfg, _ = load_run(run_dir, device)
    return RolloutPolicy(None, policy), {
        "kind": "run",
        "run_dir": str(run_dir),
        "algorithm": cfg.algorithm,
        "run_seed": cfg.seed,
        "actions": "deterministic (the policy's evaluation action)",
        "run_dynamics_key": record.get("dynamics_key"),
        "same_ensemble_as_run": record.get("dynamics_key") == dynamics_key,
        "description": (
            f"the finished run {run_dir} ({cfg.algorithm}, seed {cfg.seed}), deterministic actions"
        ),
    }


def bc_policy(
    dataset: OfflineDataset, steps: int, seed: int, progress: bool = True
) -> tuple[RolloutPolicy, dict[str, Any]]:
    """BC with `algorithms.bc`'s defaults fitted for `steps` steps, and its description for meta.json."""
    cfg = bc.BCConfig()
    model, loss = bc.fit(dataset, steps, seed, cfg, progress)
    hidden = "x".join(map(str, cfg.hidden))
    return RolloutPolicy(model, None), {
        "kind": "bc",
        "steps": steps,
        "batch_size": cfg.batch_size,
        "hidden": list(cfg.hidden),
        "seed": seed,
        "final_mse": loss,
        "actions": "deterministic (tanh MLP onto the action box)",
        "description": (
            f"behaviour cloning fitted here (algorithms.bc.BCPolicy, {hidden} tanh MLP, {steps} Adam "
            f"steps of MSE on the dataset's (obs, act), seed {seed}, final MSE {loss:.4g}), "
            "deterministic actions"
        ),
    }
