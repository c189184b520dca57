"""The extension points new algorithms build on, each on a hand-built case: stateful training hooks that
act on model rows and are checkpointed, named run phases that resume separately, the one reuse/resume/
restart rule, the artefact store for any kind, per-algorithm budgets and documented config fields."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from offline_mbrl import AlgorithmSpec
from offline_mbrl.algorithms import REGISTERED, algorithms, get_spec, validate_spec
from offline_mbrl.cli.main import app
from offline_mbrl.config import describe, dynamics_config_from_overrides, field_docs
from offline_mbrl.core.cache import artefact_path, clear_artefacts, get_or_build, list_artefacts
from offline_mbrl.core.errors import UserError
from offline_mbrl.experiments.cells import BUDGETS, _budget_overrides
from offline_mbrl.launch import build_config, execute, execute_seeds, run_mode
from offline_mbrl.learning.model_based import (
    Hooks,
    ModelBasedConfig,
    load_sac_policy,
    model_based_spec,
)
from offline_mbrl.learning.policies import ActorPolicy
from offline_mbrl.learning.run import Run, run_dir_for

from .conftest import synthetic_episode, write_minari
from .test_algorithms import TINY


@pytest.fixture
def tiny_data():
    rng = np.random.default_rng(0)
    episodes = [synthetic_episode(rng, 3, 1, 100, "trunc") for _ in range(4)]
    write_minari("test/pendulum/tiny-v0", "Pendulum-v1", episodes)
    return "test/pendulum/tiny-v0"


@pytest.fixture
def register(monkeypatch):
    """Register a spec for one test, as a built-in would be."""

    def add(spec: AlgorithmSpec) -> None:
        monkeypatch.setitem(REGISTERED, spec.name, spec)
        algorithms.cache_clear()

    yield add
    algorithms.cache_clear()


def rows_of(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in rows]


def kill_at(monkeypatch, when):
    original = Run._flush

    def flush(self, step, extra=None, where=None):
        if when(step, (where or {}).get("phase")):
            raise KeyboardInterrupt
        return original(self, step, extra, where)

    monkeypatch.setattr(Run, "_flush", flush)
    return lambda: monkeypatch.setattr(Run, "_flush", original)


# ---- stateful hooks on model rows -------------------------------------------------------------------


class Multiplier:
    """A COMBO-like critic regulariser with a learned multiplier and its own optimiser (its state must
    survive a kill), acting on model rows only."""

    def __init__(self) -> None:
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.optim = torch.optim.Adam([self.log_alpha], lr=0.05)

    def __call__(self, learner, batch, generator):
        q = learner.critics(batch.obs, batch.act)  # (N, B)
        gap = q.detach().mean() - 1.0
        loss = -(self.log_alpha.exp() * gap)
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        reg = 1e-3 * self.log_alpha.detach().exp() * q[:, batch.from_model].mean()
        return reg, {
            "multiplier": self.log_alpha.detach().exp(),
            "model_rows": batch.from_model.float().mean(),
        }

    def state_dict(self):
        return {"log_alpha": self.log_alpha.detach().clone(), "optim": self.optim.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.optim.load_state_dict(state["optim"])


def model_rows_penalty(learner, batch, generator):
    penalty = 0.1 * batch.from_model.float()  # (B,)
    noise = torch.rand((), generator=generator)  # draws from the run's generator, like MOBILE's samples
    return penalty, {"penalty/on_real_rows": (penalty * ~batch.from_model).sum(), "penalty/draw": noise}


@dataclass(frozen=True)
class HookedConfig(ModelBasedConfig):
    coef: float = 0.1  # unused: a field of the toy algorithm's own


def hooked(cfg, dataset, dynamics, run):
    return Hooks(critic_reg=Multiplier(), target_penalty=model_rows_penalty)


HOOKED = model_based_spec("hooked", HookedConfig, hooked, "test")


def test_training_hooks_see_model_rows_and_their_state_is_checkpointed(
    tiny_data, register, tmp_path, monkeypatch
):
    register(HOOKED)
    cfg = build_config("hooked", tiny_data, seed=3, steps=60, overrides=[*TINY, *HOOKED.test_settings])
    straight = execute(cfg, tmp_path / "a", progress=False)
    rows = rows_of(run_dir_for(cfg, tmp_path / "a"))
    n_real = int(256 * 0.05)  # truncated, as every reference's trainer
    assert all(r["model_rows"] == pytest.approx((256 - n_real) / 256) for r in rows)
    assert all(r["penalty/on_real_rows"] == 0.0 for r in rows)  # the penalty acted on model rows only
    assert rows[0]["target_penalty"] == pytest.approx(0.1 * (256 - n_real) / 256)
    assert rows[-1]["multiplier"] != rows[0]["multiplier"]  # the multiplier learned

    restore = kill_at(monkeypatch, lambda step, phase: step == 50)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, tmp_path / "b", progress=False)
    restore()
    resumed = execute(cfg, tmp_path / "b", resume=True, progress=False)
    assert resumed["returns"] == straight["returns"]
    # the multiplier, its optimiser and the penalty's draws continued exactly where the checkpoint was
    assert rows_of(run_dir_for(cfg, tmp_path / "b")) == rows


def test_hooks_without_over_seeds_train_their_seeds_one_by_one_as_lone_runs(tiny_data, register, tmp_path):
    """A plugin's update hooks that cannot batch (no `over_seeds`): `--seeds K` still trains every seed,
    each exactly as its lone run."""
    register(HOOKED)
    assert HOOKED.train_seeds is not None and not hooked(None, None, None, None).batchable()
    cfgs = [
        build_config("hooked", tiny_data, seed=s, steps=60, overrides=[*TINY, *HOOKED.test_settings])
        for s in (3, 4)
    ]
    batched = execute_seeds(cfgs, tmp_path / "k", progress=False)
    for cfg, final in zip(cfgs, batched, strict=True):
        lone = execute(cfg, tmp_path / "lone", progress=False)
        assert final["returns"] == lone["returns"]
        assert rows_of(run_dir_for(cfg, tmp_path / "k")) == rows_of(run_dir_for(cfg, tmp_path / "lone"))


# ---- named phases -----------------------------------------------------------------------------------

CALLS = {"first": 0, "collect": 0}


@dataclass(frozen=True)
class StagedConfig:
    first_steps: int = 40  # steps of the first stage
    lr: float = 0.05  # SGD learning rate of both stages


def staged_train(cfg, dataset, dynamics, run):
    spec, gen = dataset.spec, run.generator
    torch.manual_seed(cfg.seed)
    first = torch.nn.Linear(spec.obs_dim, spec.act_dim)
    first_opt = torch.optim.SGD(first.parameters(), lr=cfg.algo.lr)
    for _ in run.loop({"first": first, "first_opt": first_opt}, phase="first", steps=cfg.algo.first_steps):
        CALLS["first"] += 1
        b = dataset.sample(16, gen)
        loss = (first(b.obs) - b.act).square().mean()
        first_opt.zero_grad()
        loss.backward()
        first_opt.step()
        run.log({"first/loss": loss})

    def collect():
        CALLS["collect"] += 1
        run.use_artefact("rollouts", "toy-key")  # as if built in the store: config.json names it
        run.log({"collect/kept": 5.0})
        return torch.randn(5, generator=gen) + first.weight.detach().sum()

    kept = run.once("collect", collect)
    out = torch.nn.Linear(spec.obs_dim, spec.act_dim)
    opt = torch.optim.SGD(out.parameters(), lr=cfg.algo.lr)
    policy = ActorPolicy(lambda o: out(o).clamp(-2, 2), run.device)
    for _ in run.loop({"out": out, "opt": opt}, lambda: policy):
        b = dataset.sample(16, gen)
        loss = (out(b.obs) - b.act - kept.mean()).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.log({"loss": loss})
    return policy, out.state_dict()


def staged_load(cfg, spec, state, device):
    out = torch.nn.Linear(spec.obs_dim, spec.act_dim)
    out.load_state_dict(state)
    return ActorPolicy(lambda o: out(o).clamp(-2, 2), device)


STAGED = AlgorithmSpec(
    "staged", StagedConfig, staged_train, staged_load, "test", uses_dynamics=False, budgets={"smoke": ()}
)
PHASED = ["log_every=10", "checkpoint_every=20", "eval_every=30", "eval_episodes=1", "final_eval_episodes=2"]


@pytest.mark.parametrize(
    "kill, first_calls_on_resume",
    [
        (lambda step, phase: phase is None and step == 50, 0),  # in the last stage: earlier ones are kept
        (lambda step, phase: phase == "first" and step == 30, 20),  # in the first: from its checkpoint at 20
    ],
)
def test_phases_log_separately_and_a_killed_run_resumes_in_its_phase(
    kill, first_calls_on_resume, tiny_data, register, tmp_path, monkeypatch
):
    register(STAGED)
    cfg = build_config("staged", tiny_data, seed=1, steps=60, overrides=PHASED)
    straight = execute(cfg, tmp_path / "a", progress=False)
    rows = rows_of(run_dir_for(cfg, tmp_path / "a"))
    assert [(r["step"], r.get("phase")) for r in rows] == [
        *((s, "first") for s in (10, 20, 30, 40)),
        (0, "collect"),
        *((s, None) for s in (10, 20, 30, 40, 50, 60)),
    ]
    assert "eval/score" in rows[7] and not any("eval/score" in r for r in rows[:5])  # only the policy stage
    assert not list(run_dir_for(cfg, tmp_path / "a").glob("phase-*.pt"))  # stage states go with the run
    config = json.loads((run_dir_for(cfg, tmp_path / "a") / "config.json").read_text())
    assert config["artefacts"] == {"rollouts": "toy-key"} and config["dynamics_key"] is None

    restore = kill_at(monkeypatch, kill)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, tmp_path / "b", progress=False)
    restore()
    assert run_mode(run_dir_for(cfg, tmp_path / "b"), "auto") == "resume"
    CALLS.update(first=0, collect=0)
    resumed = execute(cfg, tmp_path / "b", resume=True, progress=False)
    assert CALLS == {"first": first_calls_on_resume, "collect": 0 if first_calls_on_resume == 0 else 1}
    assert resumed["returns"] == straight["returns"]
    assert rows_of(run_dir_for(cfg, tmp_path / "b")) == rows
    a = torch.load(run_dir_for(cfg, tmp_path / "a") / "policy.pt")
    b = torch.load(run_dir_for(cfg, tmp_path / "b") / "policy.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---- one rule for an existing run folder ------------------------------------------------------------


def test_a_restart_leaves_nothing_of_the_earlier_attempt(tiny_data, register, tmp_path, monkeypatch):
    register(STAGED)
    cfg = build_config("staged", tiny_data, seed=1, steps=60, overrides=PHASED)
    execute(cfg, tmp_path, progress=False)
    out = run_dir_for(cfg, tmp_path)
    (out / "family_pf.json").write_text("{}")  # an evaluation of the old policy
    restore = kill_at(monkeypatch, lambda step, phase: phase == "first" and step == 10)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, tmp_path, force=True, progress=False)
    restore()
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]  # killed before its first row
    assert run_mode(out) == "new"


def test_run_mode_decides_reuse_resume_and_restart(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    assert run_mode(out) == "new" and run_mode(out, "auto") == "new"
    (out / "metrics.jsonl").write_text("{}\n")  # killed before its first checkpoint
    with pytest.raises(UserError, match="pass --resume to continue it or --force to start over"):
        run_mode(out)
    assert run_mode(out, "auto") == "restart" and run_mode(out, True) == "resume"
    (out / "phase-behaviour.pt").write_bytes(b"")  # a finished stage counts as a checkpoint
    assert run_mode(out, "auto") == "resume"
    (out / "final.json").write_text("{}")
    assert run_mode(out) == run_mode(out, "auto") == run_mode(out, True) == "reuse"
    assert run_mode(out, force=True) == "restart"


# ---- the artefact store -----------------------------------------------------------------------------


def test_the_artefact_store_builds_each_kind_once_lists_and_clears_it():
    built = []

    def build(folder):
        built.append(folder)
        torch.save({"rollouts": torch.arange(6)}, folder / "rollouts.pt")
        return {"dataset_id": "test/x-v0", "dataset_name": "x", "summary": "6 kept"}

    entry, fresh = get_or_build("rollouts", "k1", build, verbose=False)
    again, fresh_again = get_or_build("rollouts", "k1", build, verbose=False)
    assert (fresh, fresh_again) == (True, False) and entry == again == artefact_path("rollouts", "k1")
    assert len(built) == 1 and built[0] != entry  # built in a private folder, then published
    assert torch.load(entry / "rollouts.pt")["rollouts"].tolist() == list(range(6))
    get_or_build("behaviour_policy", "k2", lambda f: (f / "p.pt").write_bytes(b"x") and {}, verbose=False)
    rows = {r["kind"]: r for r in list_artefacts()}
    assert set(rows) == {"rollouts", "behaviour_policy"}
    assert rows["rollouts"]["summary"] == "6 kept" and rows["rollouts"]["dataset_id"] == "test/x-v0"
    assert rows["rollouts"]["manifest"]["files"] == {"rollouts.pt": (entry / "rollouts.pt").stat().st_size}
    (entry / "rollouts.pt").write_bytes(b"short")  # a truncated file shows as damaged
    assert [r["damaged"] for r in list_artefacts("rollouts")] == [True]
    assert clear_artefacts("rollouts") == 1 and [r["kind"] for r in list_artefacts()] == ["behaviour_policy"]
    with pytest.raises(UserError, match="unknown artefact kind 'models'; kinds: dynamics"):
        get_or_build("models", "k", build)


def test_the_store_lists_and_clears_only_what_it_published(isolated_roots):
    from offline_mbrl.core.cache import cache_root

    assert list_artefacts() == [] and not (cache_root() / "rollouts").exists()  # listing creates nothing
    mine = cache_root() / "dynamics" / "my_notes"  # a user's own folder inside the cache
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    legacy = cache_root() / "dynamics" / "0123abcd"  # a round-1 entry: report.json, no manifest
    legacy.mkdir()
    (legacy / "report.json").write_text(json.dumps({"epochs": 3, "elite_mse": 0.5, "dataset_id": "d"}))
    rows = list_artefacts()
    assert [(r["key"], r["damaged"], r["summary"]) for r in rows] == [
        ("0123abcd", True, "3 epochs, elite MSE 0.50000")
    ]
    (legacy / "model.pt").write_bytes(b"weights")
    assert [r["damaged"] for r in list_artefacts()] == [False]
    assert clear_artefacts() == 1
    assert (mine / "notes.txt").read_text() == "keep me" and not legacy.exists()


def test_an_unusable_cache_root_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("OFFLINE_MBRL_CACHE", str(blocker / "cache"))
    with pytest.raises(UserError, match=r"the artefact cache .*a-file/cache is not a usable folder") as err:
        get_or_build("rollouts", "k", lambda f: {}, verbose=False)
    assert "\n" not in str(err.value) and blocker.read_text() == "not a folder"


def test_interrupting_train_says_how_to_continue(monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("offline_mbrl.launch.execute", interrupted)
    monkeypatch.setattr("offline_mbrl.launch.execute_seeds", interrupted)
    args = [
        "train",
        "--algo",
        "bc",
        "--dataset",
        "pendulum-medium-replay",
        "--steps",
        "10",
        "--set",
        "algo.lr=0.01",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130
    assert (
        "keeps its last checkpoint and finished stages; continue with: offline-mbrl train --algo bc"
        in result.output
    )
    assert result.output.rstrip().endswith("--set algo.lr=0.01 --device cpu --results results --resume")
    result = CliRunner().invoke(app, [*args, "--seed", "2", "--seeds", "3", "--no-batch-seeds"])
    assert result.exit_code == 130 and "seed2-" in result.output and "seed4-" in result.output
    assert "keep their last checkpoint" in result.output
    assert "--seed 2 --seeds 3 --no-batch-seeds --steps 10" in result.output


def test_a_failed_build_publishes_nothing():
    def broken(folder):
        (folder / "half.pt").write_bytes(b"half")
        raise RuntimeError("killed mid-build")

    with pytest.raises(RuntimeError):
        get_or_build("rollouts", "k", broken, verbose=False)
    assert list_artefacts("rollouts") == [] and not artefact_path("rollouts", "k").exists()


# ---- budgets and settings each algorithm brings -----------------------------------------------------


def test_budgets_combine_common_and_the_algorithms_own_settings():
    assert _budget_overrides(BUDGETS["smoke"], "mopo")[-2:] == [
        "algo.rollout_batch=1000",
        "algo.rollout_every=250",
    ]
    bc = _budget_overrides(BUDGETS["smoke"], "bc")
    assert "steps=2000" in bc and not any(o.startswith(("dynamics.", "algo.")) for o in bc)
    for name, spec in algorithms().items():
        validate_spec(spec, name)  # every key a built-in names exists in its config
        assert spec.test_settings and {"smoke", "small"} <= set(spec.budgets), name
    bad = AlgorithmSpec(
        "bad", HookedConfig, HOOKED.train, load_sac_policy, "t", budgets={"smoke": ("algo.nope=1",)}
    )
    with pytest.raises(UserError, match="algorithm 'bad' names key\\(s\\) its config lacks: algo.nope"):
        validate_spec(bad, "here")


def test_a_budget_never_silently_skips_an_algorithm(register):
    register(STAGED)  # STAGED has settings for smoke but none for small
    assert "steps=2000" in _budget_overrides(BUDGETS["smoke"], "staged")
    with pytest.raises(UserError, match="algorithm 'staged' has no settings for the small budget"):
        _budget_overrides(BUDGETS["small"], "staged")


# ---- documented config fields -----------------------------------------------------------------------


@pytest.mark.parametrize("algo", sorted(algorithms()))
def test_every_config_field_has_a_one_line_description(algo):
    rows = describe(build_config(algo, "hopper-medium"))
    missing = [key for key, _, doc in rows if not doc]
    assert not missing, f"{algo}: undocumented config keys {missing}"
    assert {key for key, _, _ in rows} >= {"seed", "steps", "dynamics.members"}


def test_field_docs_read_trailing_and_preceding_comments():
    docs = field_docs(get_spec("ravl").config_type)
    assert docs["eta"].startswith("η, the EDAC diversity weight")
    assert docs["actor_lr_cosine"].startswith("anneal the actor lr (off: RAVL's")  # the comment above it
    assert docs["horizon"] == "h, the length of each model rollout"  # inherited from ModelBasedConfig


def test_config_command_prints_each_value_beside_its_meaning():
    result = CliRunner().invoke(app, ["config", "--algo", "mopo", "--set", "algo.penalty_coef=2.5"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "algo.penalty_coef" in x)
    assert "2.5" in line and "λ in r − λ·u(s, a)" in line


def test_dynamics_fit_takes_the_same_keys_as_train():
    cfg = dynamics_config_from_overrides(3, ["dynamics.members=5", "dynamics.elites=2"])
    assert (cfg.members, cfg.elites, cfg.seed) == (5, 2, 3)
    with pytest.raises(
        UserError, match=r"takes the keys train takes, dynamics.KEY=VALUE \(e.g. dynamics.members=5\)"
    ):
        dynamics_config_from_overrides(0, ["members=5"])
    with pytest.raises(UserError, match="unknown config key 'dynamics.membrs'"):
        dynamics_config_from_overrides(0, ["dynamics.membrs=5"])
