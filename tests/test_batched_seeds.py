"""Seeds batched in one process (`train --seeds K`): each seed's run folder is an ordinary run's, a batched
seed reproduces its lone run, one seed's changes leave the others bit-identical, and a killed batched run
resumes to the uninterrupted result."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from offline_mbrl.algorithms import algorithms
from offline_mbrl.core.errors import UserError
from offline_mbrl.launch import build_config, execute, execute_seeds, same_but_seed
from offline_mbrl.learning.model_based import load_sac_policy
from offline_mbrl.learning.run import run_dir_for

from .conftest import killed_at
from .test_algorithms import PER_ALGO, TINY


def configs(dataset, algo, seeds, extra=()):
    return [
        build_config(algo, dataset, seed=s, steps=60, overrides=[*TINY, *PER_ALGO[algo], *extra])
        for s in seeds
    ]


def policy(cfg, root):
    return torch.load(run_dir_for(cfg, root) / "policy.pt")["actor"]


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to rounding: within 1% of the tensor's norm. Adam turns a rounding-level difference of a
    near-zero gradient into a whole step (about lr) of that one weight, so elementwise tolerances do not
    fit; a different seed's weights are nowhere near this (see the end of the first test)."""
    return bool((a - b).norm() <= 1e-2 * b.norm() + 1e-6)


def rows(cfg, root):
    lines = (run_dir_for(cfg, root) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "wall_time"} for line in lines]


# every algorithm on the model-based loop: its hooks batch over seeds (EDAC's, MOBILE's and COMBO's update
# hooks through `over_seeds`; rollout hooks run per seed)
MODEL_BASED = [name for name, spec in algorithms().items() if spec.load_policy is load_sac_policy]


def test_every_model_based_algorithm_batches_its_seeds():
    assert set(MODEL_BASED) >= {"mbpo", "mopo", "ravl", "mobile", "combo", "morec-mopo", "morec-mobile"}
    assert all(algorithms()[name].train_seeds is not None for name in MODEL_BASED)


# MOBILE's target clamp at 0 would zero every target on Pendulum's negative rewards: off, so u matters;
# COMBO also with its Lagrange multiplier (one per seed, stepped by its own run's term)
SETTINGS = {
    "mobile": ["algo.sac.target_min=none"],
    "morec-mobile": ["algo.sac.target_min=none"],
    "combo-lagrange": ["algo.lagrange=true", "algo.lagrange_threshold=-5"],
}


@pytest.mark.parametrize("case", [*MODEL_BASED, "combo-lagrange"])
def test_a_batched_seed_reproduces_its_lone_run(case, tiny_pendulum, tmp_path):
    algo = case.removesuffix("-lagrange")
    cfgs = configs(tiny_pendulum, algo, (0, 1, 2), SETTINGS.get(case, ()))
    batched = execute_seeds(cfgs, tmp_path / "batched", progress=False)
    for cfg, final in zip(cfgs, batched, strict=True):
        folder = run_dir_for(cfg, tmp_path / "batched")
        for name in ("config.json", "metrics.jsonl", "final.json", "policy.pt"):
            assert (folder / name).is_file(), name
        assert not (folder / "checkpoint.pt").exists()
        execute(cfg, tmp_path / "lone", progress=False)
        assert final["seed"] == cfg.seed and final["steps"] == 60
        mine, theirs = policy(cfg, tmp_path / "batched"), policy(cfg, tmp_path / "lone")
        assert mine.keys() == theirs.keys()
        for key in theirs:  # rounding apart (a batched matmul is not bit-identical), the same learner
            assert close(mine[key], theirs[key]), key
        a, b = rows(cfg, tmp_path / "batched"), rows(cfg, tmp_path / "lone")
        assert [r["step"] for r in a] == [r["step"] for r in b] and a[0].keys() == b[0].keys()
        extra = {"mobile": ["mobile_u"], "morec-mobile": ["mobile_u"], "combo": ["combo_gap"]}
        extra["combo-lagrange"] = ["combo_gap", "combo_alpha_prime"]
        for key in ("critic_loss", "q_mean", "alpha", "rollout/reward", *extra.get(case, [])):
            assert a[0][key] == pytest.approx(b[0][key], rel=1e-3, abs=1e-4), key
    # different seeds learned different things, far outside the tolerance above
    first, second = policy(cfgs[0], tmp_path / "batched"), policy(cfgs[1], tmp_path / "batched")
    assert not any(close(first[key], second[key]) for key in first if key.endswith("weight"))


def test_one_seeds_dynamics_seed_leaves_the_other_seeds_bit_identical(tiny_pendulum, tmp_path):
    """Seed 1 gets other dynamics (another dynamics seed: other model data); seeds 0 and 2 are
    batched with it both times and end bit for bit the same."""
    cfgs = configs(tiny_pendulum, "ravl", (0, 1, 2))
    changed = list(cfgs)
    changed[1] = dataclasses.replace(
        cfgs[1], dynamics_seed=7, dynamics=dataclasses.replace(cfgs[1].dynamics, seed=7)
    )
    execute_seeds(cfgs, tmp_path / "a", progress=False)
    execute_seeds(changed, tmp_path / "b", progress=False)
    for k in (0, 2):
        a, b = policy(cfgs[k], tmp_path / "a"), policy(cfgs[k], tmp_path / "b")
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert rows(cfgs[k], tmp_path / "a") == rows(cfgs[k], tmp_path / "b")
    assert not torch.equal(
        policy(cfgs[1], tmp_path / "a")["net.0.weight"], policy(changed[1], tmp_path / "b")["net.0.weight"]
    )


def test_a_killed_batched_run_resumes_to_the_uninterrupted_result(tiny_pendulum, tmp_path, monkeypatch):
    cfgs = configs(tiny_pendulum, "mopo", (3, 4))
    straight = execute_seeds(cfgs, tmp_path / "a", progress=False)
    with killed_at(50, monkeypatch), pytest.raises(KeyboardInterrupt):
        execute_seeds(cfgs, tmp_path / "b", progress=False)
    with pytest.raises(UserError, match="pass --resume to continue it"):
        execute_seeds(cfgs, tmp_path / "b", progress=False)
    resumed = execute_seeds(cfgs, tmp_path / "b", resume=True, progress=False)
    for cfg, s, r in zip(cfgs, straight, resumed, strict=True):
        assert r["returns"] == s["returns"]
        a, b = policy(cfg, tmp_path / "a"), policy(cfg, tmp_path / "b")
        assert all(torch.equal(a[key], b[key]) for key in a)
        assert rows(cfg, tmp_path / "a") == rows(cfg, tmp_path / "b")
    # a finished batch is reused; a lone `train` of one of its seeds finds the run done
    assert execute_seeds(cfgs, tmp_path / "b", progress=False) == resumed
    assert execute(cfgs[0], tmp_path / "b", progress=False) == resumed[0]


def test_a_batched_seeds_checkpoint_resumes_as_a_lone_run(tiny_pendulum, tmp_path, monkeypatch):
    """The checkpoint of a batched seed is a lone run's: `train --seed S --resume` continues it alone."""
    cfgs = configs(tiny_pendulum, "ravl", (0, 1))
    with killed_at(50, monkeypatch), pytest.raises(KeyboardInterrupt):
        execute_seeds(cfgs, tmp_path, progress=False)
    final = execute(cfgs[1], tmp_path, resume=True, progress=False)
    lone = execute(cfgs[1], tmp_path / "lone", progress=False)
    mine, theirs = policy(cfgs[1], tmp_path), policy(cfgs[1], tmp_path / "lone")
    assert all(close(mine[k], theirs[k]) for k in theirs)
    assert final["steps"] == lone["steps"] == 60


def test_only_configs_that_differ_by_seed_batch_and_other_algorithms_run_one_by_one(tiny_pendulum, tmp_path):
    cfgs = configs(tiny_pendulum, "mopo", (0, 1))
    assert same_but_seed(cfgs)
    other = dataclasses.replace(cfgs[1], steps=30)
    assert not same_but_seed([cfgs[0], other])
    with pytest.raises(ValueError, match="differ only by seed"):
        execute_seeds([cfgs[0], other], tmp_path, progress=False)
    # MOBILE's target penalty works on one seed's shapes: its seeds train one after another, same files
    mobile = configs(tiny_pendulum, "mobile", (0, 1))
    finals = execute_seeds(mobile, tmp_path, progress=False)
    assert [f["seed"] for f in finals] == [0, 1]
    assert all((run_dir_for(c, tmp_path) / "policy.pt").is_file() for c in mobile)


def test_seeds_evaluated_together_get_what_each_lone_evaluation_gets():
    from offline_mbrl.data.dataset import EnvSpec
    from offline_mbrl.learning.evaluation import evaluate, evaluate_many
    from offline_mbrl.learning.policies import ActorPolicy

    spec = EnvSpec("Pendulum-v1", "pendulum", 3, 1, (-2.0,), (2.0,), 200, None, None, "none")
    policies = []
    for gain in (0.5, -1.0, 2.0):  # three different deterministic policies
        policies.append(ActorPolicy(lambda o, g=gain: (g * o[:, 2:3]).clamp(-2, 2), torch.device("cpu")))
    together = evaluate_many(policies, spec, 3, [10, 20, 30])
    for policy, seed, result in zip(policies, (10, 20, 30), together, strict=True):
        alone = evaluate(policy, spec, 3, seed)
        assert (result.returns == alone.returns).all() and (result.lengths == alone.lengths).all()
    assert len({tuple(r.returns) for r in together}) == 3
