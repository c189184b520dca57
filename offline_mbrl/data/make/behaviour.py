"""Training the behaviour policies that the suite's datasets are collected with (PPO, vectorised envs).

D4RL trained SAC; we train PPO because with vectorised environments it reaches good returns on a
2-core CPU in minutes. A run saves a checkpoint every `checkpoint_every` environment steps and ends by
picking, D4RL-style:

- expert: the checkpoint with the highest mean return (over its training episodes, then re-measured
  over 20 evaluation episodes with stochastic actions, which is how the data is collected);
- medium: the checkpoint whose return is closest to a third of the expert's;
- replay: every checkpoint up to medium with the number of environment steps each one collected in
  training. `datasets make ...-medium-replay` re-collects that much data with each of them, which stands
  in for D4RL's replay buffer of the run until medium (we cannot commit the raw buffer; we can commit
  the policies that produced it).

Each tier's checkpoint and a JSON manifest (environment, algorithm, seed, steps, mean and std of return
over 20 episodes, the command that reproduces it) go to `datasets/behaviour/<env>/`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from offline_mbrl.core.cache import atomic_path, write_json_atomic
from offline_mbrl.core.errors import UserError
from offline_mbrl.core.progress import stage
from offline_mbrl.data.envs import ENVIRONMENTS
from offline_mbrl.data.make.policy import GaussianPolicy


@dataclass(frozen=True)
class PPOConfig:
    steps: int = 1_000_000
    num_envs: int = 8
    rollout_len: int = 256
    epochs: int = 10
    minibatches: int = 32
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)
    checkpoint_every: int = 16_384
    eval_episodes: int = 10  # per checkpoint, to choose the tiers


# Per-environment settings that differ from the defaults (Pendulum's short, dense-reward horizon wants
# a smaller discount and a larger step size, as in rl-baselines3-zoo's tuned PPO settings).
PRESETS: dict[str, dict] = {
    "pendulum": {"gamma": 0.9, "lr": 1e-3, "steps": 400_000, "checkpoint_every": 4_096, "eval_episodes": 20},
    "inverted-double-pendulum": {"steps": 1_000_000},
    "hopper": {"steps": 3_000_000},
    "walker2d": {"steps": 2_000_000},
    "halfcheetah": {"steps": 4_000_000},
}


class RunningMeanStd:
    def __init__(self, shape: tuple[int, ...]):
        self.mean, self.var, self.count = np.zeros(shape), np.ones(shape), 1e-4

    def update(self, x: np.ndarray) -> None:
        b_mean, b_var, b_count = x.mean(0), x.var(0), x.shape[0]
        delta, total = b_mean - self.mean, self.count + b_count
        self.mean = self.mean + delta * b_count / total
        self.var = (self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total) / total
        self.count = total


def _value_net(obs_dim: int, hidden: tuple[int, ...]) -> torch.nn.Module:
    layers: list[torch.nn.Module] = []
    width = obs_dim
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.Tanh()]
        width = h
    return torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))


@dataclass
class Checkpoint:
    steps: int  # environment steps when it was saved
    collected: int  # environment steps this policy collected in training (since the previous checkpoint)
    train_return: float  # mean return of the training episodes that ended while it was current
    state: dict


def train_ppo(env_name: str, cfg: PPOConfig, seed: int) -> list[Checkpoint]:
    """Train PPO on `env_name`'s evaluation environment; return every checkpoint in order."""
    environment = ENVIRONMENTS[env_name]
    torch.manual_seed(seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(environment.gym_id) for _ in range(cfg.num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    # every environment of the suite has continuous (Box) observation and action spaces
    obs_dim = cast(gym.spaces.Box, envs.single_observation_space).shape[0]
    act_space = cast(gym.spaces.Box, envs.single_action_space)
    act_dim = act_space.shape[0]
    policy = GaussianPolicy(obs_dim, act_dim, act_space.low, act_space.high, cfg.hidden)
    value = _value_net(obs_dim, cfg.hidden)
    params = [*policy.parameters(), *value.parameters()]
    optim = torch.optim.Adam(params, lr=cfg.lr, eps=1e-5)
    obs_rms, ret_rms = RunningMeanStd((obs_dim,)), RunningMeanStd(())
    disc_return = np.zeros(cfg.num_envs)
    gen = torch.Generator().manual_seed(seed)

    n, T = cfg.num_envs, cfg.rollout_len
    iterations = max(1, cfg.steps // (n * T))
    obs, _ = envs.reset(seed=[seed * 1000 + i for i in range(n)])
    ep_ret, ep_done_returns = np.zeros(n), []
    checkpoints: list[Checkpoint] = []
    last_ckpt_steps, window_returns = 0, []
    with stage("behaviour policy", iterations, f"PPO {env_name}") as training:
        for it in range(iterations):
            optim.param_groups[0]["lr"] = cfg.lr * (1.0 - it / iterations)
            # the normaliser is frozen within an iteration so collection and update see the same policy
            policy.obs_mean[:], policy.obs_var[:] = (
                torch.as_tensor(obs_rms.mean),
                torch.as_tensor(obs_rms.var),
            )
            buf_obs = np.zeros((T, n, obs_dim))
            buf_act = np.zeros((T, n, act_dim), dtype=np.float32)
            buf_logp = np.zeros((T, n), dtype=np.float32)
            buf_rew = np.zeros((T, n))
            buf_done = np.zeros((T, n))
            buf_val = np.zeros((T + 1, n))
            for t in range(T):
                obs_rms.update(obs)
                with torch.no_grad():
                    obs_t = torch.as_tensor(obs, dtype=torch.float32)
                    dist = policy.distribution(obs_t)
                    unit = dist.mean + dist.stddev * torch.randn(dist.mean.shape, generator=gen)
                    buf_logp[t] = dist.log_prob(unit).sum(-1).numpy()
                    buf_val[t] = value(policy.normalize(obs_t)).squeeze(-1).numpy()
                buf_obs[t], buf_act[t] = obs, unit.numpy()
                obs, rew, term, trunc, info = envs.step(policy.to_env(unit).numpy())
                ep_ret += rew
                disc_return = disc_return * cfg.gamma + rew
                ret_rms.update(disc_return)
                scaled = rew / np.sqrt(ret_rms.var + 1e-8)
                done = term | trunc
                if np.any(trunc & ~term):  # bootstrap through time-outs from the true final observation
                    idx = np.flatnonzero(trunc & ~term)
                    final = np.stack([info["final_obs"][i] for i in idx])
                    with torch.no_grad():
                        v_final = value(
                            policy.normalize(torch.as_tensor(final, dtype=torch.float32))
                        ).squeeze(-1)
                    scaled[idx] += cfg.gamma * v_final.numpy()
                buf_rew[t], buf_done[t] = np.clip(scaled, -10, 10), done
                for env_i in np.flatnonzero(done):
                    ep_done_returns.append(ep_ret[env_i])
                    window_returns.append(ep_ret[env_i])
                ep_ret[done], disc_return[done] = 0.0, 0.0
            with torch.no_grad():
                buf_val[T] = (
                    value(policy.normalize(torch.as_tensor(obs, dtype=torch.float32))).squeeze(-1).numpy()
                )
            adv = np.zeros((T, n))
            last = np.zeros(n)
            for t in reversed(range(T)):
                nonterminal = 1.0 - buf_done[t]
                delta = buf_rew[t] + cfg.gamma * buf_val[t + 1] * nonterminal - buf_val[t]
                last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
                adv[t] = last
            ret = adv + buf_val[:T]
            b_obs = torch.as_tensor(buf_obs.reshape(T * n, obs_dim), dtype=torch.float32)
            b_act = torch.as_tensor(buf_act.reshape(T * n, act_dim))
            b_logp = torch.as_tensor(buf_logp.reshape(-1))
            b_adv = torch.as_tensor(adv.reshape(-1), dtype=torch.float32)
            b_ret = torch.as_tensor(ret.reshape(-1), dtype=torch.float32)
            mb = (T * n) // cfg.minibatches
            for _ in range(cfg.epochs):
                perm = torch.randperm(T * n, generator=gen)
                for start in range(0, T * n, mb):
                    i = perm[start : start + mb]
                    dist = policy.distribution(b_obs[i])
                    ratio = (dist.log_prob(b_act[i]).sum(-1) - b_logp[i]).exp()
                    a = (b_adv[i] - b_adv[i].mean()) / (b_adv[i].std() + 1e-8)
                    pg = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)).mean()
                    v_loss = 0.5 * (value(policy.normalize(b_obs[i])).squeeze(-1) - b_ret[i]).pow(2).mean()
                    loss = pg + cfg.vf_coef * v_loss - cfg.ent_coef * dist.entropy().sum(-1).mean()
                    optim.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                    optim.step()
            steps = (it + 1) * n * T
            if steps - last_ckpt_steps >= cfg.checkpoint_every or it == iterations - 1:
                mean_ret = float(np.mean(window_returns)) if window_returns else float("nan")
                checkpoints.append(Checkpoint(steps, steps - last_ckpt_steps, mean_ret, policy.checkpoint()))
                last_ckpt_steps, window_returns = steps, []
            recent = np.mean(ep_done_returns[-20:]) if ep_done_returns else float("nan")
            training.advance(it + 1, f"{steps:,} steps, return {recent:.1f}")
    envs.close()
    return checkpoints


def evaluate_policy(env_id: str, policy: GaussianPolicy, episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` episodes with stochastic actions (how the datasets are collected)."""
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.make(env_id) for _ in range(episodes)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )  # finished environments restart and are masked out: a disabled autoreset refuses to step them
    obs, _ = envs.reset(seed=[seed + i for i in range(episodes)])
    gen = torch.Generator().manual_seed(seed)
    returns, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while alive.any():
        obs, rew, term, trunc, _ = envs.step(policy.act(obs, gen))
        returns += rew * alive
        alive &= ~(term | trunc)
    envs.close()
    return returns


def select_tiers(eval_returns: np.ndarray, random_return: float) -> tuple[int, int]:
    """Indices of the expert and medium checkpoints from each checkpoint's evaluated mean return.

    Expert is the best checkpoint. Medium is the checkpoint before it whose return is closest to a
    third of the way from random to expert: D4RL's "a third of expert" on the normalised scale, which
    also works for tasks with negative returns (Pendulum).
    """
    expert = int(np.argmax(eval_returns))
    target = random_return + (eval_returns[expert] - random_return) / 3.0
    gap = np.where(np.arange(len(eval_returns)) < expert, np.abs(eval_returns - target), np.inf)
    medium = int(np.argmin(gap)) if expert > 0 else 0
    return expert, medium


def run_train_behaviour(env_name: str, seed: int, steps: int | None, out_dir: Path, command: str) -> dict:
    if env_name not in ENVIRONMENTS:
        raise UserError(f"unknown environment '{env_name}'; choose from {', '.join(ENVIRONMENTS)}")
    cfg = PPOConfig(**{**PRESETS.get(env_name, {}), **({"steps": steps} if steps else {})})
    torch.set_num_threads(1)  # small networks: one thread is fastest and leaves the other core free
    start = time.time()
    checkpoints = train_ppo(env_name, cfg, seed)
    gym_id = ENVIRONMENTS[env_name].gym_id
    random_returns = _random_returns(gym_id, 20, seed + 7)
    # Training-window returns are few and noisy: re-measure every checkpoint before choosing tiers.
    eval_returns = np.array(
        [
            evaluate_policy(
                gym_id, GaussianPolicy.from_checkpoint(c.state), cfg.eval_episodes, seed + 10
            ).mean()
            for c in checkpoints
        ]
    )
    expert_i, medium_i = select_tiers(eval_returns, float(random_returns.mean()))
    summary: dict[str, Any] = {
        "random": {"mean_return": float(random_returns.mean()), "std_return": float(random_returns.std())}
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    base = {
        "environment": gym_id,
        "algorithm": "PPO (offline_mbrl.data.make.behaviour)",
        "seed": seed,
        "config": asdict(cfg),
        "training_wall_time_s": round(time.time() - start, 1),
        "command": command,
    }
    for tier, idx in (("expert", expert_i), ("medium", medium_i)):
        ckpt = checkpoints[idx]
        returns = evaluate_policy(gym_id, GaussianPolicy.from_checkpoint(ckpt.state), 20, seed + 100)
        with atomic_path(out_dir / f"{tier}.pt") as tmp:
            torch.save(ckpt.state, tmp)
        manifest = {
            **base,
            "tier": tier,
            "training_steps": ckpt.steps,
            "train_return": ckpt.train_return,
            "mean_return": float(returns.mean()),
            "std_return": float(returns.std()),
            "episodes": 20,
        }
        write_json_atomic(out_dir / f"{tier}.json", manifest)
        summary[tier] = manifest
    replay = checkpoints[: medium_i + 1]
    with atomic_path(out_dir / "replay.pt") as tmp:
        torch.save([{"steps": c.steps, "collected": c.collected, "state": c.state} for c in replay], tmp)
    replay_manifest = {
        **base,
        "tier": "replay",
        "checkpoints": len(replay),
        "training_steps": replay[-1].steps,
        "collected_steps": sum(c.collected for c in replay),
        "train_returns": [round(c.train_return, 2) for c in replay],
    }
    write_json_atomic(out_dir / "replay.json", replay_manifest)
    write_json_atomic(
        out_dir / "random.json", {**base, "tier": "random", "policy": "uniform actions", **summary["random"]}
    )
    summary["replay"] = replay_manifest
    summary["curve"] = [
        {"steps": c.steps, "train_return": c.train_return, "eval_return": float(r)}
        for c, r in zip(checkpoints, eval_returns, strict=True)
    ]
    return summary


def _random_returns(env_id: str, episodes: int, seed: int) -> np.ndarray:
    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    for e in range(episodes):
        env.reset(seed=seed + e)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            returns[e] += r
            done = term or trunc
    env.close()
    return returns


def save_summary(path: Path, summary: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float))
